package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
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
	// wr is rw's writer, which flushes write to.
	wr io.Writer

	// wmu guards the output queue below: the server loop and job
	// goroutines share conn. Writes are grouped: a writer appends its
	// packets to out and, unless another writer is flushing, flushes
	// out itself after letting the goroutines ready to run append theirs
	// (the results of jobs whose handlers answered together), so that
	// they go out in one write(2). Every writer returns once its own
	// packets are written, or with the error that stopped them.
	wmu      sync.Mutex
	wcond    sync.Cond // on wmu: signalled after each flush
	out      []byte    // queued, not yet written
	spare    []byte    // the buffer of the previous flush, reused
	queued   uint64    // bytes ever queued
	written  uint64    // bytes ever written
	flushing bool      // a writer is flushing out
	werr     error     // the write error that broke the connection

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

	// gmu guards the fields below. Lock order: wmu, gmu, Worker.mu.
	gmu sync.Mutex
	// grabs has one entry per GRAB_JOB_UNIQ in flight, in the order they
	// were written: nil for one the server loop sent, or the channel that
	// the job which sent it with its result (Worker.handOver) closes once
	// it has ended, so that the loop takes the reply only then: the end
	// of one job comes before the start of the next in events and stats.
	grabs []chan struct{}
	// grabAt holds when each grab of grabs was written, for
	// Options.GrabTimeout; now tells the time.
	grabAt []time.Time
	now    func() time.Time
	// heard is when bytes last came from the server, Unix nanoseconds.
	heard atomic.Int64
	// parked is true while the loop waits for a slot with no grab in
	// flight.
	parked bool
	// noJob is true from a NO_JOB until the loop's next sleep: no grab
	// is handed over meanwhile, so that the loop can PRE_SLEEP.
	noJob bool
	// sleeping is true while the loop waits for a NOOP after PRE_SLEEP:
	// no grab may go out then.
	sleeping bool
	// gone is set when the loop has given up the connection (dropGrabs):
	// a grab is no longer recorded.
	gone bool
}

func newSession(addr string, conn net.Conn, now func() time.Time) *session {
	s := &session{
		now:      now,
		addr:     addr,
		conn:     conn,
		rw:       conn,
		frames:   make(chan protocol.Packet),
		readDone: make(chan struct{}),
		closed:   make(chan struct{}),
	}
	s.wcond.L = &s.wmu
	if raw, ok := rawio.New(conn); ok {
		s.rw = raw
	}
	s.wr = s.rw
	go s.read()
	return s
}

// read is the reader goroutine; it exits when the connection fails or is
// closed.
func (s *session) read() {
	defer close(s.readDone)
	r := protocol.NewReader(heardReader{s}, protocol.Limits{})
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

// heardReader reads the connection and notes when bytes last came
// (session.heard): a server sending a large packet is not silent.
type heardReader struct{ s *session }

func (h heardReader) Read(p []byte) (int, error) {
	n, err := h.s.rw.Read(p)
	if n > 0 {
		h.s.heard.Store(h.s.now().UnixNano())
	}
	return n, err
}

// lastHeard returns when bytes last came from the server.
func (s *session) lastHeard() time.Time { return time.Unix(0, s.heard.Load()) }

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

// grab writes GRAB_JOB_UNIQ, after pre (whole request packets, or nil)
// in the same write, and records it in grabs with done (see grabs). A
// grab a job hands over (done not nil) is refused while the loop sleeps
// or has seen a NO_JOB, and any grab once the loop has given the
// connection up: then pre alone is written. recorded says whether the
// grab was; err is the write's.
//
// The check and the record are made under gmu, as the loop's decision to
// sleep (startSleep): a grab is either recorded before the loop decides,
// which then waits for its reply, or refused.
func (s *session) grab(ctx context.Context, pre []byte, done chan struct{}) (recorded bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.gmu.Lock()
	if s.gone || (done != nil && (s.sleeping || s.noJob)) {
		s.gmu.Unlock()
		if len(pre) == 0 {
			return false, nil
		}
		return false, s.writeLocked(ctx, pre)
	}
	s.grabs = append(s.grabs, done)
	s.grabAt = append(s.grabAt, s.now())
	s.gmu.Unlock()
	return true, s.writeLocked(ctx, protocol.AppendPacket(pre, protocol.Req, protocol.GrabJobUniq))
}

// state returns how many grabs wait for their reply, noJob, and when
// the oldest of them was written (zero when none is).
func (s *session) state() (inflight int, noJob bool, oldest time.Time) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if len(s.grabAt) > 0 {
		oldest = s.grabAt[0]
	}
	return len(s.grabs), s.noJob, oldest
}

