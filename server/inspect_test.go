package server

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
	"github.com/gworkerd/gworkerd/protocol"
)

// TestInspectJobs checks the job listing, filters and paging, the lookups
// by handle and unique, and that CancelJob does what `cancel job` does.
func TestInspectJobs(t *testing.T) {
	t.Parallel()
	clk := clocktest.New()
	ts := startServer(t, func(o *Options) { o.Clock = clk })
	c := ts.dial(t)
	var handles []string
	for i := range 5 {
		handles = append(handles, c.submit(protocol.SubmitJobBg, "a", "u"+strconv.Itoa(i), "data"+strconv.Itoa(i)))
	}
	hb := c.submit(protocol.SubmitJobHigh, "b", "", "x")
	c.submit2(protocol.SubmitJobEpoch, "a", "later", strconv.FormatInt(clk.Now().Unix()+3600, 10), "x")
	w := ts.worker(t, "b")
	if h, _, _ := w.grab(); h != hb {
		t.Fatalf("grabbed %q, want %q", h, hb)
	}

	tests := []struct {
		name      string
		q         JobQuery
		wantTotal int
		wantFirst string // handle of the first row, "" for none
		wantRows  int
	}{
		{"all", JobQuery{}, 7, handles[0], 7},
		{"function", JobQuery{Function: "a"}, 6, handles[0], 6},
		{"unknown function", JobQuery{Function: "zz"}, 0, "", 0},
		{"queued", JobQuery{State: JobQueued}, 5, handles[0], 5},
		{"running", JobQuery{State: JobRunning}, 1, hb, 1},
		{"waiting", JobQuery{Function: "a", State: JobWaiting}, 1, "", 1},
		{"page 2", JobQuery{Function: "a", State: JobQueued, Offset: 2, Limit: 2}, 5, handles[2], 2},
		{"past the end", JobQuery{Offset: 50}, 7, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, total := ts.Jobs(tc.q)
			if total != tc.wantTotal || len(rows) != tc.wantRows {
				t.Fatalf("Jobs(%+v): %d rows of %d, want %d of %d", tc.q, len(rows), total, tc.wantRows, tc.wantTotal)
			}
			if tc.wantFirst != "" && rows[0].Handle != tc.wantFirst {
				t.Errorf("first row %+v, want handle %s", rows[0], tc.wantFirst)
			}
			for _, r := range rows {
				if (tc.q.Function != "" && r.Function != tc.q.Function) || (tc.q.State != "" && r.State != tc.q.State) {
					t.Errorf("row %+v does not match %+v", r, tc.q)
				}
			}
		})
	}

	ji, ok := ts.Job(handles[1])
	want := JobInfo{Handle: handles[1], Function: "a", Unique: "u1", Priority: "normal", State: JobQueued,
		Background: true, Size: 5, Since: clk.Now()}
	if !ok || ji != want {
		t.Fatalf("Job(%s) = %+v, %v; want %+v", handles[1], ji, ok, want)
	}
	run, _ := ts.Job(hb)
	if run.State != JobRunning || run.Worker == 0 || run.Clients != 1 || run.Priority != "high" || run.Background {
		t.Errorf("running job %+v", run)
	}
	if ji, ok := ts.JobByUnique("a", "u3"); !ok || ji.Handle != handles[3] {
		t.Errorf("JobByUnique(a, u3) = %+v, %v; want %s", ji, ok, handles[3])
	}
	if ji, ok := ts.JobByUnique("a", "later"); !ok || ji.State != JobWaiting || ji.When.IsZero() {
		t.Errorf("epoch job %+v, %v", ji, ok)
	}
	for _, h := range []string{"H:test:999", "nonsense", ""} {
		if _, ok := ts.Job(h); ok {
			t.Errorf("Job(%q) found a job", h)
		}
	}
	if _, ok := ts.JobByUnique("b", "u3"); ok {
		t.Error("JobByUnique found a job of another function")
	}

	// Cancel a queued job: gone at once; the admin view agrees.
	if !ts.CancelJob(handles[0]) {
		t.Fatal("CancelJob of a queued job = false")
	}
	if _, ok := ts.Job(handles[0]); ok {
		t.Error("cancelled queued job still there")
	}
	if ts.CancelJob(handles[0]) {
		t.Error("second CancelJob = true")
	}
	// Cancel a running foreground job: its client gets WORK_FAIL now, the
	// job stays until the worker ends it.
	if !ts.CancelJob(hb) {
		t.Fatal("CancelJob of a running job = false")
	}
	c.expect(protocol.WorkFail, hb)
	if ji, ok := ts.Job(hb); !ok || !ji.Cancelled || ji.Clients != 0 {
		t.Errorf("running cancelled job %+v, %v", ji, ok)
	}
	w.send(protocol.WorkComplete, hb, "late")
	w.sync()
	if _, ok := ts.Job(hb); ok {
		t.Error("cancelled running job still there after WORK_COMPLETE")
	}
	c.expectNothing()
	if _, total := ts.Jobs(JobQuery{}); total != 5 {
		t.Errorf("%d jobs left, want 5", total)
	}
}

