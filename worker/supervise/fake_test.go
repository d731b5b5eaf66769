package supervise

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
)

// fakeStarter starts in-process fake children.
type fakeStarter struct {
	mu      sync.Mutex
	nextPid int
	procs   []*fakeProc
	started chan *fakeProc
	// crash makes every child exit at once with this error.
	crash error
}

func newFakeStarter() *fakeStarter {
	return &fakeStarter{nextPid: 1000, started: make(chan *fakeProc, 100)}
}

type fakeProc struct {
	pid      int
	spec     ChildSpec
	r        *io.PipeReader
	w        *io.PipeWriter
	rep      *Reporter
	once     sync.Once
	exitErr  error
	exited   chan struct{}
	mu       sync.Mutex
	sigs     []os.Signal
	stubborn bool // ignores SIGTERM
}

func (s *fakeStarter) Start(spec ChildSpec) (Process, error) {
	s.mu.Lock()
	s.nextPid++
	r, w := io.Pipe()
	p := &fakeProc{pid: s.nextPid, spec: spec, r: r, w: w, rep: NewReporter(w), exited: make(chan struct{})}
	s.procs = append(s.procs, p)
	crash := s.crash
	s.mu.Unlock()
	if crash != nil {
		p.exit(crash)
	}
	s.started <- p
	return p, nil
}

func (p *fakeProc) exit(err error) {
	p.once.Do(func() {
		p.exitErr = err
		p.w.Close()
		close(p.exited)
	})
}

func (p *fakeProc) Pid() int { return p.pid }
func (p *fakeProc) Reports() io.Reader {
	if p.spec.NoReportPipe {
		return eofReader{}
	}
	return p.r
}
func (p *fakeProc) Wait() error { <-p.exited; return p.exitErr }
func (p *fakeProc) Signal(sig os.Signal) error {
	p.mu.Lock()
	p.sigs = append(p.sigs, sig)
	stubborn := p.stubborn
	p.mu.Unlock()
	if sig == syscall.SIGTERM && !stubborn {
		p.exit(nil) // a well-behaved child: exits between jobs
	}
	return nil
}
func (p *fakeProc) KillGroup() error    { p.exit(errors.New("signal: killed")); return nil }
func (p *fakeProc) CloseReports() error { return p.r.Close() }
func (p *fakeProc) HeldJobs() []string  { return nil }

func (p *fakeProc) signaled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sigs) > 0
}

func nextStart(t *testing.T, fs *fakeStarter) *fakeProc {
	t.Helper()
	select {
	case p := <-fs.started:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no child started")
		return nil
	}
}

func noStart(t *testing.T, s *Supervisor, fs *fakeStarter) {
	t.Helper()
	status(t, s) // barrier: the loop has handled the timer events
	select {
	case p := <-fs.started:
		t.Fatalf("unexpected start of pid %d", p.pid)
	default:
	}
}

