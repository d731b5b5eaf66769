package server

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/protocol"
)

// Read buffer sizes: a connection starts small (idle connections stay
// cheap), grows while reads fill the buffer, and shrinks back when idle.
const (
	minReadBuf   = 512
	maxReadBuf   = 64 << 10
	keepOutBuf   = 64 << 10 // output buffers above this are not kept for reuse
	bigFrameSize = 64 << 10 // after a frame this large, the decoder is replaced
)

// A frame over bigFrameSize must not fit in the read buffer (handler.owned).
var _ [bigFrameSize - maxReadBuf]struct{}

// conn is one client, worker or admin connection, or an in-process
// submit (Server.Submit: local is set, nc is nil, id 0).
type conn struct {
	s  *Server
	nc net.Conn
	id uint64
	ip string
	// local, set for an in-process submit, is signalled (buffered, one
	// slot) whenever output is added or the connection dies: its
	// submitter takes the output itself (submit.go), nothing is written
	// to a socket. Set at creation, never changed.
	local chan struct{}

	// Owned by the reader goroutine.
	dec *protocol.Decoder
	// reserved is the part of Server.mem held for the large submit
	// payload being received (admit); owned by the reader goroutine,
	// changed with Server.mu held.
	reserved int64

	// raw is the socket for non-blocking writes (nil for TLS and other
	// wrapped connections).
	raw syscall.RawConn

	// Owned by whoever holds writing (one writer at a time).
	deadline time.Time // write deadline last set on nc

	// Guarded by Server.mu.
	clientID   string
	exceptions bool
	// abil finds the registrations (links.go) by function; abilHead and
	// abilTail list them in the order of their first CAN_DO. nil until
	// the first CAN_DO.
	abil               map[*function]*ability
	abilHead, abilTail *ability
	ready              [3]readyList // registrations with a queued job, per priority (links.go)
	nrunning           int          // jobs assigned to this connection (in the abilities' running lists)
	armed              *job         // running jobs with a CAN_DO_TIMEOUT timer set (job.arm)
	attached           attachList   // foreground jobs this connection waits for
	nattached          int          // distinct jobs in attached
	sleeping           bool
	noopSent           bool
	gone               bool  // removed from the server
	prev, next         *conn // in Server.conns

	// Guarded by wmu.
	wmu     sync.Mutex
	out     []byte // pending output
	spare   []byte // a drained buffer kept for reuse
	writing bool   // someone is writing out
	dead    bool   // connection closed or being closed
	closing bool   // close once the pending output is written
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	ip := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	var raw syscall.RawConn
	if sc, ok := nc.(syscall.Conn); ok {
		raw, _ = sc.SyscallConn()
	}
	c := &conn{
		s:          s,
		nc:         nc,
		raw:        raw,
		id:         id,
		ip:         ip,
		clientID:   "-",
		exceptions: s.opts.Exceptions,
	}
	c.dec = c.newDecoder()
	return c
}

// newDecoder returns a decoder for c that, under Options.MaxQueueMemory,
// asks admit about every submit payload over bigFrameSize.
func (c *conn) newDecoder() *protocol.Decoder {
	d := protocol.NewDecoder(c.s.lim)
	if c.s.opts.MaxQueueMemory > 0 {
		d.SetAdmit(bigFrameSize, c.admit)
	}
	return d
}

// admit reserves the memory of a large submit payload before it is
// received, so that payloads in flight count against
// Options.MaxQueueMemory as the jobs do; beyond the bound it refuses,
// and the payload is discarded as it arrives (the submit then gets
// ERROR QUEUE_ERROR: handler.feed). The reservation ends when the
// submit is handled (submit, feed) or the connection goes (dropConn).
func (c *conn) admit(t protocol.Type, size uint32) bool {
	if _, ok := t.Submit(); !ok {
		return true
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memoryFull(int64(size)) {
		return false
	}
	s.mem += int64(size)
	c.reserved += int64(size)
	return true
}

// unreserve ends c's reservation. Called with s.mu held.
func (s *Server) unreserve(c *conn) {
	s.mem -= c.reserved
	c.reserved = 0
}

func (c *conn) logger() logrus.FieldLogger {
	return c.s.log.WithField("conn_id", c.id)
}

func (c *conn) isLoopback() bool {
	ip := net.ParseIP(c.ip)
	return ip != nil && ip.IsLoopback()
}

// handshake completes the TLS handshake of a TLS connection within
// Options.PacketTimeout, as the first packet of a plain connection must
// be completed: a client that starts a handshake and stalls cannot hold
// the connection (and a slot of --max-connections) for ever. It reports
// whether the connection may be read.
func (c *conn) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	if d := c.s.opts.PacketTimeout; d > 0 {
		_ = tc.SetDeadline(time.Now().Add(d))
		defer tc.SetDeadline(time.Time{})
	}
	if err := tc.Handshake(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.logger().WithField("timeout", c.s.opts.PacketTimeout).Info("closing connection: TLS handshake not completed in time")
		} else {
			c.logger().WithError(err).Debug("TLS handshake failed")
		}
		return false
	}
	return true
}

