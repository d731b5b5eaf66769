package worker

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// session is one TCP connection to one server, from dial to close. The
// server loop that created it owns it; job goroutines only call send.
type session struct {
	addr string
	conn net.Conn

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
}

func newSession(addr string, conn net.Conn) *session {
	s := &session{
		addr:     addr,
		conn:     conn,
		frames:   make(chan protocol.Packet),
		readDone: make(chan struct{}),
		closed:   make(chan struct{}),
	}
	go s.read()
	return s
}

// read is the reader goroutine; it exits when the connection fails or is
// closed.
func (s *session) read() {
	defer close(s.readDone)
	r := protocol.NewReader(s.conn, protocol.Limits{})
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
	buf := protocol.AppendPacket(nil, protocol.Req, t, args...)
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
	if _, err := s.conn.Write(buf); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrConnClosed
		}
		return err
	}
	return nil
}

// close closes the connection; the reader goroutine then exits. It is safe
// to call more than once and from any goroutine.
func (s *session) close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		_ = s.conn.Close() // unblocks a writer stuck in Write

	})
}