// advanceUntilStart moves the clock on by step until a child starts or
// limit has passed; it returns the child (nil if none) and the time it
// took. The ticker re-arms its timer asynchronously, so each step gives
// it a moment.
func advanceUntilStart(t *testing.T, s *Supervisor, fs *fakeStarter, clk *clocktest.Clock, step, limit time.Duration) (*fakeProc, time.Duration) {
	t.Helper()
	for el := time.Duration(0); el < limit; {
		clk.Advance(step)
		el += step
		status(t, s)
		select {
		case p := <-fs.started:
			return p, el
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, limit
}

func fakeRun(t *testing.T, f FunctionSpec, opts Options) (*Supervisor, *fakeStarter, *clocktest.Clock) {
	fs, clk := newFakeStarter(), clocktest.New()
	opts.Starter, opts.Clock = fs, clk
	opts.Functions = []FunctionSpec{f}
	opts.Executable = "/fake"
	if opts.Backoff.Initial == 0 {
		opts.Backoff = Backoff{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond, Jitter: -1, Stable: 10 * time.Second}
	}
	s, _ := run(t, opts)
	return s, fs, clk
}

// The backoff doubles up to its cap, and a stable run resets it.
func TestFakeBackoffSequenceAndReset(t *testing.T) {
	t.Parallel()
	s, fs, clk := fakeRun(t, FunctionSpec{Name: "f", Count: 1}, Options{})
	p := nextStart(t, fs)
	for _, d := range []time.Duration{100, 200, 400, 800, 800} {
		d *= time.Millisecond
		p.exit(errors.New("exit status 1"))
		waitFor(t, 5*time.Second, "backoff", func() bool { return children(t, s, "f")[0].State == StateBackoff })
		clk.Advance(d - time.Millisecond)
		noStart(t, s, fs)
		clk.Advance(time.Millisecond)
		p = nextStart(t, fs)
	}
	// A run longer than Stable resets the count: the next delay is 100ms.
	p.rep.Ready()
	waitFor(t, 5*time.Second, "running", func() bool { return children(t, s, "f")[0].State == StateRunning })
	clk.Advance(10 * time.Second)
	p.exit(errors.New("exit status 1"))
	waitFor(t, 5*time.Second, "backoff", func() bool { return children(t, s, "f")[0].State == StateBackoff })
	clk.Advance(99 * time.Millisecond)
	noStart(t, s, fs)
	clk.Advance(time.Millisecond)
	nextStart(t, fs)
	if c := children(t, s, "f")[0]; c.Restarts != 6 {
		t.Errorf("restarts = %d, want 6", c.Restarts)
	}
}

// max_lifetime recycles after the lifetime plus at most 10% splay, with
// the replacement running before the old child is asked to stop.
func TestFakeMaxLifetime(t *testing.T) {
	t.Parallel()
	s, fs, clk := fakeRun(t, FunctionSpec{Name: "f", Count: 1, MaxLifetime: 100 * time.Second}, Options{TickInterval: time.Second})
	old := nextStart(t, fs)
	old.rep.Ready()
	waitFor(t, 5*time.Second, "running", func() bool { return children(t, s, "f")[0].State == StateRunning })
	clk.Advance(99 * time.Second)
	noStart(t, s, fs)
	repl, el := advanceUntilStart(t, s, fs, clk, 500*time.Millisecond, 15*time.Second)
	if repl == nil || el > 11*time.Second+time.Second {
		t.Fatalf("not recycled within max_lifetime + 10%% (+1 tick): %v after 99s", el)
	}
	if old.signaled() {
		t.Fatal("old child asked to stop before its replacement runs")
	}
	repl.rep.Ready()
	waitFor(t, 5*time.Second, "old child stopped", func() bool { return old.signaled() })
	waitFor(t, 5*time.Second, "one child left", func() bool {
		c := children(t, s, "f")
		return len(c) == 1 && c[0].Pid == repl.pid && c[0].Restarts == 0
	})
}

// max_idle recycles an idle child of a fixed-count function; a job in
// progress keeps it.
func TestFakeMaxIdle(t *testing.T) {
	t.Parallel()
	s, fs, clk := fakeRun(t, FunctionSpec{Name: "f", Count: 1, MaxIdle: 30 * time.Second}, Options{TickInterval: time.Second})
	p := nextStart(t, fs)
	p.rep.Ready()
	p.rep.JobStarted("H:1", clk.Now())
	waitFor(t, 5*time.Second, "job seen", func() bool { return children(t, s, "f")[0].CurrentJob == "H:1" })
	clk.Advance(time.Minute)
	noStart(t, s, fs)
	p.rep.JobFinished("H:1", true, nil, time.Second)
	waitFor(t, 5*time.Second, "job done", func() bool { return children(t, s, "f")[0].JobsDone == 1 })
	clk.Advance(29 * time.Second)
	noStart(t, s, fs)
	if p, el := advanceUntilStart(t, s, fs, clk, 500*time.Millisecond, 5*time.Second); p == nil {
		t.Fatalf("idle child not recycled %v after max_idle", el)
	}
}

// A child that ignores SIGTERM during a recycle is killed after Grace.
func TestFakeGraceKill(t *testing.T) {
	t.Parallel()
	s, fs, clk := fakeRun(t, FunctionSpec{Name: "f", Count: 1, MaxJobs: 1, Grace: 5 * time.Second}, Options{})
	p := nextStart(t, fs)
	p.mu.Lock()
	p.stubborn = true
	p.mu.Unlock()
	p.rep.Ready()
	p.rep.JobStarted("H:1", clk.Now())
	p.rep.JobFinished("H:1", true, nil, time.Second)
	repl := nextStart(t, fs) // max_jobs: replacement at once, old asked to stop
	waitFor(t, 5*time.Second, "old child stopping", func() bool {
		for _, c := range children(t, s, "f") {
			if c.Pid == p.pid {
				return c.State == StateStopping
			}
		}
		return false
	})
	clk.Advance(4900 * time.Millisecond)
	status(t, s)
	select {
	case <-p.exited:
		t.Fatal("killed before the grace period ended")
	default:
	}
	clk.Advance(200 * time.Millisecond)
	waitFor(t, 5*time.Second, "old child killed and gone", func() bool {
		c := children(t, s, "f")
		return len(c) == 1 && c[0].Pid == repl.pid
	})
	<-p.exited
	if p.exitErr == nil {
		t.Error("old child exited cleanly; want killed")
	}
}

// A child that stops sending heartbeats is killed and restarted.
func TestFakeHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	s, fs, clk := fakeRun(t, FunctionSpec{Name: "f", Count: 1}, Options{HeartbeatTimeout: 10 * time.Second})
	p := nextStart(t, fs)
	p.rep.Ready()
	p.rep.Heartbeat()
	waitFor(t, 5*time.Second, "heartbeat seen", func() bool { return children(t, s, "f")[0].RSS > 0 })
	clk.Advance(9 * time.Second)
	noStart(t, s, fs)
	select {
	case <-p.exited:
		t.Fatal("killed before the heartbeat timeout")
	default:
	}
	if q, _ := advanceUntilStart(t, s, fs, clk, 500*time.Millisecond, 5*time.Second); q == nil {
		t.Fatal("hung child not replaced")
	}
	<-p.exited
	if c := children(t, s, "f")[0]; c.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", c.Restarts)
	}
}

