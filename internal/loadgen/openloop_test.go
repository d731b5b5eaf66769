package loadgen

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestOpenLoopAgainstGearmand runs a short open loop and checks every
// measured job is counted once, with ordered quantiles.
func TestOpenLoopAgainstGearmand(t *testing.T) {
	t.Parallel()
	p := startGearmand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l := OpenLoad{Rate: 2000, Jobs: 1000, Warmup: 100, Conns: 3, Workers: 2}
	r, err := OpenLoop(ctx, p.Addr, l)
	if err != nil {
		t.Fatalf("open loop: %v (server output: %s)", err, p.Output())
	}
	if r.Jobs != l.Jobs || r.Sent != l.Jobs || r.Latency.Count() != l.Jobs || r.Lag.Count() != l.Jobs {
		t.Errorf("got %d jobs of %d sent, %d latencies, %d lags; want %d of each", r.Jobs, r.Sent, r.Latency.Count(), r.Lag.Count(), l.Jobs)
	}
	if r.Rate != l.Rate {
		t.Errorf("got rate %v, want %v", r.Rate, l.Rate)
	}
	// 1000 jobs at 2000/s are due over 0.5 s: the run cannot be shorter.
	if r.Elapsed < 499*time.Millisecond || r.Achieved() <= 0 || r.Achieved() > 2004 {
		t.Errorf("got elapsed %v, achieved %.0f/s; want at least 0.5 s and at most 2000/s", r.Elapsed, r.Achieved())
	}
	q := []time.Duration{r.Latency.Quantile(0.5), r.Latency.Quantile(0.99), r.Latency.Quantile(0.999), r.Latency.Max()}
	if q[0] <= 0 || q[0] > q[1] || q[1] > q[2] || q[2] > q[3] {
		t.Errorf("got p50 %v p99 %v p99.9 %v max %v, want 0 < p50 <= p99 <= p99.9 <= max", q[0], q[1], q[2], q[3])
	}
}

// TestOpenLoopChargesStalls stops gearmand (SIGSTOP) for 400 ms in the
// middle of an open loop at 1000 jobs/s. The jobs due during the stall
// are sent on time and wait: about 250 of them wait 150 ms or more, so
// more than 5% of 2000 jobs show it. A closed loop (each client waits for
// its reply before the next submit) would charge the stall to one job per
// client: 8 of 2000.
func TestOpenLoopChargesStalls(t *testing.T) {
	t.Parallel()
	p := startGearmand(t)
	defer syscall.Kill(p.PID, syscall.SIGCONT)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l := OpenLoad{Rate: 1000, Jobs: 2000, Conns: 8, Workers: 4}
	type result struct {
		r   OpenLoopResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := OpenLoop(ctx, p.Addr, l)
		got <- result{r, err}
	}()
	// OpenLoop connects its workers first, its clients next, and sends
	// the first job 5 ms later; the jobs are due over 2 s from then.
	if err := WaitWorkers(ctx, p.Addr, Function, l.Workers); err != nil {
		t.Fatal(err)
	}
	stallAt := time.NewTimer(500 * time.Millisecond)
	<-stallAt.C
	if err := syscall.Kill(p.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stallFor := time.NewTimer(400 * time.Millisecond)
	<-stallFor.C
	if err := syscall.Kill(p.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil {
		t.Fatalf("open loop: %v (server output: %s)", res.err, p.Output())
	}
	r := res.r
	if r.Jobs != l.Jobs {
		t.Fatalf("got %d jobs, want %d", r.Jobs, l.Jobs)
	}
	if p95 := r.Latency.Quantile(0.95); p95 < 150*time.Millisecond {
		t.Errorf("p95 %v, want at least 150ms: the stall is not charged to the jobs due during it (max %v)", p95, r.Latency.Max())
	}
	if r.Latency.Max() < 300*time.Millisecond {
		t.Errorf("max %v, want at least 300ms of the 400ms stall", r.Latency.Max())
	}
}

func TestOpenLoopRejectsBadLoad(t *testing.T) {
	t.Parallel()
	for _, l := range []OpenLoad{{Jobs: 10}, {Rate: 10}, {Rate: 10, Jobs: 10, Warmup: -1}} {
		if _, err := OpenLoop(context.Background(), "127.0.0.1:1", l); !errors.Is(err, ErrOpenLoad) {
			t.Errorf("OpenLoop(%+v): got %v, want ErrOpenLoad", l, err)
		}
	}
}