// TestInspectWorkersAndMaxQueue checks Workers against the admin
// `workers` list and SetMaxQueue against SUBMIT_JOB.
func TestInspectWorkersAndMaxQueue(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.dial(t)
	w := ts.worker(t, "x", "y", "x")
	w.send(protocol.SetClientID, "thumbs-1")
	h := c.submit(protocol.SubmitJob, "x", "", "p")
	w.grab()
	all, nall := ts.Workers(WorkerQuery{All: true})
	only, nonly := ts.Workers(WorkerQuery{})
	if len(all) != 2 || len(only) != 1 || nall != 2 || nonly != 1 {
		t.Fatalf("Workers: all %+v, workers only %+v", all, only)
	}
	got := only[0]
	if got.ClientID != "thumbs-1" || got.IP != "127.0.0.1" || len(got.Functions) != 2 || got.Functions[0] != "x" ||
		got.Functions[1] != "y" || len(got.Running) != 1 || got.Running[0] != h {
		t.Errorf("worker row %+v", got)
	}
	if all[0].Waiting != 1 || len(all[0].Functions) != 0 {
		t.Errorf("client row %+v, want waiting 1 and no functions", all[0])
	}

	ts.SetMaxQueue("q", [3]int{0, 1, 0})
	c.submit(protocol.SubmitJobBg, "q", "", "1")
	c.send(protocol.SubmitJobBg, "q", "", "2")
	c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
	if line := c.admin("maxqueue q 0 0 0"); line != "OK\r\n" {
		t.Fatalf("maxqueue reply %q", line)
	}
	for _, f := range ts.Stats().Functions {
		if f.Name == "q" && f.MaxQueue != [3]int{} {
			t.Errorf("max queue after reset %v", f.MaxQueue)
		}
	}
}

// TestLatencyHistograms checks the wait and run histograms and the
// oldest queued time with a fake clock.
func TestLatencyHistograms(t *testing.T) {
	t.Parallel()
	clk := clocktest.New()
	ts := startServer(t, func(o *Options) { o.Clock = clk })
	c := ts.dial(t)
	t0 := clk.Now()
	c.submit(protocol.SubmitJobBg, "h", "", "1")
	clk.Advance(2 * time.Second)
	c.submit(protocol.SubmitJobHighBg, "h", "", "2")
	fs := ts.Stats().Functions[0]
	if !fs.OldestQueued.Equal(t0) {
		t.Errorf("oldest queued %v, want %v", fs.OldestQueued, t0)
	}
	clk.Advance(3 * time.Second)
	w := ts.worker(t, "h")
	h1, _, _ := w.grab() // the high job, waited 3 s
	clk.Advance(20 * time.Millisecond)
	w.send(protocol.WorkComplete, h1, "")
	h2, _, _ := w.grab() // the normal job, waited 5.02 s
	clk.Advance(700 * time.Millisecond)
	w.send(protocol.WorkFail, h2)
	w.sync()
	fs = ts.Stats().Functions[0]
	if !fs.OldestQueued.IsZero() {
		t.Errorf("oldest queued %v with an empty queue", fs.OldestQueued)
	}
	bucket := func(hg Histogram, v float64) int {
		for i, b := range hg.Bounds {
			if v <= b {
				return i
			}
		}
		return len(hg.Bounds)
	}
	for _, tc := range []struct {
		name string
		h    Histogram
		vals []float64
	}{
		{"wait", fs.Wait, []float64{3, 5.02}},
		{"run", fs.Run, []float64{0.02, 0.7}},
	} {
		var sum float64
		want := make([]uint64, len(tc.h.Bounds)+1)
		for _, v := range tc.vals {
			want[bucket(tc.h, v)]++
			sum += v
		}
		if tc.h.Count != uint64(len(tc.vals)) || tc.h.Sum < sum-1e-9 || tc.h.Sum > sum+1e-9 {
			t.Errorf("%s: count %d sum %v, want %d and %v", tc.name, tc.h.Count, tc.h.Sum, len(tc.vals), sum)
		}
		for i := range want {
			if tc.h.Counts[i] != want[i] {
				t.Errorf("%s: counts %v, want %v", tc.name, tc.h.Counts, want)
				break
			}
		}
	}
}

