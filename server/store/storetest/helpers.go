package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
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

// Proxy is a loopback TCP proxy whose connections a test can cut or
// stall (see tcpproxy).
type Proxy = tcpproxy.Proxy

// NewProxy starts a proxy to target on 127.0.0.1; t's cleanup stops it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := tcpproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
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
	recovered(ctx, t, s, "the outage", before, store.Job{Function: "outage", Key: "after", Priority: 1, Data: []byte("3")})
}

// StallTimeout is the deadline RunStall puts on each call.
const StallTimeout = time.Second

// RunStall checks that a store reached through a proxy to target, with a
// short store.WithTimeout, fails its calls once their deadline passes
// while the database does not answer (the proxy stalled: sockets open,
// nothing forwarded), that it works again once the proxy resumes without
// being reopened, and that Close returns while the database is silent.
// open must connect to the given address instead of the real one, with
// StallTimeout for any I/O timeout of its own.
func RunStall(t *testing.T, target string, open func(t *testing.T, addr string) store.Store) {
	t.Helper()
	const timeout = StallTimeout
	// bound is how long a call may take in all before the test calls it
	// hung: many times the deadline, for a loaded machine.
	const bound = 20 * timeout
	p := NewProxy(t, target)
	raw := open(t, p.Addr())
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Resume()
			_ = raw.Close()
		}
	})
	s := store.WithTimeout(raw, timeout)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// call runs one store call and returns its error, failing the test if
	// it has not returned within bound.
	call := func(what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(bound):
			t.Fatalf("%s while the database does not answer: no return within %v (store timeout %v)", what, bound, timeout)
			return nil
		}
	}

	before := job("stall", "before", "1")
	if err := s.Add(ctx, before); err != nil {
		t.Fatalf("Add before the stall: %v", err)
	}
	p.Stall()
	err := call("Add", func() error { return s.Add(ctx, job("stall", "during", "2")) })
	if !errors.Is(err, store.ErrTimeout) {
		t.Fatalf("Add while the database does not answer: %v, want an error wrapping store.ErrTimeout", err)
	}
	t.Logf("Add during the stall: %v", err)
	err = call("Delete", func() error { return s.Delete(ctx, before.Ref()) })
	if !errors.Is(err, store.ErrTimeout) {
		t.Fatalf("Delete while the database does not answer: %v, want an error wrapping store.ErrTimeout", err)
	}
	err = call("Replay", func() error { return s.Replay(ctx, func(store.Job) error { return nil }) })
	if !errors.Is(err, store.ErrTimeout) {
		t.Fatalf("Replay while the database does not answer: %v, want an error wrapping store.ErrTimeout", err)
	}

	p.Resume()
	recovered(ctx, t, s, "the stall", before, job("stall", "after", "3"))

	p.Stall()
	closed = true
	if err := call("Close", raw.Close); err != nil {
		t.Errorf("Close while the database does not answer: %v", err)
	}
	p.Resume()
}

// recovered adds after once the database answers again (retrying while
// the backend reconnects, bounded) and checks that before, stored ahead
// of the fault (what), and after are both there.
func recovered(ctx context.Context, t *testing.T, s store.Store, what string, before, after store.Job) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Add(ctx, after)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Add after %s still fails: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // retry until the backend reconnects, bounded
	}
	got := byRef(replayAll(t, s))
	for _, w := range []store.Job{before, after} {
		if g, ok := got[w.Ref()]; !ok || !equalJob(g, w) {
			t.Errorf("after %s, job %s = %s (present %v)", what, describe(w), describe(g), ok)
		}
	}
}
