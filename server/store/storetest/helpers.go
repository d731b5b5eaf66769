package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
)

// RequireTCP skips t unless something answers at addr (a database the
// backend's tests need), naming the service; under
// GWORKERD_REQUIRE_PEERS=1 it fails instead.
func RequireTCP(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := fmt.Sprintf("SKIP: %s is not reachable at %s (%v); deploy/ci-services.sh starts it", name, addr, err)
	if os.Getenv("GWORKERD_REQUIRE_PEERS") == "1" {
		t.Fatal(msg + "; GWORKERD_REQUIRE_PEERS=1 makes this a failure")
	}
	t.Skip(msg)
}

// Proxy is a loopback TCP proxy whose connections a test can cut, to
// simulate a database that goes away and comes back.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards down and conns
	down  bool
	conns map[net.Conn]struct{}

	wg sync.WaitGroup // the accept loop and the copiers
}

// NewProxy starts a proxy to target on 127.0.0.1; t's cleanup stops it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil || !p.track(up) {
			if up != nil {
				_ = up.Close()
			}
			p.untrack(c)
			_ = c.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.untrack(dst)
	p.untrack(src)
}

// RunOutage checks that a store reached through a proxy to target fails
// its Adds while the connection is cut and works again once it is
// restored, without being reopened. open must connect to the given
// address instead of the real one.
func RunOutage(t *testing.T, target string, open func(t *testing.T, addr string) store.Store) {
	t.Helper()
	p := NewProxy(t, target)
	s := open(t, p.Addr())
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	before := store.Job{Function: "outage", Key: "before", Priority: 1, Data: []byte("1")}
	if err := s.Add(ctx, before); err != nil {
		t.Fatalf("Add before the outage: %v", err)
	}
	p.Cut()
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.Add(actx, store.Job{Function: "outage", Key: "during", Priority: 1, Data: []byte("2")})
	acancel()
	if err == nil {
		t.Fatal("Add while the database is unreachable returned nil, want an error")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add while the database is unreachable hung until the deadline: %v", err)
	}
	t.Logf("Add during outage: %v", err)
	p.Restore()
	after := store.Job{Function: "outage", Key: "after", Priority: 1, Data: []byte("3")}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Add(ctx, after)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Add after the database came back still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // retry until the backend reconnects, bounded
	}
	got := byRef(replayAll(t, s))
	for _, w := range []store.Job{before, after} {
		if g, ok := got[w.Ref()]; !ok || !equalJob(g, w) {
			t.Errorf("after the outage, job %s = %s (present %v)", describe(w), describe(g), ok)
		}
	}
}
