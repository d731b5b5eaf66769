package postgres

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// connSet tracks the open sockets of a Store: the pool's connections and
// those pgx dials for cancel requests. pgx ends a connection whose call
// ran out of time with a cancel request and a drain, each bounded by a
// fixed 15 s, and the pool's Close waits for them; while the database
// does not answer that would hold Close for 15 s. Close ends the sockets
// that are still open after a short grace instead.
type connSet struct {
	mu     sync.Mutex
	m      map[*trackedConn]struct{}
	closed bool // closeAll ran: no more sockets
}

func newConnSet() *connSet { return &connSet{m: make(map[*trackedConn]struct{})} }

// dialer wraps dial so that every socket it opens is tracked.
func (cs *connSet) dialer(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, set: cs}
		cs.mu.Lock()
		closed := cs.closed
		if !closed {
			cs.m[tc] = struct{}{}
		}
		cs.mu.Unlock()
		if closed {
			_ = c.Close()
			return nil, fmt.Errorf("postgres: dial %s: %w", addr, net.ErrClosed)
		}
		return tc, nil
	}
}

// closeAll closes every tracked socket, so that the reads and writes
// blocked on them fail at once, and refuses to open more.
func (cs *connSet) closeAll() {
	cs.mu.Lock()
	cs.closed = true
	conns := make([]*trackedConn, 0, len(cs.m))
	for c := range cs.m {
		conns = append(conns, c)
	}
	cs.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// trackedConn is a socket of the set; closing it removes it.
type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.m, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}
