package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// memStore is an in-memory store.Store that records its calls.
type memStore struct {
	mu      sync.Mutex
	order   []store.Ref
	jobs    map[store.Ref]store.Job
	adds    int
	calls   int
	deletes int
	// refs are the refs of every Delete call, in order.
	refs    []store.Ref
	failAdd error
	// addHook, when set, runs inside Add (without the store's lock).
	addHook func()
	// addedHook, when set, runs at the end of an Add that wrote its
	// jobs (without the store's lock): the Add is then applied but has
	// not returned yet.
	addedHook func(jobs []store.Job)
}

func newMemStore() *memStore { return &memStore{jobs: map[store.Ref]store.Job{}} }

func (m *memStore) Add(_ context.Context, jobs ...store.Job) error {
	if m.addHook != nil {
		m.addHook()
	}
	m.mu.Lock()
	m.calls++
	if m.failAdd != nil {
		m.mu.Unlock()
		return m.failAdd
	}
	for _, j := range jobs {
		j.Data = append([]byte(nil), j.Data...)
		if _, ok := m.jobs[j.Ref()]; !ok {
			m.order = append(m.order, j.Ref())
		}
		m.jobs[j.Ref()] = j
		m.adds++
	}
	m.mu.Unlock()
	if m.addedHook != nil {
		m.addedHook(jobs)
	}
	return nil
}

func (m *memStore) Delete(_ context.Context, refs ...store.Ref) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs = append(m.refs, refs...)
	for _, r := range refs {
		ver := r.Version
		r.Version = 0 // the map's key
		if j, ok := m.jobs[r]; ok && (store.Ref{Version: ver}).Removes(j.Version) {
			delete(m.jobs, r)
			m.deletes++
			for i, o := range m.order {
				if o == r {
					m.order = append(m.order[:i], m.order[i+1:]...)
					break
				}
			}
		}
	}
	return nil
}

func (m *memStore) Replay(_ context.Context, fn func(store.Job) error) error {
	m.mu.Lock()
	var jobs []store.Job
	for _, r := range m.order {
		if j, ok := m.jobs[r]; ok {
			jobs = append(jobs, j)
		}
	}
	m.mu.Unlock()
	for _, j := range jobs {
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Close() error { return nil }

func (m *memStore) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.jobs)
}

func (m *memStore) byFunction(fn string) []store.Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Job
	for _, r := range m.order {
		if j, ok := m.jobs[r]; ok && r.Function == fn {
			out = append(out, j)
		}
	}
	return out
}

