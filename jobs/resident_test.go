package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
)

// fakeJob is a worker.Job that records what the handler sends.
type fakeJob struct {
	payload []byte
	attempt int

	mu   sync.Mutex
	sent []string
}

func (j *fakeJob) Handle() string   { return "H:test:1" }
func (j *fakeJob) Function() string { return "chaos" }
func (j *fakeJob) Unique() string   { return "u-1" }
func (j *fakeJob) Payload() []byte  { return j.payload }
func (j *fakeJob) Server() string   { return "127.0.0.1:4730" }
func (j *fakeJob) Attempt() int     { return max(j.attempt, 1) }
func (j *fakeJob) record(s string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sent = append(j.sent, s)
	return nil
}
func (j *fakeJob) SendData(_ context.Context, b []byte) error { return j.record("data " + string(b)) }
func (j *fakeJob) SendWarning(_ context.Context, b []byte) error {
	return j.record("warning " + string(b))
}
func (j *fakeJob) SendStatus(_ context.Context, n, d int) error {
	return j.record("status " + strconv.Itoa(n) + "/" + strconv.Itoa(d))
}

// newChaos returns a Resident running jobs/testdata/resident/job_chaos.php
// through the shipped PHP runtime.
func newChaos(t *testing.T) (*jobs.Resident, *bytes.Buffer) {
	t.Helper()
	php := testpeer.Require(t, "php")
	rt, err := jobs.RuntimePHP.File(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file, _ := filepath.Abs("testdata/resident/job_chaos.php")
	stderr := &lockedBuffer{}
	r := &jobs.Resident{
		Command:  []string{php, rt, "--file", file, "--callable", "fnc_chaos", "--function", "chaos"},
		Function: "chaos", Dir: filepath.Dir(file), Stderr: stderr, Stdout: stderr,
		StartTimeout: 60 * time.Second,
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, &stderr.buf
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func run(ctx context.Context, t *testing.T, r *jobs.Resident, payload string) (string, *fakeJob, error) {
	t.Helper()
	j := &fakeJob{payload: []byte(payload)}
	res, err := r.Run(ctx, j)
	return string(res), j, err
}

func procAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

func TestResidentServesManyJobsOnOneProcess(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	ctx := context.Background()
	if err := r.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pids := map[string]bool{}
	for i := 0; i < 100; i++ {
		got, _, err := run(ctx, t, r, "pid")
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		pids[got] = true
	}
	if len(pids) != 1 {
		t.Fatalf("100 sequential jobs ran on %d processes, want 1: %v", len(pids), pids)
	}
	got, j, err := run(ctx, t, r, "progress")
	want := []string{"status 1/3", "data chunk\x00one", "warning careful"}
	if err != nil || got != "done" || strings.Join(j.sent, ",") != strings.Join(want, ",") {
		t.Fatalf("progress: %q, %v, sent %q; want done and %q", got, err, j.sent, want)
	}
	_, _, err = run(ctx, t, r, "throw")
	var ex *worker.ExceptionError
	if !errors.As(err, &ex) || ex.Error() != "chaos exception" {
		t.Fatalf("throw: err = %v, want the exception chaos exception", err)
	}
	var ce *worker.CrashError
	if errors.As(err, &ce) {
		t.Fatalf("an exception is the job's verdict, not a crash: %v", err)
	}
	if got, _, _ := run(ctx, t, r, "pid"); !pids[got] {
		t.Fatalf("after an exception the job ran on pid %s, want the same process %v", got, pids)
	}
}

func TestResidentHandlerDiesMidJob(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	ctx := context.Background()
	first, _, err := run(ctx, t, r, "pid")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = run(ctx, t, r, "die")
	var ce *worker.CrashError
	var ex *worker.ExceptionError
	if !errors.As(err, &ce) || !errors.As(err, &ex) {
		t.Fatalf("die: err = %v (%T), want a CrashError carrying an exception", err, err)
	}
	if msg := ex.Error(); !strings.Contains(msg, "resident handler died mid-job: exit status 3") || !strings.Contains(msg, "dying on purpose") {
		t.Fatalf("die: message %q, want the exit status and the stderr tail", msg)
	}
	pid, _ := strconv.Atoi(first)
	if procAlive(pid) {
		t.Fatalf("pid %d still alive after dying", pid)
	}
	second, _, err := run(ctx, t, r, "pid")
	if err != nil || second == first {
		t.Fatalf("after a death: pid %q, %v; want a new process (was %s)", second, err, first)
	}
}

func TestResidentTimeoutKillsAndReplaces(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	first, _, err := run(context.Background(), t, r, "pid")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), 500*time.Millisecond, errors.New("job timeout"))
	defer cancel()
	_, j, err := run(ctx, t, r, "hang")
	if err == nil || !strings.Contains(err.Error(), "job timeout") {
		t.Fatalf("hang: err = %v, want the context's cause", err)
	}
	if len(j.sent) != 1 || j.sent[0] != "status 1/2" {
		t.Errorf("hang sent %q before hanging, want its status", j.sent)
	}
	pid, _ := strconv.Atoi(first)
	if procAlive(pid) {
		t.Fatalf("stuck handler %d still alive after its job's timeout", pid)
	}
	second, _, err := run(context.Background(), t, r, "pid")
	if err != nil || second == first {
		t.Fatalf("after a timeout: pid %q, %v; want a new process", second, err)
	}
}

func TestResidentConcurrentJobsUseAtMostNProcesses(t *testing.T) {
	t.Parallel()
	r, _ := newChaos(t)
	const n, jobsN = 3, 60
	sem := make(chan struct{}, n)
	var mu sync.Mutex
	pids := map[string]bool{}
	var wg sync.WaitGroup
	for i := 0; i < jobsN; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := r.Run(context.Background(), &fakeJob{payload: []byte("pid")})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			pids[string(got)] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(pids) == 0 || len(pids) > n {
		t.Fatalf("%d jobs, %d at a time, ran on %d processes, want 1..%d", jobsN, n, len(pids), n)
	}
	live := r.Pids()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range live {
		if procAlive(p) {
			t.Errorf("handler %d alive after Close", p)
		}
	}
	if _, _, err := run(context.Background(), t, r, "pid"); !errors.Is(err, jobs.ErrResidentClosed) {
		t.Errorf("Run after Close: %v, want ErrResidentClosed", err)
	}
}

func TestResidentStartFailures(t *testing.T) {
	t.Parallel()
	php := testpeer.Require(t, "php")
	rt, err := jobs.RuntimePHP.File(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	broken, _ := filepath.Abs("testdata/resident/job_broken.php")
	for _, tc := range []struct {
		name    string
		command []string
		want    string
	}{
		{"parse error", []string{php, rt, "--file", broken, "--callable", "fnc_broken"}, "did not start (it exited before its hello; exit status"},
		{"no such program", []string{"/nonexistent/handler"}, "no such file"},
		{"silent", []string{"sleep", "30"}, "no hello within"},
		{"wrong hello", []string{"sh", "-c", `printf 'X\000\000\000\000' >&4; sleep 30`}, "first frame is 'X'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &jobs.Resident{Command: tc.command, Function: "broken", StartTimeout: 2 * time.Second,
				Stderr: &lockedBuffer{}, Stdout: &lockedBuffer{}}
			defer r.Close()
			err := r.Start(context.Background(), 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want %q", err, tc.want)
			}
			if len(r.Pids()) != 0 {
				t.Fatalf("a failed start left handlers %v", r.Pids())
			}
			// A job on a handler that cannot start is a crash (retried).
			_, err = r.Run(context.Background(), &fakeJob{payload: []byte("x")})
			var ce *worker.CrashError
			if !errors.As(err, &ce) {
				t.Fatalf("Run: %v, want a CrashError", err)
			}
		})
	}
}

func TestRuntimeFileIsPrivate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p1, err := jobs.RuntimePHP.File(dir)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := jobs.RuntimePHP.File(dir)
	if err != nil || p1 != p2 {
		t.Fatalf("second File = %q, %v; want %q again", p2, err, p1)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.RuntimePHP.File(dir); err == nil || !strings.Contains(err.Error(), "writable by it alone") {
		t.Fatalf("File in a world-writable dir: %v, want a refusal", err)
	}
}
