package jobs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
)

// waitUntil polls cond (the state of handler processes and pipes) until
// it holds, for at most 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type result struct {
	out string
	err error
	job *fakeJob
}

// goRun runs a job in the background.
func goRun(r *jobs.Resident, payload string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		j := &fakeJob{payload: []byte(payload)}
		res, err := r.Run(context.Background(), j)
		ch <- result{string(res), err, j}
	}()
	return ch
}

// A pipelined pool (Depth 3) of 2 handlers runs 6 jobs at a time on
// those 2 processes only, each job getting its own result; and a job
// taken behind a running one waits for it on the same handler rather
// than starting another.
func TestPipelinedRunsQueuedJobsOnItsHandlers(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	r.Depth = 3
	if err := r.Start(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	started := slices.Clone(r.Pids())
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i := range 120 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			payload := "job-" + strconv.Itoa(i)
			got, err := r.Run(context.Background(), &fakeJob{payload: []byte(payload)})
			if want := reverse(payload); err != nil || string(got) != want {
				t.Errorf("%s: %q, %v; want %q", payload, got, err, want)
			}
		}()
	}
	wg.Wait()
	if now := r.Pids(); !sameSet(now, started) {
		t.Fatalf("handlers %v after 120 jobs, want the 2 started %v", now, started)
	}

	gate := filepath.Join(t.TempDir(), "gate")
	held := func(n int) func() bool { return func() bool { h := r.Held(); return h[0]+h[1] == n } }
	a := goRun(r, "wait:"+gate)
	waitUntil(t, "the first job taken", held(1))
	b := goRun(r, "wait:"+gate) // on the other handler, which holds none
	waitUntil(t, "the second job taken", held(2))
	c := goRun(r, "pid") // behind one of them
	waitUntil(t, "the third job taken", held(3))
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pids := map[string]bool{}
	for _, ch := range []<-chan result{a, b, c} {
		res := <-ch
		if res.err != nil {
			t.Fatal(res.err)
		}
		pids[res.out] = true
	}
	if len(pids) != 2 {
		t.Errorf("3 jobs ran on %d processes, want the 2 handlers", len(pids))
	}
	if now := r.Pids(); !sameSet(now, started) {
		t.Errorf("handlers %v, want %v: a job behind a busy handler started another", now, started)
	}
}

// When a handler dies, the job it runs fails as a crash (retried), the
// jobs queued behind it fail the same way without running, and the next
// job starts a new handler.
func TestPipelinedHandlerDeathFailsItsQueue(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	r.Depth = 4
	if err := r.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	first := r.Pids()
	dir := t.TempDir()
	gate, mark := filepath.Join(dir, "gate"), filepath.Join(dir, "ran")
	a := goRun(r, "wait:"+gate)
	waitUntil(t, "the first job running", func() bool { return r.Held()[0] == 1 })
	b := goRun(r, "die")
	waitUntil(t, "the second job taken", func() bool { return r.Held()[0] == 2 })
	c := goRun(r, "touch:"+mark)
	waitUntil(t, "the third job taken", func() bool { return r.Held()[0] == 3 })
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := <-a; res.err != nil || res.out != strconv.Itoa(first[0]) {
		t.Fatalf("the job ahead: %q, %v; want it done on %d", res.out, res.err, first[0])
	}
	var ce *worker.CrashError
	if res := <-b; !errors.As(res.err, &ce) || !strings.Contains(res.err.Error(), "exit status 3") {
		t.Fatalf("the dying job: %v, want a crash with its exit status", res.err)
	}
	res := <-c
	if !errors.As(res.err, &ce) || !strings.Contains(res.err.Error(), "died before the job started") {
		t.Fatalf("the job queued behind: %v, want a crash saying it never started", res.err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the job queued behind the dead handler ran (%v)", err)
	}
	got, _, err := run(context.Background(), t, r, "pid")
	if err != nil || got == strconv.Itoa(first[0]) {
		t.Fatalf("after the death: %q, %v; want a new handler (was %d)", got, err, first[0])
	}
	if n := len(r.Pids()); n != 1 {
		t.Errorf("%d handlers live, want 1", n)
	}
	if procAlive(first[0]) {
		t.Errorf("dead handler %d still alive", first[0])
	}
}

// A job whose context ends (a hard stop) kills its handler; the jobs
// it holds end, and Close leaves no handler behind.
func TestPipelinedStop(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	r.Depth = 2
	if err := r.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	pid := r.Pids()[0]
	ctx, cancel := context.WithCancelCause(context.Background())
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := r.Run(ctx, &fakeJob{payload: []byte("hang")})
			errs <- err
		}()
	}
	waitUntil(t, "both jobs taken", func() bool { return r.Held()[0] == 2 })
	cancel(errors.New("hard stop"))
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("a job of a killed handler succeeded")
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if procAlive(pid) {
		t.Errorf("handler %d alive after the stop and Close", pid)
	}
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// The Python runtime reads the frames queued for it in turn as well.
func TestPipelinedPython(t *testing.T) {
	t.Parallel()
	py := testpeer.Require(t, "python3")
	rt, err := jobs.RuntimePython.File(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file, _ := filepath.Abs("testdata/resident/job_rev.py")
	r := &jobs.Resident{
		Command:  []string{py, rt, "--file", file, "--callable", "fnc_rev", "--function", "rev"},
		Function: "rev", Dir: filepath.Dir(file), StartTimeout: 60 * time.Second, Depth: 4,
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := "py-" + strconv.Itoa(i) + strings.Repeat("x", i*100)
			got, err := r.Run(context.Background(), &fakeJob{payload: []byte(payload)})
			if want := reverse(payload); err != nil || string(got) != want {
				t.Errorf("job %d: %.20q..., %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	if n := len(r.Pids()); n != 1 {
		t.Errorf("%d handlers, want the 1 started", n)
	}
}