// The counters of Metrics: restarts, jobs by outcome and the duration
// histogram on the supervisor's clock; they outlive the children.
func TestFakeMetricsCounters(t *testing.T) {
	t.Parallel()
	s, fs, clk := fakeRun(t, FunctionSpec{Name: "f", Count: 1}, Options{})
	ctx := context.Background()
	p := nextStart(t, fs)
	p.rep.Ready()
	waitFor(t, 5*time.Second, "running", func() bool { return children(t, s, "f")[0].State == StateRunning })
	p.rep.JobStarted("H:1", clk.Now())
	currentJob(t, s, "H:1")
	clk.Advance(1500 * time.Millisecond)
	p.rep.JobFinished("H:1", true, nil, 1500*time.Millisecond) // the child's measure
	p.rep.JobStarted("H:2", clk.Now())
	currentJob(t, s, "H:2")
	clk.Advance(200 * time.Millisecond)
	p.rep.JobFinished("H:2", false, errors.New("boom"), 200*time.Millisecond)
	p.rep.JobStarted("H:3", clk.Now())
	currentJob(t, s, "H:3")
	p.exit(errors.New("exit status 2")) // dies holding H:3
	waitFor(t, 5*time.Second, "backoff", func() bool { return children(t, s, "f")[0].State == StateBackoff })

	ms, err := s.Metrics(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Metrics = %+v, %v", ms, err)
	}
	m := ms[0]
	if m.Function != "f" || m.Restarts != 1 {
		t.Errorf("function %q restarts %d, want f 1", m.Function, m.Restarts)
	}
	for o, want := range map[string]uint64{OutcomeCompleted: 1, OutcomeFailed: 1, OutcomeLost: 1} {
		if got := m.Jobs[o]; got != want {
			t.Errorf("jobs[%s] = %d, want %d", o, got, want)
		}
	}
	h := m.Duration
	if h.Count != 2 || h.Sum < 1.699 || h.Sum > 1.701 {
		t.Errorf("histogram count %d sum %v, want 2 1.7", h.Count, h.Sum)
	}
	for i, b := range h.Bounds {
		want := uint64(0)
		if b >= 0.2 {
			want++
		}
		if b >= 1.5 {
			want++
		}
		if h.Counts[i] != want {
			t.Errorf("bucket le=%v: %d, want %d", b, h.Counts[i], want)
		}
	}

	// A scale to zero removes the slot; the counters stay.
	if err := s.Scale(ctx, "f", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no child", func() bool { return len(children(t, s, "f")) == 0 })
	ms, err = s.Metrics(ctx)
	if err != nil || len(ms) != 1 || ms[0].Restarts != 1 || ms[0].Jobs[OutcomeCompleted] != 1 || ms[0].Duration.Count != 2 {
		t.Errorf("after scale 0: %+v, %v", ms, err)
	}
}

// currentJob waits until the child of "f" holds the job.
func currentJob(t *testing.T, s *Supervisor, handle string) {
	t.Helper()
	waitFor(t, 5*time.Second, "current job "+handle, func() bool { return children(t, s, "f")[0].CurrentJob == handle })
}
