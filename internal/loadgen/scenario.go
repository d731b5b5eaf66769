package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// Foreground runs l.Conns clients that each submit SUBMIT_JOB and wait for
// its WORK_COMPLETE before the next, while l.Workers workers serve them.
// It measures completed jobs per second and the round-trip latencies.
func Foreground(ctx context.Context, addr string, l Load) (Result, error) {
	l = l.withDefaults()
	w, err := startWorkers(ctx, addr, l.Function, l.Workers)
	if err != nil {
		return Result{}, err
	}
	defer w.stop()
	payload := l.Workload()
	clients := make([]*conn, 0, l.Conns)
	defer func() {
		for _, c := range clients {
			_ = c.close()
		}
	}()
	for range l.Conns {
		c, err := dial(ctx, addr)
		if err != nil {
			return Result{}, err
		}
		clients = append(clients, c)
	}
	// Close the clients at the hard bound so that a stuck job cannot hang
	// the bench; their goroutines then return with an error.
	hard := time.AfterFunc(l.Duration+l.Grace, func() {
		for _, c := range clients {
			_ = c.close()
		}
	})
	defer hard.Stop()
	stopCtx := context.AfterFunc(ctx, func() {
		for _, c := range clients {
			_ = c.close()
		}
	})
	defer stopCtx()

	start := time.Now()
	cl := newClaimer(l, start)
	lats := make([][]time.Duration, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[i], errs[i] = foregroundClient(c, l, cl, payload)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := Result{Jobs: len(all), Submitted: int(min(cl.next.Load(), int64(l.Jobs))), Elapsed: elapsed, TimeBound: cl.timed.Load()}
	if len(all) > 0 {
		r.P50 = all[len(all)*50/100]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
		r.P999 = all[min(len(all)-1, len(all)*999/1000)]
		r.Max = all[len(all)-1]
	}
	return r, errors.Join(errs...)
}

func foregroundClient(c *conn, l Load, cl *claimer, payload string) ([]time.Duration, error) {
	var lats []time.Duration
	for {
		i := cl.claim()
		if i < 0 {
			return lats, nil
		}
		t0 := time.Now()
		if err := c.send(protocol.SubmitJob, l.Function, l.unique(i), payload); err != nil {
			return lats, err
		}
	wait:
		for {
			p, err := c.next()
			if err != nil {
				return lats, err
			}
			switch p.Type {
			case protocol.JobCreated, protocol.WorkStatus, protocol.WorkData, protocol.WorkWarning:
			case protocol.WorkComplete:
				if len(p.Arg(1)) != l.Payload {
					return lats, fmt.Errorf("loadgen: result of %d bytes, want %d", len(p.Arg(1)), l.Payload)
				}
				break wait
			default:
				return lats, fmt.Errorf("loadgen: client got unexpected %v", p.Type)
			}
		}
		lats = append(lats, time.Since(t0))
	}
}

// Submit measures pipelined background submits with no worker connected:
// JOB_CREATED replies per second.
func Submit(ctx context.Context, addr string, l Load) (Result, error) {
	return pipeline(ctx, addr, l, pipe{submit: protocol.SubmitJobBg})
}

// EndToEnd submits background jobs (pipelined) while l.Workers workers
// drain them, and measures jobs completed per second from the first
// submit to the last WORK_COMPLETE.
func EndToEnd(ctx context.Context, addr string, l Load) (Result, error) {
	l = l.withDefaults()
	w, err := startWorkers(ctx, addr, l.Function, l.Workers)
	if err != nil {
		return Result{}, err
	}
	defer w.stop()
	start := time.Now()
	r, err := pipeline(ctx, addr, l, pipe{submit: protocol.SubmitJobBg})
	if err != nil {
		return r, err
	}
	w.setTarget(r.Jobs)
	waitCtx, cancel := context.WithTimeout(ctx, l.Grace)
	defer cancel()
	err = w.wait(waitCtx)
	r.Elapsed = time.Since(start)
	r.Jobs = int(min(w.done.Load(), int64(r.Jobs)))
	return r, err
}

// DrainResult is what Drain measured.
type DrainResult struct {
	// Queue is the submitting phase (no worker connected).
	Queue Result
	// Drain is the workers' phase: Jobs completed over Elapsed.
	Drain Result
}

// Drain queues l.Jobs background jobs with no worker connected, then
// connects l.Workers workers and measures how fast they empty the queue.
func Drain(ctx context.Context, addr string, l Load) (DrainResult, error) {
	l = l.withDefaults()
	q, err := pipeline(ctx, addr, l, pipe{submit: protocol.SubmitJobBg})
	if err != nil {
		return DrainResult{Queue: q}, err
	}
	d, err := DrainQueued(ctx, addr, l, q.Jobs)
	return DrainResult{Queue: q, Drain: d}, err
}

// DrainQueued connects l.Workers workers to a server that holds n queued
// jobs and waits, at most l.Grace, until they have completed n jobs. The
// result's Jobs counts what they completed; on the bound the error wraps
// ErrDrainTimeout.
func DrainQueued(ctx context.Context, addr string, l Load, n int) (Result, error) {
	l = l.withDefaults()
	start := time.Now()
	w, err := startWorkers(ctx, addr, l.Function, l.Workers)
	if err != nil {
		return Result{}, err
	}
	defer w.stop()
	w.setTarget(n)
	waitCtx, cancel := context.WithTimeout(ctx, l.Grace)
	defer cancel()
	err = w.wait(waitCtx)
	return Result{Jobs: int(min(w.done.Load(), int64(n))), Submitted: n, Elapsed: time.Since(start)}, err
}

// MemoryResult is what Memory measured, in bytes of resident memory
// (VmRSS) of the server process.
type MemoryResult struct {
	Queue  Result // submitting phase
	Drain  Result // draining phase
	Before int64  // idle server, before the first submit
	Queued int64  // with every job queued
	After  int64  // right after the drain
	// Waited is read Wait after the drain, so that a garbage-collected
	// runtime can return memory to the system; Wait is that delay.
	Waited int64
	Wait   time.Duration
}

// PerJob returns the resident memory each queued job added, in bytes.
func (m MemoryResult) PerJob() float64 {
	if m.Queue.Jobs == 0 {
		return 0
	}
	return float64(m.Queued-m.Before) / float64(m.Queue.Jobs)
}

// Memory queues l.Jobs background jobs of l.Payload bytes, reads the
// server's resident memory before and after, drains the queue with
// l.Workers workers (for at most l.Grace), and reads it again right away
// and after wait. When the drain is cut by its bound, the readings are
// still taken and the error wraps ErrDrainTimeout.
func Memory(ctx context.Context, p *Proc, l Load, wait time.Duration) (MemoryResult, error) {
	l = l.withDefaults()
	m := MemoryResult{Wait: wait}
	var err error
	if m.Before, err = p.RSS(); err != nil {
		return m, err
	}
	if m.Queue, err = pipeline(ctx, p.Addr, l, pipe{submit: protocol.SubmitJobBg}); err != nil {
		return m, err
	}
	if m.Queued, err = p.RSS(); err != nil {
		return m, err
	}
	// A drain cut by its bound still gets its memory read: the caller
	// reports it with the count drained.
	m.Drain, err = DrainQueued(ctx, p.Addr, l, m.Queue.Jobs)
	if err != nil && !errors.Is(err, ErrDrainTimeout) {
		return m, err
	}
	drainErr := err
	if m.After, err = p.RSS(); err != nil {
		return m, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return m, ctx.Err()
	}
	if m.Waited, err = p.RSS(); err != nil {
		return m, err
	}
	return m, drainErr
}
