package server

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// addGate holds every Store.Add of a memStore until opened, and tells
// the test when one has begun.
type addGate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// open lets every Add through. Tests also register it as a cleanup after
// startServer, so that a failing test does not leave the server's Close
// waiting for a held Add.
func (g *addGate) open() { g.once.Do(func() { close(g.release) }) }

func newAddGate(st *memStore) *addGate {
	g := &addGate{entered: make(chan struct{}, 16), release: make(chan struct{})}
	st.addHook = func() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g
}

// wait returns once n Adds have begun.
func (g *addGate) wait(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-g.entered:
		case <-time.After(ioTimeout):
			t.Fatalf("Store.Add %d of %d did not begin", i+1, n)
		}
	}
}

// jobState returns whether the job of fn with this unique exists, and
// whether it is a background job and how many clients wait for it.
func (ts *testServer) jobState(fn, unique string) (ok, bg bool, clients int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	f := ts.funcs[fn]
	if f == nil || f.uniq[unique] == nil {
		return false, false, 0
	}
	j := f.uniq[unique]
	return true, j.bg, j.nclients
}

// TestCoalescedBackgroundWritesFirst (issue 10): a SUBMIT_JOB_BG that
// joins a foreground job with the same unique is answered only after
// the job's record is written, and with ERROR QUEUE_ERROR when the write
// fails; the paths where the job's clients leave or the job finishes
// while the write is in flight keep their jobs and records right.
func TestCoalescedBackgroundWritesFirst(t *testing.T) {
	t.Parallel()

	t.Run("AddFailsQueueErrorJobStaysForeground", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		st.failAdd = errors.New("disk full")
		ts := startServer(t, func(o *Options) { o.Store = st })
		fg, bg := ts.dial(t), ts.dial(t)
		h := fg.submit(protocol.SubmitJob, "co", "u", "x")
		bg.send(protocol.SubmitJobBg, "co", "u", "x")
		bg.expectError("QUEUE_ERROR", "QUEUE_ERROR")
		if r := bg.admin("show jobs"); r != h+"\t0\t0\t0\n.\n" {
			t.Fatalf("show jobs %q, want the job still foreground", r)
		}
		_ = fg.nc.Close()
		waitFor(t, "the foreground job goes with its client", func() bool {
			ok, _, _ := ts.jobState("co", "u")
			return !ok
		})
	})

	t.Run("SecondJoinWritesToo", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		g := newAddGate(st)
		ts := startServer(t, func(o *Options) { o.Store = st })
		t.Cleanup(g.open)
		fg, b1, b2 := ts.dial(t), ts.dial(t), ts.dial(t)
		h := fg.submit(protocol.SubmitJob, "co", "u", "x")
		b1.send(protocol.SubmitJobBg, "co", "u", "x")
		g.wait(t, 1)
		// The job already counts as background, but is not stored yet:
		// the second submit must write it as well before its ack.
		b2.send(protocol.SubmitJobBg, "co", "u", "x")
		g.wait(t, 1)
		g.open()
		b1.expect(protocol.JobCreated, h)
		b2.expect(protocol.JobCreated, h)
		if n := st.len(); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	})

	t.Run("ClientLeavesDuringAdd", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		g := newAddGate(st)
		ts := startServer(t, func(o *Options) { o.Store = st })
		t.Cleanup(g.open)
		fg, bg := ts.dial(t), ts.dial(t)
		h := fg.submit(protocol.SubmitJob, "co", "u", "x")
		bg.send(protocol.SubmitJobBg, "co", "u", "x")
		g.wait(t, 1)
		_ = fg.nc.Close()
		waitFor(t, "the client is gone", func() bool {
			ok, bgj, n := ts.jobState("co", "u")
			if !ok {
				t.Fatal("the job went with its client while a background submit was storing it")
			}
			return bgj && n == 0
		})
		g.open()
		bg.expect(protocol.JobCreated, h)
		w := ts.worker(t, "co")
		if got, _, _ := w.grab(); got != h {
			t.Fatalf("grabbed %s, want %s", got, h)
		}
		if n := st.len(); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
		w.send(protocol.WorkComplete, h, "")
		waitFor(t, "completion deletes the record", func() bool { return st.len() == 0 })
	})

	t.Run("ClientLeavesDuringFailedAdd", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		st.failAdd = errors.New("disk full")
		g := newAddGate(st)
		ts := startServer(t, func(o *Options) { o.Store = st })
		t.Cleanup(g.open)
		fg, bg := ts.dial(t), ts.dial(t)
		fg.submit(protocol.SubmitJob, "co", "u", "x")
		bg.send(protocol.SubmitJobBg, "co", "u", "x")
		g.wait(t, 1)
		_ = fg.nc.Close()
		waitFor(t, "the client is gone", func() bool {
			_, _, n := ts.jobState("co", "u")
			return n == 0
		})
		g.open()
		bg.expectError("QUEUE_ERROR", "QUEUE_ERROR")
		if ok, _, _ := ts.jobState("co", "u"); ok {
			t.Fatal("a foreground job nobody waits for stayed after the failed background submit")
		}
		if r := bg.admin("status"); r != "co\t0\t0\t0\n.\n" {
			t.Fatalf("status %q, want no job", r)
		}
	})

	t.Run("JobCompletesDuringAdd", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		g := newAddGate(st)
		ts := startServer(t, func(o *Options) { o.Store = st })
		t.Cleanup(g.open)
		fg, bg := ts.dial(t), ts.dial(t)
		w := ts.worker(t, "co")
		h := fg.submit(protocol.SubmitJob, "co", "u", "x")
		w.grab()
		bg.send(protocol.SubmitJobBg, "co", "u", "x")
		g.wait(t, 1)
		w.send(protocol.WorkComplete, h, "r")
		fg.expect(protocol.WorkComplete, h, "r")
		g.open()
		bg.expect(protocol.JobCreated, h)
		waitFor(t, "the finished job's record is deleted", func() bool { return st.len() == 0 })
	})
}

