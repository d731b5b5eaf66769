package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// OpenLoad shapes an open-loop run: foreground jobs arrive at a fixed
// rate whatever the server does.
type OpenLoad struct {
	// Rate is the arrival rate in jobs per second: job i is due at
	// t0 + i/Rate. Required.
	Rate float64
	// Jobs is how many jobs are measured. Required.
	Jobs int
	// Warmup is how many jobs are sent first, at the same rate, and not
	// measured.
	Warmup int
	// Conns is the number of client connections; job i goes to
	// connection i mod Conns. Each connection pipelines: it sends its
	// jobs when they are due whatever is outstanding. Default 8.
	Conns int
	// Workers is the number of raw workers (the loop of Foreground's).
	// Default 4.
	Workers int
	// Function and Payload as in Load. Defaults Function and 100.
	Function string
	Payload  int
	// Grace bounds how long the run waits, after the last job was due,
	// for the replies. Default 30s.
	Grace time.Duration
}

func (l OpenLoad) withDefaults() OpenLoad {
	if l.Conns <= 0 {
		l.Conns = 8
	}
	if l.Workers <= 0 {
		l.Workers = 4
	}
	if l.Function == "" {
		l.Function = Function
	}
	if l.Payload <= 0 {
		l.Payload = 100
	}
	if l.Grace <= 0 {
		l.Grace = 30 * time.Second
	}
	return l
}

// OpenLoopResult is what OpenLoop measured, over the measured jobs only.
type OpenLoopResult struct {
	// Rate is the arrival rate asked for.
	Rate float64
	// Sent and Jobs count the measured jobs sent and completed.
	Sent, Jobs int
	// Elapsed runs from the first measured job's due time to the last
	// reply.
	Elapsed time.Duration
	// Latency is each measured job's time from when it was due (not
	// when it was sent) to its WORK_COMPLETE, so that a stall of the
	// server, or of the sender behind it, is charged to every job it
	// delayed (no coordinated omission).
	Latency Histogram
	// Lag is how late the sender wrote each measured job after it was
	// due: the load generator's own share of Latency (timer wake-ups,
	// a full socket).
	Lag Histogram
}

// Achieved returns the measured jobs completed per second of Elapsed.
func (r OpenLoopResult) Achieved() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Jobs) / r.Elapsed.Seconds()
}

// ErrOpenLoad reports an OpenLoad that cannot run.
var ErrOpenLoad = errors.New("loadgen: open load needs Rate > 0 and Jobs > 0")

// OpenLoop runs l.Workers workers and sends l.Warmup+l.Jobs foreground
// jobs (SUBMIT_JOB) over l.Conns connections, job i at its due time
// t0 + i/l.Rate, never waiting for a reply, and measures the latency of
// the last l.Jobs from their due time. A connection's JOB_CREATED replies
// come in the order of its submits, which ties each job handle to its
// due time. The run ends when every job has completed, or l.Grace after
// the last due time (then the result counts what completed and the
// error says how many replies are missing).
func OpenLoop(ctx context.Context, addr string, l OpenLoad) (OpenLoopResult, error) {
	l = l.withDefaults()
	res := OpenLoopResult{Rate: l.Rate}
	if l.Rate <= 0 || l.Jobs <= 0 || l.Warmup < 0 {
		return res, fmt.Errorf("%w (rate %v, jobs %d, warmup %d)", ErrOpenLoad, l.Rate, l.Jobs, l.Warmup)
	}
	w, err := startWorkers(ctx, addr, l.Function, l.Workers)
	if err != nil {
		return res, err
	}
	defer w.stop()
	conns := make([]*conn, 0, l.Conns)
	closeAll := func() {
		for _, c := range conns {
			_ = c.close()
		}
	}
	defer closeAll()
	for range l.Conns {
		c, err := dial(ctx, addr)
		if err != nil {
			return res, err
		}
		conns = append(conns, c)
	}
	total := l.Warmup + l.Jobs
	sched := schedule{rate: l.Rate, n: total}
	// Start a little ahead so that every reader runs before the first
	// job is due.
	start := time.Now().Add(5 * time.Millisecond)

	// The first error, the hard bound or the caller's end closes the
	// connections: the pacer's write and the readers' reads then fail and
	// they return. The first cause is the run's error.
	var firstErr error
	var firstOnce sync.Once
	abort := func(err error) {
		firstOnce.Do(func() { firstErr = err })
		closeAll()
	}
	hard := time.AfterFunc(time.Until(start.Add(sched.due(total-1)+l.Grace)), func() {
		abort(fmt.Errorf("loadgen: open loop: replies still missing %v after the last job was due: %w", l.Grace, context.DeadlineExceeded))
	})
	defer hard.Stop()
	stopCtx := context.AfterFunc(ctx, func() { abort(ctx.Err()) })
	defer stopCtx()

	lats := make([]Histogram, len(conns))
	done := make([]int, len(conns))
	var wg sync.WaitGroup
	for k, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			done[k], err = openReader(c, k, len(conns), total, l, start, sched, &lats[k])
			if err != nil {
				abort(fmt.Errorf("connection %d: %w", k, err))
			}
		}()
	}
	var sent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		sent, err = openPacer(conns, l, start, sched, &res.Lag)
		if err != nil {
			abort(fmt.Errorf("sender: %w", err))
		}
	}()
	wg.Wait()
	res.Elapsed = time.Since(start.Add(sched.due(l.Warmup)))
	res.Sent = max(sent-l.Warmup, 0)
	for k := range conns {
		res.Latency.Merge(&lats[k])
	}
	res.Jobs = res.Latency.Count()
	firstOnce.Do(func() {}) // firstErr is final from here: a bound that fires now finds the run over
	if firstErr != nil {
		completed := 0
		for _, d := range done {
			completed += d
		}
		return res, fmt.Errorf("%w (%d of %d jobs completed)", firstErr, completed, total)
	}
	return res, nil
}

