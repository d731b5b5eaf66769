package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startGearmand starts a fresh gearmand through Start, the code path the
// bench uses.
func startGearmand(t *testing.T, args ...string) *Proc {
	t.Helper()
	bin := testpeer.Require(t, "gearmand")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// checkComplete checks a throughput result ran every job it was asked to.
func checkComplete(t *testing.T, name string, r Result, want int) {
	t.Helper()
	if r.Jobs != want || r.Submitted != want {
		t.Errorf("%s: got %d jobs completed of %d submitted, want %d of %d", name, r.Jobs, r.Submitted, want, want)
	}
	if r.Elapsed <= 0 || r.Rate() <= 0 {
		t.Errorf("%s: got elapsed %v rate %v, want both > 0", name, r.Elapsed, r.Rate())
	}
	if r.TimeBound {
		t.Errorf("%s: stopped by the time bound, want the count bound", name)
	}
}

// TestScenariosAgainstGearmand runs every scenario with small counts
// against the C gearmand and checks each one completes all its jobs. It
// makes no claim about speed.
func TestScenariosAgainstGearmand(t *testing.T) {
	t.Parallel()
	base := Load{Duration: 60 * time.Second, Grace: 30 * time.Second}
	tests := []struct {
		name string
		load Load
		run  func(ctx context.Context, p *Proc, l Load) (Result, error)
	}{
		{"foreground", Load{Jobs: 500, Conns: 8, Workers: 4}, func(ctx context.Context, p *Proc, l Load) (Result, error) {
			r, err := Foreground(ctx, p.Addr, l)
			if err == nil && (r.P50 <= 0 || r.P99 < r.P50) {
				t.Errorf("foreground: got p50 %v p99 %v, want 0 < p50 <= p99", r.P50, r.P99)
			}
			return r, err
		}},
		{"submit", Load{Jobs: 3000, Conns: 2, Window: 64}, func(ctx context.Context, p *Proc, l Load) (Result, error) {
			return Submit(ctx, p.Addr, l)
		}},
		{"submit-unique", Load{Jobs: 1000, Conns: 1, Window: 16, Unique: true}, func(ctx context.Context, p *Proc, l Load) (Result, error) {
			return Submit(ctx, p.Addr, l)
		}},
		{"end-to-end", Load{Jobs: 2000, Conns: 1, Workers: 2}, func(ctx context.Context, p *Proc, l Load) (Result, error) {
			return EndToEnd(ctx, p.Addr, l)
		}},
		{"drain", Load{Jobs: 2000, Conns: 1, Workers: 4}, func(ctx context.Context, p *Proc, l Load) (Result, error) {
			d, err := Drain(ctx, p.Addr, l)
			checkComplete(t, "drain queue", d.Queue, l.Jobs)
			return d.Drain, err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startGearmand(t)
			l := tc.load
			l.Duration, l.Grace = base.Duration, base.Grace
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			r, err := tc.run(ctx, p, l)
			if err != nil {
				t.Fatalf("%s: %v (server output: %s)", tc.name, err, p.Output())
			}
			checkComplete(t, tc.name, r, l.Jobs)
		})
	}
}

// TestForegroundPipelined runs pipelined foreground jobs on the bench's
// own workers (they return the workload) after WaitWorkers saw them, and
// checks every result is compared with want.
func TestForegroundPipelined(t *testing.T) {
	t.Parallel()
	p := startGearmand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := Load{Jobs: 2000, Function: "pipelined", Conns: 2, Window: 16, Duration: time.Minute, Grace: 30 * time.Second}
	w, err := startWorkers(ctx, p.Addr, l.Function, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	if err := WaitWorkers(ctx, p.Addr, l.Function, 3); err != nil {
		t.Fatalf("wait for 3 workers: %v", err)
	}
	r, err := ForegroundPipelined(ctx, p.Addr, l, []byte(l.Workload()))
	if err != nil {
		t.Fatalf("foreground pipelined: %v (server output: %s)", err, p.Output())
	}
	checkComplete(t, "foreground pipelined", r, l.Jobs)
	if got := int(w.done.Load()); got != l.Jobs {
		t.Errorf("workers ran %d jobs, want %d", got, l.Jobs)
	}

	// A result that is not the one wanted fails the run.
	l.Jobs = 10
	r, err = ForegroundPipelined(ctx, p.Addr, l, []byte("something else"))
	if err == nil {
		t.Errorf("foreground pipelined with a wrong result: got nil error after %d jobs, want an error", r.Jobs)
	}
}

func TestWaitWorkers(t *testing.T) {
	t.Parallel()
	p := startGearmand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitWorkers(ctx, p.Addr, "nobody", 0); err != nil {
		t.Errorf("wait for 0 workers of an unknown function: %v", err)
	}
	w, err := startWorkers(ctx, p.Addr, "some", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitWorkers(ctx, p.Addr, "some", 2); err != nil {
		t.Errorf("wait for 2 workers: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	err = WaitWorkers(short, p.Addr, "some", 3)
	cancelShort()
	if !errors.Is(err, ErrWorkers) {
		t.Errorf("wait for 3 of 2 workers: got %v, want ErrWorkers", err)
	}
	w.stop()
	if err := WaitWorkers(ctx, p.Addr, "some", 0); err != nil {
		t.Errorf("wait for the workers to go: %v", err)
	}
}

func TestWorkload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		payload int
		want    string
	}{
		{0, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv"},
		{3, "abc"},
		{28, "abcdefghijklmnopqrstuvwxyzab"},
	} {
		if got := (Load{Payload: tc.payload}).Workload(); got != tc.want {
			t.Errorf("Workload with Payload %d: got %q, want %q", tc.payload, got, tc.want)
		}
	}
}

func TestMemoryAgainstGearmand(t *testing.T) {
	t.Parallel()
	p := startGearmand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const jobs = 5000
	m, err := Memory(ctx, p, Load{Jobs: jobs, Duration: time.Minute, Workers: 4}, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("memory: %v (server output: %s)", err, p.Output())
	}
	checkComplete(t, "memory queue", m.Queue, jobs)
	checkComplete(t, "memory drain", m.Drain, jobs)
	if m.Before <= 0 || m.Queued <= 0 || m.After <= 0 || m.Waited <= 0 {
		t.Errorf("got rss before %d queued %d after %d waited %d, want all > 0", m.Before, m.Queued, m.After, m.Waited)
	}
	if m.PerJob() <= 0 {
		t.Errorf("got %v bytes per queued job, want > 0 (5000 queued jobs of 100 bytes must cost memory)", m.PerJob())
	}
}

// TestTimeBound checks a scenario stops at its time bound and reports
// what completed: a 50 ms bound cannot fit ten million submits.
func TestTimeBound(t *testing.T) {
	t.Parallel()
	p := startGearmand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := Submit(ctx, p.Addr, Load{Jobs: 10_000_000, Duration: 50 * time.Millisecond, Window: 8})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if !r.TimeBound {
		t.Errorf("got TimeBound false after %d of 10000000 jobs, want true", r.Jobs)
	}
	if r.Jobs <= 0 || r.Jobs != r.Submitted {
		t.Errorf("got %d created of %d submitted, want equal and > 0", r.Jobs, r.Submitted)
	}
}

func TestStartReportsFailure(t *testing.T) {
	t.Parallel()
	bin := testpeer.Require(t, "gearmand")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Start(ctx, bin, "-q", "no-such-queue")
	if err == nil {
		t.Fatal("Start with an unknown queue type: got nil error, want ErrStart")
	}
	if !errors.Is(err, ErrStart) {
		t.Errorf("got %v, want an ErrStart", err)
	}
}
