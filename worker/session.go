package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/internal/rawio"
	"github.com/gworkerd/gworkerd/protocol"
)

// session is one TCP connection to one server, from dial to close. The
// server loop that created it owns it; job goroutines only call send.
type session struct {
	addr string
	conn net.Conn
	// rw reads and writes conn: its rawio.Conn (no sysmon wake-ups), or
	// conn itself when it has no descriptor.
	rw io.ReadWriter

	// wmu serialises writes: the server loop and job goroutines share conn.
	wmu sync.Mutex

	// frames carries packets from the reader goroutine to the server loop.
	frames chan protocol.Packet
	// readDone is closed when the reader goroutine exits; readErr says why.
	readDone chan struct{}
	readErr  error

	closeOnce sync.Once
	closed    chan struct{}

	// active counts the jobs assigned on this connection and not finished.
	active sync.WaitGroup
	// timed counts those of them whose function has a CAN_DO_TIMEOUT.
	timed atomic.Int32

	// gmu guards parked, which is true while the server loop waits in
	// acquire for a slot with no grab in flight. A job ending on this
	// connection may then take the loop's turn (Worker.handOver): it
	// clears parked, sends GRAB_JOB_UNIQ in the same write as its result,
	// and puts a token in handed (capacity 1) once it has ended. Lock
	// order: gmu, then Worker.mu.
	gmu    sync.Mutex
	parked bool
	handed chan struct{}
}

func newSession(addr string, conn net.Conn) *session {
	s := &session{
		addr:     addr,
		conn:     conn,
		rw:       conn,
		frames:   make(chan protocol.Packet),
		readDone: make(chan struct{}),
		closed:   make(chan struct{}),
		handed:   make(chan struct{}, 1),
	}
	if raw, ok := rawio.New(conn); ok {
		s.rw = raw
	}
	go s.read()
	return s
}

// read is the reader goroutine; it exits when the connection fails or is
// closed.
func (s *session) read() {
	defer close(s.readDone)
	r := protocol.NewReader(s.rw, protocol.Limits{})
	for {
		f, err := r.Next()
		if err != nil {
			s.readErr = err
			return
		}
		if f.Text {
			continue // no text replies are expected on a worker connection
		}
		select {
		case s.frames <- f.Packet.Clone():
		case <-s.closed:
			s.readErr = ErrConnClosed
			return
		}
	}
}

// err returns why the reader stopped; call after readDone is closed.
func (s *session) err() error {
	if s.readErr == nil {
		return ErrConnClosed
	}
	return s.readErr
}

// send writes one request packet. ctx's deadline, if any, bounds the write.
func (s *session) send(ctx context.Context, t protocol.Type, args ...[]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.write(ctx, protocol.AppendPacket(nil, protocol.Req, t, args...))
}

// sendThenGrab writes one request packet followed by GRAB_JOB_UNIQ, in
// one write.
func (s *session) sendThenGrab(ctx context.Context, t protocol.Type, args ...[]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := protocol.AppendPacket(nil, protocol.Req, t, args...)
	return s.write(ctx, protocol.AppendPacket(buf, protocol.Req, protocol.GrabJobUniq))
}

// write writes buf, whole request packets, under wmu.
func (s *session) write(ctx context.Context, buf []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.closed:
		return ErrConnClosed
	default:
	}
	if d, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(d)
		defer s.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := s.rw.Write(buf); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrConnClosed
		}
		return err
	}
	return nil
}

// park marks the server loop as waiting for a slot; idle counts the
// parked loops of the worker.
func (s *session) park(idle *atomic.Int32) {
	s.gmu.Lock()
	s.parked = true
	idle.Add(1)
	s.gmu.Unlock()
}

// unpark clears parked. It returns false when a job took the loop's turn
// meanwhile: a grab is then in flight and a token comes in handed.
func (s *session) unpark(idle *atomic.Int32) bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if !s.parked {
		return false
	}
	s.parked = false
	idle.Add(-1)
	return true
}

// close closes the connection; the reader goroutine then exits. It is safe
// to call more than once and from any goroutine.
func (s *session) close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		_ = s.conn.Close() // unblocks a writer stuck in Write

	})
}