// TestChecklistOps: docs/PROTOCOL.md section 7, "Server options / ops", the
// parts that live in the server package.
func TestChecklistOps(t *testing.T) {
	t.Parallel()

	t.Run("Ops/PersistenceBackgroundOnlyWriteBeforeJobCreated", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		ts := startServer(t, func(o *Options) { o.Store = st })
		c := ts.dial(t)
		c.submit(protocol.SubmitJob, "p", "fg", "x")
		c.submit(protocol.SubmitJobHigh, "p", "", "x")
		if st.len() != 0 {
			t.Fatalf("foreground jobs stored: %d", st.len())
		}
		for i, typ := range []protocol.Type{protocol.SubmitJobBg, protocol.SubmitJobHighBg, protocol.SubmitJobLowBg} {
			c.submit(typ, "p", "bg"+strconv.Itoa(i), "x")
			// JOB_CREATED came after the write.
			if n := len(st.byFunction("p")); n != i+1 {
				t.Fatalf("after %v: %d stored", typ, n)
			}
		}
		c.submit2(protocol.SubmitJobEpoch, "p", "ep", "12345", "x")
		c.submit2(protocol.SubmitReduceJobBackground, "p", "red", "reducer", "", "x")
		jobs := st.byFunction("p")
		if len(jobs) != 5 {
			t.Fatalf("stored %d", len(jobs))
		}
		if jobs[1].Priority != 0 || jobs[2].Priority != 2 || jobs[3].When != 12345 || jobs[4].Reducer != "reducer" {
			t.Fatalf("records %+v", jobs)
		}
	})

	t.Run("Ops/PersistenceStoreErrorIsQueueError", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		st.failAdd = errors.New("disk full")
		ts := startServer(t, func(o *Options) { o.Store = st })
		c := ts.dial(t)
		c.send(protocol.SubmitJobBg, "pe", "", "x")
		c.expectError("QUEUE_ERROR", "QUEUE_ERROR")
		if got := c.admin("status"); got != "pe\t0\t0\t0\n.\n" {
			t.Fatalf("job created despite store error: %q", got)
		}
	})

	t.Run("Ops/PersistenceDeleteOnCompleteFailExceptionCancelRetries", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		ts := startServer(t, func(o *Options) { o.Store = st; o.JobRetries = 1 })
		c := ts.dial(t)
		w := ts.worker(t, "pd")
		for _, typ := range []protocol.Type{protocol.WorkComplete, protocol.WorkFail, protocol.WorkException} {
			h := c.submit(protocol.SubmitJobBg, "pd", "", "x")
			w.grab()
			if st.len() != 1 {
				t.Fatalf("%v: running job not stored", typ)
			}
			if typ == protocol.WorkFail {
				w.send(typ, h)
			} else {
				w.send(typ, h, "r")
			}
			waitFor(t, typ.String()+" deletes the stored job", func() bool { return st.len() == 0 })
		}
		h := c.submit(protocol.SubmitJobBg, "pd", "", "x")
		c.admin("cancel job " + h)
		waitFor(t, "cancel deletes the stored job", func() bool { return st.len() == 0 })
		c.submit(protocol.SubmitJobBg, "pd", "", "x")
		w2 := ts.worker(t, "pd")
		w2.grab()
		_ = w2.nc.Close()
		waitFor(t, "drop at retry limit", func() bool { return st.len() == 0 })
		if ts.Stats().Dropped != 1 {
			t.Fatalf("stats %+v", ts.Stats())
		}
	})

	t.Run("Ops/PersistenceReplayEmptyUniqueNotLostAndWhen", func(t *testing.T) {
		t.Parallel()
		clk := clocktest.New()
		st := newMemStore()
		ts := startServer(t, func(o *Options) { o.Store = st; o.Clock = clk })
		c := ts.dial(t)
		c.submit(protocol.SubmitJobBg, "rp", "", "e1")
		c.submit(protocol.SubmitJobBg, "rp", "", "e2")
		c.submit(protocol.SubmitJobLowBg, "rp", "named", "n")
		future := clk.Now().Unix() + 60
		c.submit2(protocol.SubmitJobEpoch, "rp", "later", strconv.FormatInt(future, 10), "f")
		c.submit(protocol.SubmitJobBg, "rp", "-", "dash")
		if st.len() != 5 {
			t.Fatalf("stored %d, want 5 (empty uniques must not overwrite each other)", st.len())
		}
		_ = ts.Close()
		// A new server replays before New returns.
		ts2 := startServer(t, func(o *Options) { o.Store = st; o.Clock = clk })
		a := ts2.dial(t)
		if got := a.admin("prioritystatus"); got != "rp\t0\t4\t1\t0\n.\n" {
			t.Fatalf("after replay %q", got)
		}
		w := ts2.worker(t, "rp")
		var got []string
		for range 4 {
			_, _, d := w.grab()
			got = append(got, d)
		}
		want := []string{"e1", "e2", "dash", "n"}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("replayed order %v, want %v", got, want)
			}
		}
		w.grabNone()
		clk.Advance(time.Minute)
		if _, _, d := w.grab(); d != "f" {
			t.Fatalf("epoch job %q", d)
		}
	})

	// A record left by gearmand for a job with an empty unique has an
	// empty key; replay moves it to a fresh key so that completing the
	// job deletes it (it used to stay and be replayed at every start).
	t.Run("Ops/PersistenceReplayGearmandEmptyKeyIsDeletedOnComplete", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		if err := st.Add(context.Background(), store.Job{Function: "gm", Key: "", Priority: 1, Data: []byte("left by gearmand")}); err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, func(o *Options) { o.Store = st })
		st.mu.Lock()
		_, ok := st.jobs[store.Ref{Function: "gm"}]
		st.mu.Unlock()
		if ok || st.len() != 1 {
			t.Fatalf("after replay: empty-key record kept (%v) or %d records, want one under a fresh key", ok, st.len())
		}
		if j := st.byFunction("gm"); len(j) != 1 || j[0].Key == "" || string(j[0].Data) != "left by gearmand" || j[0].Priority != 1 {
			t.Fatalf("re-keyed record %+v", j)
		}
		w := ts.worker(t, "gm")
		h, _, d := w.grab()
		if d != "left by gearmand" {
			t.Fatalf("replayed job %q", d)
		}
		w.send(protocol.WorkComplete, h, "")
		// The deleter removes the record in the background.
		waitFor(t, "completion deletes the re-keyed record", func() bool { return st.len() == 0 })
	})

	t.Run("Ops/PersistenceBackgroundCoalescedIntoForegroundIsPersisted", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		ts := startServer(t, func(o *Options) { o.Store = st })
		fg, bg := ts.dial(t), ts.dial(t)
		h := fg.submit(protocol.SubmitJob, "co", "u", "x")
		bg.submit(protocol.SubmitJobBg, "co", "u", "y")
		if st.len() != 1 {
			t.Fatal("not persisted")
		}
		if r := bg.admin("show jobs"); r != h+"\t0\t0\t1\n.\n" {
			t.Fatalf("show jobs %q", r)
		}
		_ = fg.nc.Close()
		w := ts.worker(t, "co")
		if g, _, d := w.grab(); g != h || d != "x" {
			t.Fatalf("grabbed %s %s", g, d)
		}
		w.send(protocol.WorkComplete, h, "")
		waitFor(t, "completion deletes the stored job", func() bool { return st.len() == 0 })
	})

	t.Run("Ops/PersistenceConcurrentSubmitsShareStoreCalls", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		var inAdd sync.WaitGroup
		release := make(chan struct{})
		inAdd.Add(2)
		var once sync.Once
		st.addHook = func() {
			inAdd.Done()
			<-release
		}
		ts := startServer(t, func(o *Options) { o.Store = st })
		c1, c2 := ts.dial(t), ts.dial(t)
		c1.send(protocol.SubmitJobBg, "cc", "", "1")
		c2.send(protocol.SubmitJobBg, "cc", "", "2")
		// Both Adds are in flight at once: the server lock is not held
		// while calling the store.
		inAdd.Wait()
		a := ts.dial(t)
		if r := a.admin("version"); r != "OK 1.1.20+ds\n" {
			t.Fatalf("server blocked during Add: %q", r)
		}
		once.Do(func() { close(release) })
		c1.expectType(protocol.JobCreated)
		c2.expectType(protocol.JobCreated)
	})

	t.Run("Ops/PersistencePipelinedSubmitsOneAddInOrder", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		ts := startServer(t, func(o *Options) { o.Store = st })
		c := ts.dial(t)
		existing := c.submit(protocol.SubmitJobBg, "pp", "exists", "x")
		var b []byte
		const n = 100
		for i := range n {
			b = protocol.AppendPacketString(b, protocol.Req, protocol.SubmitJobBg, "pp", "", "job"+strconv.Itoa(i))
		}
		b = protocol.AppendPacketString(b, protocol.Req, protocol.SubmitJobBg, "pp", "exists", "y")
		b = protocol.AppendPacketString(b, protocol.Req, protocol.SubmitJobBg, "pp", strings.Repeat("u", 65), "y")
		b = protocol.AppendPacketString(b, protocol.Req, protocol.SubmitJobBg, "pp", "dup", "1")
		b = protocol.AppendPacketString(b, protocol.Req, protocol.SubmitJobBg, "pp", "dup", "2")
		b = protocol.AppendPacketString(b, protocol.Req, protocol.EchoReq, "end")
		st.mu.Lock()
		before := st.calls
		st.mu.Unlock()
		c.write(b)
		prev := existing
		for i := range n {
			h := c.expectType(protocol.JobCreated)[0]
			if handleNum(t, h) <= handleNum(t, prev) {
				t.Fatalf("submit %d: handle %s after %s", i, h, prev)
			}
			prev = h
		}
		c.expect(protocol.JobCreated, existing)
		c.expectError("ARGUMENT_TOO_LARGE", "Unique value too large")
		d1 := c.expectType(protocol.JobCreated)[0]
		c.expect(protocol.JobCreated, d1)
		c.expect(protocol.EchoRes, "end")
		st.mu.Lock()
		calls := st.calls - before
		st.mu.Unlock()
		if calls > 10 {
			t.Fatalf("%d Store.Add calls for %d pipelined submits", calls, n+3)
		}
		if got := len(st.byFunction("pp")); got != n+2 {
			t.Fatalf("stored %d, want %d", got, n+2)
		}
	})

	t.Run("Ops/GracefulShutdownWaitsForRunningJobs", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		c := ts.dial(t)
		w := ts.worker(t, "gs")
		h := c.submit(protocol.SubmitJob, "gs", "", "1")
		c.submit(protocol.SubmitJobBg, "gs", "", "2")
		w.grab()
		done := make(chan error, 1)
		go func() { done <- ts.Shutdown(context.Background()) }()
		// No new jobs are handed out while draining.
		waitFor(t, "draining", func() bool {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			return ts.draining
		})
		w.grabNone()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a job running", err)
		default:
		}
		w.send(protocol.WorkComplete, h, "ok")
		c.expect(protocol.WorkComplete, h, "ok")
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		c.expectClosed()
	})

	t.Run("Ops/ShutdownContextExpires", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		c := ts.dial(t)
		w := ts.worker(t, "gs")
		c.submit(protocol.SubmitJob, "gs", "", "1")
		w.grab()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := ts.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}

