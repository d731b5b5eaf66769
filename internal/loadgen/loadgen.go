// Package loadgen is the load generator behind `make bench` (cmd/gbench).
//
// It speaks the Gearman protocol directly, with the protocol package's
// encoder and Reader, so that the figures measure the servers and not a
// client library: raw workers (CAN_DO, GRAB_JOB, WORK_COMPLETE), foreground
// clients (SUBMIT_JOB and a wait for WORK_COMPLETE) and pipelined
// background submitters (a window of SUBMIT_JOB_BG in flight per
// connection). It also starts and stops the servers under test (Start) and
// reads their resident memory (Proc.RSS).
//
// Every scenario is bounded both by a job count and by a duration and
// reports what completed within them.
package loadgen

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Function is the function name every scenario submits to.
const Function = "gbench"

// Load bounds a scenario and shapes its jobs.
type Load struct {
	// Jobs is the number of jobs to run; the scenario stops after that many.
	Jobs int
	// Function is the function the jobs are submitted to. Default
	// Function; the bench's own workers serve only that one.
	Function string
	// Duration bounds the submitting phase: no job is submitted after it.
	// Default 60s.
	Duration time.Duration
	// Payload is the size of each job's workload in bytes (Workload says
	// which bytes). Default 100.
	Payload int
	// Unique gives each job its own unique id ("gbench-<n>"); otherwise the
	// unique is empty. Persistent queues key on it (gearmand's SQLite queue
	// keeps one row per (function, unique), so empty uniques overwrite
	// each other there).
	Unique bool
	// Conns is the number of submitting connections (pipelined scenarios)
	// or foreground clients. Default 1.
	Conns int
	// Window is how many background submits each connection keeps in
	// flight (pipelined scenarios). Default 256.
	Window int
	// Workers is the number of worker connections. Default 1.
	Workers int
	// Grace bounds how long the scenario waits, after Duration, for the
	// replies to what it already sent, and how long a drain may take.
	// Default 30s.
	Grace time.Duration
}

func (l Load) withDefaults() Load {
	if l.Function == "" {
		l.Function = Function
	}
	if l.Duration <= 0 {
		l.Duration = time.Minute
	}
	if l.Payload <= 0 {
		l.Payload = 100
	}
	if l.Conns <= 0 {
		l.Conns = 1
	}
	if l.Window <= 0 {
		l.Window = 256
	}
	if l.Workers <= 0 {
		l.Workers = 1
	}
	if l.Grace <= 0 {
		l.Grace = 30 * time.Second
	}
	return l
}

// Workload returns the workload of every job of l: Payload bytes of the
// lower-case alphabet, over and over, so that a job that transforms it
// (reverses it, say) gives a result that differs from it.
func (l Load) Workload() string {
	n := l.withDefaults().Payload
	const abc = "abcdefghijklmnopqrstuvwxyz"
	return strings.Repeat(abc, n/len(abc)+1)[:n]
}

// unique returns job i's unique id under l.
func (l Load) unique(i int) string {
	if !l.Unique {
		return ""
	}
	return "gbench-" + strconv.Itoa(i)
}

// Result is what one throughput scenario measured.
type Result struct {
	// Jobs is how many jobs completed: JOB_CREATED received for submit
	// scenarios, WORK_COMPLETE for the others.
	Jobs int
	// Submitted is how many jobs were sent.
	Submitted int
	// Elapsed is the measured interval.
	Elapsed time.Duration
	// TimeBound is true when the Duration bound stopped the submitting
	// before Jobs was reached.
	TimeBound bool
	// P50, P99, P999 and Max are the round-trip latencies of foreground
	// jobs (submit to WORK_COMPLETE); zero for other scenarios.
	P50, P99, P999, Max time.Duration
}

// Rate returns Jobs per second of Elapsed.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Jobs) / r.Elapsed.Seconds()
}

// claimer hands out job indexes until the count or the time bound is hit.
// It is shared by the submitting goroutines of one scenario.
type claimer struct {
	n      int64
	stopAt time.Time
	next   atomic.Int64
	timed  atomic.Bool
}

func newClaimer(l Load, start time.Time) *claimer {
	return &claimer{n: int64(l.Jobs), stopAt: start.Add(l.Duration)}
}

// claim returns the next job index, or -1 when the scenario is over.
func (c *claimer) claim() int {
	if c.next.Load() >= c.n {
		return -1
	}
	if time.Now().After(c.stopAt) {
		c.timed.Store(true)
		return -1
	}
	i := c.next.Add(1) - 1
	if i >= c.n {
		return -1
	}
	return int(i)
}