// schedule gives each job its due time after the start.
type schedule struct {
	rate float64
	n    int
}

func (s schedule) due(i int) time.Duration {
	return time.Duration(float64(i) / s.rate * float64(time.Second))
}

// openPacer sends every job at its due time, round robin over conns: it
// sleeps until the next job is due, then writes all jobs due by now, one
// write per connection. It records the measured jobs' lag and returns how
// many jobs it sent.
func openPacer(conns []*conn, l OpenLoad, start time.Time, s schedule, lag *Histogram) (int, error) {
	unlock := lockThread()
	defer unlock()
	payload := l.Workload()
	dirty := make([]bool, len(conns))
	i := 0
	for i < s.n {
		now := time.Since(start)
		if d := s.due(i); now < d {
			sleepPrecise(d - now)
			continue
		}
		for ; i < s.n && s.due(i) <= now; i++ {
			k := i % len(conns)
			conns[k].add(protocol.SubmitJob, l.Function, "", payload)
			dirty[k] = true
			if i >= l.Warmup {
				lag.Record(now - s.due(i))
			}
		}
		for k, c := range conns {
			if dirty[k] {
				if err := c.flush(); err != nil {
					return i, err
				}
				dirty[k] = false
			}
		}
	}
	return i, nil
}

// Workload is the workload of every job of l, as Load's.
func (l OpenLoad) Workload() string {
	return Load{Payload: l.Payload}.Workload()
}

// openReader reads connection k's replies until all of its jobs (k,
// k+conns, ... below total) completed, and records the measured jobs'
// latency from their due time.
func openReader(c *conn, k, conns, total int, l OpenLoad, start time.Time, s schedule, lat *Histogram) (int, error) {
	want := 0
	if k < total {
		want = (total - k + conns - 1) / conns
	}
	due := make(map[string]int) // job handle -> job index, created and not yet complete
	created, completed := 0, 0
	for completed < want {
		p, err := c.next()
		if err != nil {
			return completed, err
		}
		switch p.Type {
		case protocol.JobCreated:
			if created >= want {
				return completed, fmt.Errorf("loadgen: open loop: JOB_CREATED %s beyond the %d jobs sent", p.Arg(0), want)
			}
			due[string(p.Arg(0))] = k + created*conns
			created++
		case protocol.WorkComplete:
			now := time.Since(start)
			h := string(p.Arg(0))
			i, ok := due[h]
			if !ok {
				return completed, fmt.Errorf("loadgen: open loop: WORK_COMPLETE for unknown job %s", h)
			}
			delete(due, h)
			if len(p.Arg(1)) != l.Payload {
				return completed, fmt.Errorf("loadgen: result of %d bytes, want %d", len(p.Arg(1)), l.Payload)
			}
			completed++
			if i >= l.Warmup {
				lat.Record(now - s.due(i))
			}
		case protocol.WorkStatus, protocol.WorkData, protocol.WorkWarning:
		case protocol.WorkFail, protocol.WorkException:
			return completed, fmt.Errorf("loadgen: job %s ended with %v %q", p.Arg(0), p.Type, p.Arg(1))
		default:
			return completed, fmt.Errorf("loadgen: open loop client got unexpected %v", p.Type)
		}
	}
	return completed, nil
}