func handleNum(t *testing.T, h string) int {
	t.Helper()
	i := strings.LastIndexByte(h, ':')
	n, err := strconv.Atoi(h[i+1:])
	if err != nil {
		t.Fatalf("handle %q", h)
	}
	return n
}

// TestDeleteBeforeReAddOfSameKey: a job completed and resubmitted at once
// with the same unique keeps its record (the pending delete of the old
// job runs before the new Add).
func TestDeleteBeforeReAddOfSameKey(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	ts := startServer(t, func(o *Options) { o.Store = st })
	c := ts.dial(t)
	w := ts.worker(t, "ra")
	for i := range 50 {
		h := c.submit(protocol.SubmitJobBg, "ra", "same", strconv.Itoa(i))
		w.grab()
		w.send(protocol.WorkComplete, h, "")
		w.sync()
		c.submit(protocol.SubmitJobBg, "ra", "same", "again")
		waitFor(t, "deleter idle", func() bool {
			ts.del.mu.Lock()
			defer ts.del.mu.Unlock()
			return len(ts.del.pending) == 0
		})
		if got := st.byFunction("ra"); len(got) != 1 || string(got[0].Data) != "again" {
			t.Fatalf("round %d: stored %+v, want the resubmitted job", i, got)
		}
		h2, _, _ := w.grab()
		w.send(protocol.WorkComplete, h2, "")
		w.sync()
		waitFor(t, "deleted", func() bool { return st.len() == 0 })
	}
}