// readLoop is the connection's reader goroutine: it owns the decoder and
// exits when the connection fails or is closed.
func (c *conn) readLoop() {
	defer c.s.connWG.Done()
	defer c.s.dropConn(c)
	if !c.handshake() {
		return
	}
	buf := make([]byte, minReadBuf)
	small := 0
	h := handler{c: c, s: c.s}
	// armed: a read deadline is set for the packet being received.
	armed := false
	var frames uint64 // h.frames when the deadline was armed
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			if !h.feed(buf[:n]) {
				c.flush()
				return
			}
			c.flush()
			// The deadline runs from the packet's first byte to its end;
			// idle time between packets has none.
			// A packet that began after the one the deadline was armed for
			// gets its own.
			if pending := c.dec.Pending(); (pending != armed || pending && h.frames != frames) && c.s.opts.PacketTimeout > 0 {
				var d time.Time
				if pending {
					d = time.Now().Add(c.s.opts.PacketTimeout)
				}
				_ = c.nc.SetReadDeadline(d)
				armed, frames = pending, h.frames
			}
			switch {
			case n == len(buf) && len(buf) < maxReadBuf:
				buf = make([]byte, 2*len(buf))
				small = 0
			case len(buf) > minReadBuf && n < len(buf)/8:
				if small++; small >= 16 {
					buf = make([]byte, minReadBuf)
					small = 0
				}
			default:
				small = 0
			}
		}
		if err != nil {
			if armed && errors.Is(err, os.ErrDeadlineExceeded) {
				c.logger().WithField("timeout", c.s.opts.PacketTimeout).Info("closing connection: packet not completed in time")
				return
			}
			if !errors.Is(err, net.ErrClosed) {
				c.logger().WithError(err).Debug("connection closed")
			}
			return
		}
	}
}

// kill closes the socket; the reader goroutine then cleans up.
func (c *conn) kill() {
	c.wmu.Lock()
	c.dead = true
	c.out = nil
	c.spare = nil
	c.wmu.Unlock()
	c.hangUp()
}

// hangUp closes the socket, or for an in-process submit wakes its
// submitter, which then sees the connection dead.
func (c *conn) hangUp() {
	if c.local != nil {
		c.wake()
		return
	}
	_ = c.nc.Close()
}

// wake signals an in-process submitter that its output or state changed.
func (c *conn) wake() {
	select {
	case c.local <- struct{}{}:
	default: // a signal is pending already
	}
}

// finish closes the connection once its pending output is written
// (graceful shutdown).
func (c *conn) finish() {
	c.wmu.Lock()
	if c.dead {
		c.wmu.Unlock()
		return
	}
	c.closing = true
	if !c.writing && len(c.out) > 0 {
		c.writing = true
		c.s.connWG.Add(1)
		go func() {
			defer c.s.connWG.Done()
			c.writeOut()
		}()
	}
	busy := c.writing
	c.wmu.Unlock()
	if !busy {
		c.kill()
	}
}

// beginOut locks the output buffer and returns it for appending. The
// caller must call endOut with the grown buffer.
func (c *conn) beginOut() []byte {
	c.wmu.Lock()
	if c.out == nil && c.spare != nil {
		c.out, c.spare = c.spare, nil
	}
	return c.out
}

// endOut stores buf and unlocks. kick starts a writer goroutine when no
// one is writing: pass false from the connection's own reader, which
// flushes after each batch. A connection whose pending output exceeds
// MaxOutBuffer is dropped as a slow consumer.
func (c *conn) endOut(buf []byte, kick bool) {
	if c.dead {
		c.wmu.Unlock()
		return
	}
	c.out = buf
	if len(buf) > c.s.opts.MaxOutBuffer {
		c.dead = true
		c.out, c.spare = nil, nil
		c.wmu.Unlock()
		c.logger().Warn("dropping slow connection: output buffer full")
		c.hangUp()
		return
	}
	if c.local != nil {
		// The submitter reads the output itself.
		c.wmu.Unlock()
		c.wake()
		return
	}
	if kick && !c.writing && len(buf) > 0 {
		// Most of the time the socket takes the whole packet at once:
		// write it here rather than wake a writer goroutine for it.
		if n := c.tryWrite(buf); n == len(buf) {
			c.out = buf[:0]
			c.wmu.Unlock()
			return
		} else if n > 0 {
			c.out = append(buf[:0], buf[n:]...)
		}
		c.writing = true
		c.s.connWG.Add(1)
		go func() {
			defer c.s.connWG.Done()
			c.writeOut()
		}()
	}
	c.wmu.Unlock()
}

// tryWrite writes what the socket takes of b without waiting, and returns
// how much that was. The caller holds wmu with no writer running. An error
// returns 0: the writer goroutine meets it again and drops the connection.
func (c *conn) tryWrite(b []byte) int {
	if c.raw == nil {
		return 0
	}
	n := 0
	_ = c.raw.Write(func(fd uintptr) bool {
		if m, err := syscall.Write(int(fd), b); err == nil && m > 0 {
			n = m
		}
		return true // one attempt: never wait for the socket
	})
	return n
}