// TestStoreStats checks that store writes are measured: one Add per
// batch, one Delete per finished background job batch.
func TestStoreStats(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	ts := startServer(t, func(o *Options) { o.Store = st })
	if s := ts.Stats().Store; s == nil || s.Add.Latency.Count != 0 {
		t.Fatalf("store stats before any write: %+v", s)
	}
	c := ts.dial(t)
	// Three submits in one write: batched into one Add (or fewer than 3).
	var b []byte
	for i := range 3 {
		b = protocol.AppendPacketString(b, protocol.Req, protocol.SubmitJobBg, "s", "", strconv.Itoa(i))
	}
	c.write(b)
	for range 3 {
		c.expectType(protocol.JobCreated)
	}
	s := ts.Stats().Store
	if s.Add.Batch.Sum != 3 || s.Add.Batch.Count == 0 || s.Add.Batch.Count > 3 || s.Add.Latency.Count != s.Add.Batch.Count {
		t.Errorf("add stats %+v", s.Add)
	}
	w := ts.worker(t, "s")
	for range 3 {
		h, _, _ := w.grab()
		w.send(protocol.WorkComplete, h, "")
	}
	w.sync()
	waitFor(t, "3 deletes measured", func() bool { return ts.Stats().Store.Delete.Batch.Sum == 3 })
	if s := ts.Stats(); ts.Stats().Store.Delete.Errors != 0 || s.Store.Add.Errors != 0 {
		t.Errorf("errors counted: %+v", s.Store)
	}
	if n := st.len(); n != 0 {
		t.Errorf("%d jobs left in the store", n)
	}
}

// TestWorkersQuery: Workers pages the connections in id order, counts
// all those it selects, and lists at most MaxList functions (the first
// by name) and running jobs (the first by handle) per row, with their
// totals.
func TestWorkersQuery(t *testing.T) {
	t.Parallel()
	const fns, running = 600, 30 // fns > walkChunk: the row's list spans chunks
	ts := startServer(t, nil)
	named := func(id string) *tconn {
		c := ts.dial(t)
		c.send(protocol.SetClientID, id)
		return c
	}
	c0 := named("c0")
	fat := named("fat")
	fat.canDoMany("f", fns) // visited newest first: the largest names come first
	var pk []byte
	for i := range running {
		pk = protocol.AppendPacketString(pk, protocol.Req, protocol.SubmitJobBg, fnName("f", 0), "", strconv.Itoa(i))
	}
	c0.pipelineSync(pk)
	if got := fat.pipelineSync(appendN(nil, running, protocol.GrabJob)); got[protocol.JobAssign] != running {
		t.Fatalf("replies %v, want %d JOB_ASSIGN", got, running)
	}
	for _, id := range []string{"w1", "w2", "w3", "w4"} {
		w := named(id)
		w.send(protocol.CanDo, "a")
		w.sync()
	}
	named("c1").sync()

	var allFns []string
	for i := range fns {
		allFns = append(allFns, fnName("f", i))
	}
	for _, tc := range []struct {
		name  string
		q     WorkerQuery
		ids   []string
		total int
		// listed is how many functions and running jobs the fat row lists.
		listedFns, listedRunning int
	}{
		{"workers", WorkerQuery{}, []string{"fat", "w1", "w2", "w3", "w4"}, 5, fns, running},
		{"all", WorkerQuery{All: true}, []string{"c0", "fat", "w1", "w2", "w3", "w4", "c1"}, 7, fns, running},
		{"a page", WorkerQuery{Offset: 1, Limit: 2}, []string{"w1", "w2"}, 5, 0, 0},
		{"the last page of all", WorkerQuery{All: true, Offset: 5, Limit: 10}, []string{"w4", "c1"}, 7, 0, 0},
		{"past the end", WorkerQuery{Offset: 10}, []string{}, 5, 0, 0},
		{"bounded lists", WorkerQuery{Limit: 1, MaxList: 10}, []string{"fat"}, 5, 10, 10},
		{"bound above the lists", WorkerQuery{Limit: 1, MaxList: 1000}, []string{"fat"}, 5, fns, running},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, total := ts.Workers(tc.q)
			ids := []string{}
			for _, w := range ws {
				ids = append(ids, w.ClientID)
			}
			if total != tc.total || !slices.Equal(ids, tc.ids) {
				t.Fatalf("Workers(%+v) = %v of %d, want %v of %d", tc.q, ids, total, tc.ids, tc.total)
			}
			for _, w := range ws {
				if w.ClientID != "fat" {
					wantFns := 0
					if strings.HasPrefix(w.ClientID, "w") {
						wantFns = 1
					}
					if len(w.Functions) != wantFns || w.FunctionsTotal != wantFns || len(w.Running) != 0 || w.RunningTotal != 0 {
						t.Errorf("row %+v, want %d function and no job", w, wantFns)
					}
					continue
				}
				if !slices.Equal(w.Functions, allFns[:tc.listedFns]) || w.FunctionsTotal != fns {
					t.Errorf("fat row: %d functions listed of %d, want the first %d of %d",
						len(w.Functions), w.FunctionsTotal, tc.listedFns, fns)
				}
				if len(w.Running) != tc.listedRunning || w.RunningTotal != running {
					t.Fatalf("fat row: %d running jobs listed of %d, want %d of %d", len(w.Running), w.RunningTotal, tc.listedRunning, running)
				}
				for i, h := range w.Running {
					if want := "H:test:" + strconv.Itoa(i+1); h != want { // the first jobs created
						t.Errorf("fat row: running[%d] = %s, want %s", i, h, want)
					}
				}
			}
		})
	}
}