// popGrab takes the oldest grab in flight, for its reply; ok is false
// when none is.
func (s *session) popGrab() (done chan struct{}, ok bool) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if len(s.grabs) == 0 {
		return nil, false
	}
	done = s.grabs[0]
	s.grabs[0] = nil
	s.grabs = s.grabs[1:]
	s.grabAt = s.grabAt[1:]
	return done, true
}

// dropGrabs gives the connection up: it forgets the grabs in flight and
// returns how many there were; later grabs are refused.
func (s *session) dropGrabs() int {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	n := len(s.grabs)
	s.grabs, s.grabAt, s.gone = nil, nil, true
	return n
}

// startSleep marks the loop asleep and clears noJob, unless a grab is in
// flight (one a job recorded before it saw noJob): then the loop must
// read its reply first, and startSleep returns false.
func (s *session) startSleep() bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if len(s.grabs) > 0 {
		return false
	}
	s.sleeping, s.noJob = true, false
	return true
}

func (s *session) endSleep() {
	s.gmu.Lock()
	s.sleeping = false
	s.gmu.Unlock()
}

func (s *session) clearNoJob() {
	s.gmu.Lock()
	s.noJob = false
	s.gmu.Unlock()
}

// leaveIfIdle gives the connection up (see dropGrabs) when no grab is in
// flight, and reports whether it did.
func (s *session) leaveIfIdle() bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if len(s.grabs) > 0 {
		return false
	}
	s.gone = true
	return true
}

func (s *session) setNoJob() {
	s.gmu.Lock()
	s.noJob = true
	s.gmu.Unlock()
}

// write writes buf, whole request packets, under wmu.
func (s *session) write(ctx context.Context, buf []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked(ctx, buf)
}

// writeLocked queues buf and returns once it is written (see wmu); wmu
// is held on entry and on return, and released while it waits.
func (s *session) writeLocked(ctx context.Context, buf []byte) error {
	select {
	case <-s.closed:
		return ErrConnClosed
	default:
	}
	if s.werr != nil {
		return s.werr
	}
	s.out = append(s.out, buf...)
	s.queued += uint64(len(buf))
	mine := s.queued
	if s.flushing {
		for s.written < mine && s.werr == nil {
			s.wcond.Wait()
		}
		if s.written >= mine {
			return nil
		}
		return s.werr
	}
	s.flushing = true
	s.wmu.Unlock()
	runtime.Gosched() // let the writers ready to run queue theirs
	s.wmu.Lock()
	for s.written < s.queued && s.werr == nil {
		// b is written unlocked while writers append to s.out: they
		// must not share an array. The spare buffer becomes s.out and is
		// no longer the spare (b takes its place if it is small enough).
		b, upto := s.out, s.queued
		s.out, s.spare = s.spare[:0], nil
		s.wmu.Unlock()
		err := s.flush(ctx, b)
		s.wmu.Lock()
		if cap(b) <= maxSpare {
			s.spare = b[:0]
		}
		if err != nil {
			s.werr = err
			break
		}
		s.written = upto
	}
	s.flushing = false
	s.wcond.Broadcast()
	if s.written >= mine {
		return nil
	}
	return s.werr
}

// maxSpare bounds the output buffer a session keeps between flushes.
const maxSpare = 64 << 10

// flush writes b; ctx's deadline, if any, bounds the write.
func (s *session) flush(ctx context.Context, b []byte) error {
	if d, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(d)
		defer s.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := s.wr.Write(b); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrConnClosed
		}
		return err
	}
	return nil
}

// park marks the server loop as waiting for a slot with no grab in
// flight; idle counts the parked loops of the worker.
func (s *session) park(idle *atomic.Int32) {
	s.gmu.Lock()
	s.parked = true
	idle.Add(1)
	s.gmu.Unlock()
}

// unpark clears parked, if set.
func (s *session) unpark(idle *atomic.Int32) {
	s.gmu.Lock()
	if s.parked {
		s.parked = false
		idle.Add(-1)
	}
	s.gmu.Unlock()
}

// close closes the connection; the reader goroutine then exits. It is safe
// to call more than once and from any goroutine.
func (s *session) close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		_ = s.conn.Close() // unblocks a writer stuck in Write

	})
}
