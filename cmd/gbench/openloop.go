package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gworkerd/gworkerd/internal/loadgen"
)

// The open loop (scenario 9) sends foreground jobs at a fixed rate, each
// when it is due whatever is outstanding, and measures each job's latency
// from when it was due, so that a stall is charged to every job it
// delayed (a closed loop, whose clients wait for a reply before the next
// submit, sends fewer jobs during a stall and hides it: coordinated
// omission). It runs at 50% and 80% of a reference rate, gearmand's
// closed-loop foreground rate (1a, or a probe run like it), the same for
// both servers, on the workers of scenario 1: 4 raw workers that return
// the workload.

const (
	// openLoopScenario is the open loop's id.
	openLoopScenario = "9"
	// openLoopFiguresPerLevel: p50, p99, p99.9, max, CPU per 1,000 jobs.
	openLoopFiguresPerLevel = 5
)

// openLoopLevels are the fractions of the reference rate it runs at.
func openLoopLevels() []float64 { return []float64{0.5, 0.8} }

func openLoopFigures() []figureSpec {
	var f []figureSpec
	for _, lv := range openLoopLevels() {
		at := fmt.Sprintf("open loop at %.0f%% of gearmand's max: ", lv*100)
		f = append(f,
			figureSpec{at + "latency p50 (from due time)", "µs", true},
			figureSpec{at + "latency p99", "µs", true},
			figureSpec{at + "latency p99.9", "µs", true},
			figureSpec{at + "latency max", "µs", true},
			figureSpec{at + "server CPU per 1,000 jobs", "ms", true},
		)
	}
	return f
}

// openRef is the open loop's 100%.
type openRef struct {
	rate   float64
	source string // where the rate comes from, for the header
	err    error
}

// openLoopRef returns the reference rate, measured once: -openloop-max
// if given, else gearmand's complete 1a of this run, else a probe of
// gearmand with 1a's shape. Without a gearmand column, the first
// column's stands in.
func (b *bench) openLoopRef(ctx context.Context) *openRef {
	if b.ref != nil {
		return b.ref
	}
	b.ref = &openRef{}
	if b.cfg.openLoopMax > 0 {
		b.ref.rate = b.cfg.openLoopMax
		b.ref.source = fmt.Sprintf("%.0f jobs/s, given by -openloop-max", b.cfg.openLoopMax)
		return b.ref
	}
	t := b.targets[0]
	for _, c := range b.targets {
		if c.name == "gearmand" {
			t = c
		}
	}
	whose := t.name + "'s"
	if t.name != "gearmand" {
		whose += " (gearmand is not run)"
	}
	if r, ok := b.fgRates[t.name]; ok {
		b.ref.rate = r
		b.ref.source = fmt.Sprintf("%.0f jobs/s, %s closed-loop foreground rate in 1a", r, whose)
		return b.ref
	}
	l := b.loads.openProbe
	b.logf("%s reference rate: a closed-loop foreground probe of %d jobs on %s ...", openLoopScenario, l.Jobs, t.name)
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		b.ref.err = fmt.Errorf("reference probe: %s did not start: %w", t.name, err)
		return b.ref
	}
	defer p.Stop()
	r, err := loadgen.Foreground(ctx, p.Addr, l)
	if err != nil {
		b.ref.err = fmt.Errorf("reference probe on %s: %w", t.name, err)
		return b.ref
	}
	if b.ref.rate = r.Rate(); b.ref.rate <= 0 {
		b.ref.err = fmt.Errorf("reference probe on %s: %w: %d jobs", t.name, errNoReference, r.Jobs)
		return b.ref
	}
	b.ref.source = fmt.Sprintf("%.0f jobs/s, %s closed-loop foreground rate in a probe like 1a (%d jobs, %d clients, %d workers)",
		b.ref.rate, whose, r.Jobs, l.Conns, l.Workers)
	return b.ref
}

func (b *bench) openLoop(ctx context.Context, t target) []cell {
	levels := openLoopLevels()
	ref := b.openLoopRef(ctx)
	if ref.err != nil {
		return failed(len(levels)*openLoopFiguresPerLevel, ref.err)
	}
	var cells []cell
	for _, lv := range levels {
		cells = append(cells, b.openLoopLevel(ctx, t, ref.rate*lv, lv)...)
	}
	return cells
}

// openLoopLevel runs the open loop at rate on a fresh server and returns
// its level's cells: p50, p99, p99.9, max and CPU per 1,000 jobs.
func (b *bench) openLoopLevel(ctx context.Context, t target, rate, level float64) []cell {
	const n = openLoopFiguresPerLevel
	o := b.loads.open
	jobs, warmup := o.jobs(rate)
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(n, t.name, err)
	}
	defer p.Stop()
	before, err := p.CPU()
	if err != nil {
		return failed(n, err)
	}
	r, runErr := loadgen.OpenLoop(ctx, p.Addr, loadgen.OpenLoad{Rate: rate, Jobs: jobs, Warmup: warmup,
		Conns: o.conns, Workers: o.workers, Grace: o.grace})
	after, err := p.CPU()
	if err != nil {
		return failed(n, err)
	}
	base := cell{OK: r.Jobs > 0, Jobs: r.Jobs, Sent: r.Sent}
	var trouble string
	if runErr != nil {
		base.Partial = base.OK
		if !base.OK {
			return failed(n, runErr)
		}
		trouble = "; incomplete: " + runErr.Error()
	}
	us := func(d time.Duration) cell {
		c := base
		c.Value = float64(d.Nanoseconds()) / 1e3
		return c
	}
	lat := &r.Latency
	cells := []cell{us(lat.Quantile(0.5)), us(lat.Quantile(0.99)), us(lat.Quantile(0.999)), us(lat.Max())}
	cells[0].Note = fmt.Sprintf("%.0f jobs/s (%.0f%%): %d jobs measured after %d warm-up, %d connections sending each job when due, %d workers; %.0f jobs/s completed; sender lag p50 %s p99 %s max %s%s",
		rate, level*100, r.Jobs, warmup, o.conns, o.workers, r.Achieved(),
		roundUs(r.Lag.Quantile(0.5)), roundUs(r.Lag.Quantile(0.99)), roundUs(r.Lag.Max()), trouble)
	used := after.Sub(before)
	all := r.Jobs + warmup // the run's jobs: the warm-up ran too
	cpu := base
	cpu.Value = perThousand(used.Total(), all)
	cpu.Note = cpuNote(used, all)
	return append(cells, cpu)
}

// roundUs rounds d for a note: to the µs below 10 ms, else to 0.1 ms.
func roundUs(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}

// perThousand returns used per 1,000 jobs in milliseconds.
func perThousand(used time.Duration, jobs int) float64 {
	if jobs <= 0 {
		return 0
	}
	return float64(used.Nanoseconds()) / 1e6 * 1000 / float64(jobs)
}

// cpuNote says what a CPU figure is made of.
func cpuNote(used loadgen.CPUTime, jobs int) string {
	return fmt.Sprintf("user %d ms + sys %d ms over %d jobs (/proc/<pid>/stat, %v resolution)",
		used.User.Milliseconds(), used.System.Milliseconds(), jobs, loadgen.CPUResolution)
}

// errNoReference is the open loop's error when its probe completed no job.
var errNoReference = errors.New("no reference rate")