// TestStoreVersions: the server versions what it writes and deletes
// (store.Job.Version, store.Ref.Version) so that a delete removes only
// the records added before it was decided: a job's record, the delete of
// that job when it completes, and the record of a job resubmitted with
// the same unique get increasing versions; a server started on records
// with versions from the future (a clock that went back) gives versions
// above them.
func TestStoreVersions(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	const future = int64(1) << 62
	if err := st.Add(context.Background(), store.Job{Function: "other", Key: "old", Priority: 1, Version: future}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(o *Options) { o.Store = st })
	c := ts.dial(t)
	w := ts.worker(t, "v")
	version := func() int64 {
		t.Helper()
		got := st.byFunction("v")
		if len(got) != 1 {
			t.Fatalf("stored %+v, want one job of v", got)
		}
		return got[0].Version
	}
	h := c.submit(protocol.SubmitJobBg, "v", "same", "1")
	a1 := version()
	w.grab()
	w.send(protocol.WorkComplete, h, "")
	w.sync()
	waitFor(t, "the completed job's delete", func() bool { return st.len() == 1 })
	st.mu.Lock()
	refs := append([]store.Ref(nil), st.refs...)
	st.mu.Unlock()
	if len(refs) != 1 || refs[0].Key != "same" {
		t.Fatalf("deletes %+v, want one of v/same", refs)
	}
	d1 := refs[0].Version
	c.submit(protocol.SubmitJobBg, "v", "same", "2")
	a2 := version()
	if !(future < a1 && a1 < d1 && d1 < a2) {
		t.Fatalf("versions: replayed record %d, first record %d, its delete %d, the record of the resubmit %d; want them increasing", future, a1, d1, a2)
	}
}