// TestFinishedJobSparesRecordBeingWritten: two connections submit the
// same unique at once; the first one's job is created, runs and finishes
// while the second one's Add of the same key is applied but has not
// returned. The finished job must not delete that record: the second
// submit creates a new job under it and acknowledges it.
func TestFinishedJobSparesRecordBeingWritten(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	st.addedHook = func(jobs []store.Job) {
		if len(jobs) == 1 && string(jobs[0].Data) == "b" {
			entered <- struct{}{}
			<-release
		}
	}
	ts := startServer(t, func(o *Options) { o.Store = st })
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	a, b := ts.dial(t), ts.dial(t)
	b.send(protocol.SubmitJobBg, "sp", "u", "b")
	select {
	case <-entered:
	case <-time.After(ioTimeout):
		t.Fatal("the second submit's Add did not begin")
	}
	h := a.submit(protocol.SubmitJobBg, "sp", "u", "a")
	w := ts.worker(t, "sp")
	if got, _, _ := w.grab(); got != h {
		t.Fatalf("grabbed %s, want %s", got, h)
	}
	w.send(protocol.WorkComplete, h, "")
	w.sync()
	waitFor(t, "deleter idle", func() bool {
		ts.del.mu.Lock()
		defer ts.del.mu.Unlock()
		return len(ts.del.pending) == 0
	})
	once.Do(func() { close(release) })
	h2 := b.expectType(protocol.JobCreated)[0]
	if h2 == h {
		t.Fatalf("second submit joined the finished job %s", h)
	}
	b.sync()
	waitFor(t, "deleter idle", func() bool {
		ts.del.mu.Lock()
		defer ts.del.mu.Unlock()
		return len(ts.del.pending) == 0
	})
	if n := len(st.byFunction("sp")); n != 1 {
		t.Fatalf("the acknowledged job %s has %d records, want 1", h2, n)
	}
}

// TestMaxQueueCoalesces (issue 11): at a function's maxqueue, a submit
// whose unique matches a queued or running job joins it (it adds no job),
// with and without a store, pipelined or not; one with a new unique gets
// QUEUE_ERROR.
func TestMaxQueueCoalesces(t *testing.T) {
	t.Parallel()
	for _, withStore := range []bool{false, true} {
		t.Run(map[bool]string{false: "builtin", true: "store"}[withStore], func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(o *Options) {
				if withStore {
					o.Store = newMemStore()
				}
			})
			c := ts.dial(t)
			if got := c.admin("maxqueue f 1"); got != protocol.ReplyOK {
				t.Fatalf("maxqueue: %q", got)
			}
			c.send(protocol.SubmitJobBg, "f", "u1", "a")
			c.send(protocol.SubmitJobBg, "f", "u1", "b") // pipelined: joins the first
			h := c.expectType(protocol.JobCreated)[0]
			c.expect(protocol.JobCreated, h)
			c.send(protocol.SubmitJobLowBg, "f", "u2", "c")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			fg := ts.dial(t)
			fg.send(protocol.SubmitJob, "f", "u1", "d")
			fg.expect(protocol.JobCreated, h)
			w := ts.worker(t, "f")
			if got, _, _ := w.grab(); got != h {
				t.Fatalf("grabbed %s, want %s", got, h)
			}
			fg2 := ts.dial(t)
			fg2.send(protocol.SubmitJobHigh, "f", "u1", "e")
			fg2.expect(protocol.JobCreated, h)
			c.send(protocol.SubmitJobBg, "f", "u1", "f")
			c.expect(protocol.JobCreated, h)
			c.send(protocol.SubmitJob, "f", "", "g")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
		})
	}
}

// TestMaxQueueSizes (issue 11): maxqueue's sizes as gearmand 1.1.20
// reads them (measured in interop's Functions/MaxqueueSizes).
func TestMaxQueueSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args string
		want [3]int
	}{
		{"", [3]int{0, 0, 0}},
		{"4", [3]int{4, 4, 4}},
		{"1 3", [3]int{1, 3, 0}},
		{"1 2 3", [3]int{1, 2, 3}},
		{"1 2 3 4", [3]int{1, 2, 3}},
		{"-1", [3]int{0, 0, 0}},
		{"x", [3]int{0, 0, 0}},
		{"7x", [3]int{7, 7, 7}},
		{"4294967301", [3]int{5, 5, 5}},
		{"2147483648", [3]int{0, 0, 0}},
		{"99999999999999999999", [3]int{0, 0, 0}},
	}
	ts := startServer(t, nil)
	c := ts.dial(t)
	for _, tt := range tests {
		if got := c.admin(strings.TrimSpace("maxqueue f " + tt.args)); got != protocol.ReplyOK {
			t.Fatalf("maxqueue f %s: %q", tt.args, got)
		}
		ts.mu.Lock()
		got := ts.funcs["f"].max
		ts.mu.Unlock()
		if got != tt.want {
			t.Errorf("maxqueue f %s: limits %v, want %v", tt.args, got, tt.want)
		}
	}
}