// send appends one packet to the output.
func (c *conn) sendPacket(t protocol.Type, kick bool, args ...[]byte) {
	buf := c.beginOut()
	buf = protocol.AppendPacket(buf, protocol.Res, t, args...)
	c.endOut(buf, kick)
}

func (c *conn) sendText(text string, kick bool) {
	buf := c.beginOut()
	buf = append(buf, text...)
	c.endOut(buf, kick)
}

func (c *conn) sendError(code, text string) {
	buf := c.beginOut()
	buf = protocol.AppendPacketString(buf, protocol.Res, protocol.Error, code, text)
	c.endOut(buf, false)
}

// flush writes the pending output from the reader goroutine, unless a
// writer goroutine is already at it.
func (c *conn) flush() {
	c.wmu.Lock()
	if c.writing || c.dead || len(c.out) == 0 {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	c.wmu.Unlock()
	c.writeOut()
}

// writeOut writes until the output is empty; the caller set c.writing.
func (c *conn) writeOut() {
	for {
		c.wmu.Lock()
		b := c.out
		if c.dead || len(b) == 0 {
			c.writing = false
			closing := c.closing && !c.dead
			c.wmu.Unlock()
			if closing {
				c.kill()
			}
			return
		}
		c.out = c.spare
		c.spare = nil
		c.wmu.Unlock()

		// Re-arm the write deadline only when a quarter of it is used up:
		// setting it costs as much as a small write.
		if now, to := time.Now(), c.s.opts.WriteTimeout; c.deadline.Sub(now) < to-to/4 {
			c.deadline = now.Add(to)
			_ = c.nc.SetWriteDeadline(c.deadline)
		}
		_, err := c.nc.Write(b)

		c.wmu.Lock()
		if cap(b) <= keepOutBuf && c.spare == nil {
			c.spare = b[:0]
		}
		if c.out != nil && len(c.out) == 0 && cap(c.out) > keepOutBuf {
			c.out = nil
		}
		if err != nil {
			c.dead = true
			c.writing = false
			c.out, c.spare = nil, nil
			c.wmu.Unlock()
			c.logger().WithError(err).Info("dropping connection: write failed")
			_ = c.nc.Close()
			return
		}
		c.wmu.Unlock()
	}
}

// handler decodes and dispatches the frames of one connection. It lives
// on the reader goroutine.
type handler struct {
	c *conn
	s *Server
	// pending store deletes collected under the lock, done after it.
	deletes []storeRef
	// background submits waiting for one shared Store.Add (see batch.go).
	batch []pendingSubmit
	// shutdown is set by the shutdown admin command (true: graceful); it
	// runs once the reply is written.
	shutdown *bool
	// frames counts the frames decoded.
	frames uint64
	// owned is set while the packet being handled has its payload in a
	// decoder buffer that feed drops after it (a frame over
	// bigFrameSize): the handler may keep those bytes without a copy
	// (payload).
	owned bool
}

// payload returns the bytes of b, the last argument of the packet being
// handled, as a string: without copying them when the buffer is the
// handler's to keep (a large payload: one copy fewer of it in memory),
// else a copy.
func (h *handler) payload(b []byte) string {
	if h.owned && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

// feed decodes p and handles every complete frame. It returns false when
// the connection must be closed.
func (h *handler) feed(p []byte) bool {
	c := h.c
	defer h.flushBatch()
	for len(p) > 0 {
		n, f, ok, err := c.dec.Next(p)
		p = p[n:]
		if err != nil {
			h.flushBatch()
			h.frameError(err)
			return false
		}
		if !ok {
			continue
		}
		h.frames++
		if len(h.batch) > 0 && !h.batchable(&f) {
			h.flushBatch()
		}
		var keep bool
		if f.Text {
			keep = h.text(f.Line)
		} else {
			// A slice of the read buffer (at most maxReadBuf) is never
			// this large: such a payload is in the decoder's buffer.
			big := len(f.Packet.Args) > 0 && cap(f.Packet.Args[len(f.Packet.Args)-1]) > bigFrameSize
			h.owned = big
			if f.Skipped {
				// A submit payload refused by admit: memory is full.
				h.flushBatch()
				h.refuseMemory(nil)
				continue
			}
			keep = h.packet(&f.Packet)
			h.owned = false
			if c.reserved != 0 { // the submit returned before it took it
				h.s.mu.Lock()
				h.s.unreserve(c)
				h.s.mu.Unlock()
			}
			if big {
				// Give a large payload buffer back (or leave it to the
				// job that keeps it).
				c.dec = c.newDecoder()
			}
		}
		if !keep {
			return false
		}
	}
	return true
}

func (h *handler) frameError(err error) {
	var fe *protocol.FrameError
	errors.As(err, &fe)
	switch {
	case errors.Is(err, protocol.ErrPayloadTooLarge):
		h.c.sendError(protocol.CodeArgumentTooLarge, textPayloadTooLarge)
	case errors.Is(err, protocol.ErrArgsTooLarge):
		h.c.sendError(protocol.CodeArgumentTooLarge, textArgsTooLarge)
	}
	h.c.logger().WithError(err).Info("closing connection: framing error")
}
