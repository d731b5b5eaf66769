package supervise

import (
	"context"
	"sort"
	"time"
)

// Job outcomes counted by FunctionMetrics.Jobs.
const (
	// OutcomeCompleted: the child reported the job done.
	OutcomeCompleted = "completed"
	// OutcomeFailed: the child reported the job failed (WORK_FAIL,
	// WORK_EXCEPTION) or abandoned.
	OutcomeFailed = "failed"
	// OutcomeLost: the child exited while holding the job, without
	// reporting its end.
	OutcomeLost = "lost"
)

// durationBuckets are the upper bounds, in seconds, of the job duration
// histogram: from 5ms to 10 minutes.
func durationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
}

// FunctionMetrics are the counters of one function since the supervisor
// started. Unlike the per-slot numbers of Status they only grow: they
// survive restarts, recycling, scaling and the removal of the function.
type FunctionMetrics struct {
	Function string `json:"function"`
	// Restarts counts unexpected exits and failed starts of its children
	// (each followed by a restart after backoff, or by the fatal state).
	Restarts uint64 `json:"restarts"`
	// Jobs counts the jobs that ended, by outcome (OutcomeCompleted,
	// OutcomeFailed, OutcomeLost).
	Jobs map[string]uint64 `json:"jobs"`
	// Duration is the histogram of the durations of the jobs that
	// reported their end (completed or failed), measured by the master
	// from the job_start to the job_end report, on the supervisor's clock.
	Duration Histogram `json:"duration"`
}

// Histogram is a cumulative histogram of durations in seconds.
type Histogram struct {
	// Bounds are the bucket upper bounds in seconds, ascending.
	Bounds []float64 `json:"bounds"`
	// Counts[i] is the number of observations <= Bounds[i].
	Counts []uint64 `json:"counts"`
	Count  uint64   `json:"count"`
	Sum    float64  `json:"sum"`
}

// funcStats are the counters of one function; owned by the loop.
type funcStats struct {
	restarts uint64
	jobs     map[string]uint64
	bounds   []float64
	buckets  []uint64 // not cumulative: buckets[i] counts (bounds[i-1], bounds[i]]
	count    uint64
	sum      float64
}

// stats returns the counters of a function, creating them.
func (s *Supervisor) stats(fn string) *funcStats {
	st, ok := s.counters[fn]
	if !ok {
		b := durationBuckets()
		st = &funcStats{jobs: map[string]uint64{}, bounds: b, buckets: make([]uint64, len(b))}
		s.counters[fn] = st
	}
	return st
}

func (st *funcStats) observe(d time.Duration) {
	sec := d.Seconds()
	st.count++
	st.sum += sec
	i := sort.SearchFloat64s(st.bounds, sec)
	if i < len(st.buckets) {
		st.buckets[i]++
	}
}

// Metrics returns the counters of every function seen since the
// supervisor started (removed functions included), sorted by function.
func (s *Supervisor) Metrics(ctx context.Context) ([]FunctionMetrics, error) {
	var out []FunctionMetrics
	err := s.call(ctx, func() error {
		for fn, st := range s.counters {
			m := FunctionMetrics{Function: fn, Restarts: st.restarts, Jobs: map[string]uint64{}}
			for _, o := range []string{OutcomeCompleted, OutcomeFailed, OutcomeLost} {
				m.Jobs[o] = st.jobs[o]
			}
			m.Duration = Histogram{
				Bounds: append([]float64(nil), st.bounds...),
				Counts: make([]uint64, len(st.buckets)),
				Count:  st.count, Sum: st.sum,
			}
			var acc uint64
			for i, n := range st.buckets {
				acc += n
				m.Duration.Counts[i] = acc
			}
			out = append(out, m)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out, err
}
