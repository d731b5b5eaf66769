package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// silentStore is a memStore whose Add, while silent is set, never
// answers: it returns only when its ctx ends (or the test ends, so that a
// server without deadlines does not hang the test's cleanup).
type silentStore struct {
	*memStore
	silent  atomic.Bool
	entered chan struct{} // gets a value when a silent Add begins
	quit    chan struct{} // closed at the end of the test
}

func newSilentStore() *silentStore {
	return &silentStore{memStore: newMemStore(), entered: make(chan struct{}, 16), quit: make(chan struct{})}
}

func (s *silentStore) Add(ctx context.Context, jobs ...store.Job) error {
	if !s.silent.Load() {
		return s.memStore.Add(ctx, jobs...)
	}
	s.entered <- struct{}{}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return context.Canceled
	}
}

// TestStoreTimeout (issue 10): with a store that does not answer, a
// background submit gets ERROR QUEUE_ERROR once Options.StoreTimeout has
// passed, on every path (a new job; one that joins a foreground job with
// the same unique), and no job is created; when the store answers again
// the same submit is acknowledged. Shutdown ends while a submit waits on
// the silent store, and that submit is not acknowledged.
func TestStoreTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	tests := []struct {
		name string
		// fg submits a foreground job with the unique first (the
		// background submit then joins it).
		fg bool
	}{
		{name: "new job"},
		{name: "joins a foreground job", fg: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newSilentStore()
			ts := startServer(t, func(o *Options) { o.Store = st; o.StoreTimeout = timeout })
			t.Cleanup(func() { close(st.quit) }) // runs before the server's Close
			var fgHandle string
			if tt.fg {
				fgHandle = ts.dial(t).submit(protocol.SubmitJob, "f", "u", "x")
			}
			st.silent.Store(true)
			c := ts.dial(t)
			c.send(protocol.SubmitJobBg, "f", "u", "x")
			c.expectError(protocol.CodeQueueError, textStoreFailed)
			ok, bg, _ := ts.jobState("f", "u")
			if ok != tt.fg || bg {
				t.Fatalf("after the QUEUE_ERROR: job exists %v, background %v; want exists %v (the foreground job only), background false", ok, bg, tt.fg)
			}
			if n := st.len(); n != 0 {
				t.Fatalf("after the QUEUE_ERROR the store holds %d jobs, want 0", n)
			}

			st.silent.Store(false)
			h := c.submit(protocol.SubmitJobBg, "f", "u", "x")
			if tt.fg && h != fgHandle {
				t.Fatalf("background submit joining the foreground job: handle %s, want %s", h, fgHandle)
			}
			if n := st.len(); n != 1 {
				t.Fatalf("after JOB_CREATED the store holds %d jobs, want 1", n)
			}

			st.silent.Store(true)
			c.send(protocol.SubmitJobBg, "f", "at-stop", "y")
			select {
			case <-st.entered:
			case <-time.After(ioTimeout):
				t.Fatal("the submit's Store.Add did not begin")
			}
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if err := ts.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown while the store does not answer (store timeout %v): %v", timeout, err)
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
			for {
				p, err := c.readPacket()
				if err != nil {
					break // closed by the shutdown
				}
				if p.typ != protocol.Error || string(p.body) != protocol.CodeQueueError+"\x00"+textStoreFailed {
					t.Fatalf("the submit in flight at Shutdown: got %v, want ERROR QUEUE_ERROR or the connection closed (never an ack)", p)
				}
			}
		})
	}
}
