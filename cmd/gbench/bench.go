package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gworkerd/gworkerd/internal/loadgen"
)

// target is one server under test.
type target struct {
	name        string // column: "gserverd" or "gearmand"
	path        string
	args        []string // every start
	memArgs     []string // in-memory scenarios
	rssArgs     []string // scenario 5
	durableArgs []string // durable scenarios, {dir} replaced
}

// loads are the counts and bounds of every scenario.
type loads struct {
	fg, submit, e2e, drain, rss, durableSubmit, durableE2E, client loadgen.Load
	// hosted is the worker section's load; hostedExec its per-job exec
	// hosting's: fewer jobs, as each starts a php (about 10 to 30 a
	// second with 4 workers on 2 cores).
	hosted, hostedExec loadgen.Load
	// open is the open loop's (scenario 9); openProbe measures its
	// reference rate when scenario 1 did not run.
	open      openLoads
	openProbe loadgen.Load
	// cpu is scenario 10's foreground load, syscalls scenario 11's (a
	// short run: strace slows the server several times over).
	cpu, syscalls loadgen.Load
}

// openLoads shapes the open loop at each level: the rate times measure
// jobs (at least minJobs) after the rate times warmup (at least
// minWarmup), sent over conns connections to workers workers.
type openLoads struct {
	measure, warmup    time.Duration
	minJobs, minWarmup int
	conns, workers     int
	grace              time.Duration
}

// jobs returns the measured and warm-up jobs at rate.
func (o openLoads) jobs(rate float64) (jobs, warmup int) {
	return max(int(rate*o.measure.Seconds()), o.minJobs), max(int(rate*o.warmup.Seconds()), o.minWarmup)
}

func fullLoads() loads {
	return loads{
		fg:            loadgen.Load{Jobs: 100_000, Duration: 5 * time.Second, Conns: 8, Workers: 4, Grace: 20 * time.Second},
		submit:        loadgen.Load{Jobs: 500_000, Duration: 10 * time.Second, Conns: 2, Window: 256, Grace: 20 * time.Second},
		e2e:           loadgen.Load{Jobs: 100_000, Duration: 10 * time.Second, Conns: 2, Window: 256, Workers: 2, Grace: 30 * time.Second},
		drain:         loadgen.Load{Jobs: 100_000, Duration: 30 * time.Second, Conns: 2, Window: 256, Workers: 4, Grace: 60 * time.Second},
		rss:           loadgen.Load{Jobs: 1_000_000, Duration: 60 * time.Second, Conns: 2, Window: 256, Workers: 16, Grace: 90 * time.Second},
		durableSubmit: loadgen.Load{Jobs: 20_000, Duration: 15 * time.Second, Conns: 2, Window: 256, Unique: true, Grace: 15 * time.Second},
		durableE2E:    loadgen.Load{Jobs: 20_000, Duration: 15 * time.Second, Conns: 2, Window: 256, Workers: 2, Unique: true, Grace: 15 * time.Second},
		client:        loadgen.Load{Jobs: 200_000, Duration: 10 * time.Second, Conns: 256, Grace: 20 * time.Second},
		hosted:        loadgen.Load{Jobs: 20_000, Duration: 60 * time.Second, Conns: 2, Window: 32, Grace: 30 * time.Second},
		hostedExec:    loadgen.Load{Jobs: 500, Duration: 90 * time.Second, Conns: 2, Window: 32, Grace: 30 * time.Second},
		open:          openLoads{measure: 5 * time.Second, warmup: time.Second, minJobs: 1000, minWarmup: 100, conns: 8, workers: 4, grace: 20 * time.Second},
		openProbe:     loadgen.Load{Jobs: 30_000, Duration: 5 * time.Second, Conns: 8, Workers: 4, Grace: 20 * time.Second},
		cpu:           loadgen.Load{Jobs: 100_000, Duration: 5 * time.Second, Conns: 8, Workers: 4, Grace: 20 * time.Second},
		syscalls:      loadgen.Load{Jobs: 20_000, Duration: 30 * time.Second, Conns: 8, Workers: 4, Grace: 30 * time.Second},
	}
}

// quickLoads are the smoke test's: small counts, each scenario bounded
// by its count. The time bounds only guard against a hang: a loaded
// machine (a 2-core CI box running the race detector) took more than
// 3 s for the 2,000 jobs of scenario 1a, and a smoke run cut by time
// checks less than it says.
func quickLoads() loads {
	const d, g = time.Minute, 30 * time.Second // Duration and Grace
	return loads{
		fg:            loadgen.Load{Jobs: 2_000, Duration: d, Conns: 8, Workers: 4, Grace: g},
		submit:        loadgen.Load{Jobs: 10_000, Duration: d, Conns: 2, Window: 256, Grace: g},
		e2e:           loadgen.Load{Jobs: 5_000, Duration: d, Conns: 2, Window: 256, Workers: 2, Grace: g},
		drain:         loadgen.Load{Jobs: 5_000, Duration: d, Conns: 2, Window: 256, Workers: 4, Grace: g},
		rss:           loadgen.Load{Jobs: 20_000, Duration: d, Conns: 2, Window: 256, Workers: 16, Grace: g},
		durableSubmit: loadgen.Load{Jobs: 1_000, Duration: d, Conns: 2, Window: 256, Unique: true, Grace: g},
		durableE2E:    loadgen.Load{Jobs: 1_000, Duration: d, Conns: 2, Window: 256, Workers: 2, Unique: true, Grace: g},
		client:        loadgen.Load{Jobs: 5_000, Duration: d, Conns: 64, Grace: g},
		hosted:        loadgen.Load{Jobs: 1_000, Duration: d, Conns: 2, Window: 32, Grace: g},
		hostedExec:    loadgen.Load{Jobs: 40, Duration: d, Conns: 2, Window: 32, Grace: g},
		open:          openLoads{minJobs: 2_000, minWarmup: 200, conns: 8, workers: 4, grace: g},
		openProbe:     loadgen.Load{Jobs: 2_000, Duration: d, Conns: 8, Workers: 4, Grace: g},
		cpu:           loadgen.Load{Jobs: 5_000, Duration: d, Conns: 8, Workers: 4, Grace: g},
		syscalls:      loadgen.Load{Jobs: 2_000, Duration: d, Conns: 8, Workers: 4, Grace: g},
	}
}

// scenario is one numbered measurement; it yields one or more figures.
type scenario struct {
	id, key, title string
	figures        []figureSpec
	// run measures one target; it returns one cell per figure.
	run func(b *bench, ctx context.Context, t target) []cell
}

type figureSpec struct {
	name, unit string
	lower      bool // lower is better (latency, memory)
}

func scenarios() []scenario {
	return []scenario{
		{"1", "fg", "foreground round trips, 8 clients, 4 workers", []figureSpec{
			{"foreground round trips (8 clients, 4 workers)", "jobs/s", false},
			{"foreground latency p50", "µs", true},
			{"foreground latency p99", "µs", true},
			{"foreground latency p99.9", "µs", true},
		}, (*bench).foreground},
		{"2", "submit", "pipelined background submits", []figureSpec{
			{"pipelined SUBMIT_JOB_BG (2 conns x 256 in flight)", "submits/s", false},
		}, (*bench).submit},
		{"3", "e2e", "background end-to-end", []figureSpec{
			{"background end-to-end (submit while 2 workers drain)", "jobs/s", false},
		}, (*bench).endToEnd},
		{"4", "drain", "drain of queued jobs by 4 workers", []figureSpec{
			{"drain of a queue by 4 workers", "jobs/s", false},
			{"RSS with the queue full", "MiB", true},
			{"RSS after the drain + wait", "MiB", true},
		}, (*bench).drain},
		{"5", "rss", "resident memory per queued job", []figureSpec{
			{"RSS per queued 100-byte job", "bytes", true},
			{"RSS after the drain", "MiB", true},
			{"RSS after the drain + wait", "MiB", true},
		}, (*bench).memory},
		{"6", "durable", "durable queue: gserverd embedded --sync always vs gearmand libsqlite3", []figureSpec{
			{"durable pipelined SUBMIT_JOB_BG", "submits/s", false},
			{"durable background end-to-end (2 workers)", "jobs/s", false},
		}, (*bench).durable},
		{"7", "client", "bulk background submits through the client package", []figureSpec{
			{"client package: concurrent SubmitBackground on one Client", "submits/s", false},
			{"client package: SubmitBackgroundBatch of 1000", "submits/s", false},
		}, (*bench).client},
		{workersScenario, "workers", "worker section: a PHP strrev job on 4 workers, hosted six ways", hostingFigures(), (*bench).workers},
		{openLoopScenario, "openloop", "open-loop foreground latency at 50% and 80% of gearmand's maximum", openLoopFigures(), (*bench).openLoop},
		{"10", "cpu", "server CPU per 1,000 foreground jobs", []figureSpec{
			{"server CPU (user+sys) per 1,000 foreground jobs, closed loop (8 clients, 4 workers)", "ms", true},
		}, (*bench).cpu},
		{syscallsScenario, "syscalls", "system calls per foreground job", []figureSpec{
			{"server system calls per foreground job (8 clients, 4 workers; counted on a separate run)", "calls", true},
		}, (*bench).syscalls},
	}
}

// hostingFigures are the worker section's figures, one per hosting.
func hostingFigures() []figureSpec {
	var f []figureSpec
	for _, h := range hostings() {
		f = append(f, figureSpec{name: h.figure, unit: "jobs/s"})
	}
	return f
}

func scenarioNames() string {
	var s []string
	for _, sc := range scenarios() {
		s = append(s, sc.id+"="+sc.key)
	}
	return strings.Join(s, ", ")
}

func parseScenarios(list string) (map[string]bool, error) {
	sel := map[string]bool{}
	all := scenarios()
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f == "all" {
			for _, sc := range all {
				sel[sc.id] = true
			}
			continue
		}
		i := slices.IndexFunc(all, func(sc scenario) bool { return sc.id == f || sc.key == f })
		if i < 0 {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (want all or %s)", f, scenarioNames())
		}
		sel[all[i].id] = true
	}
	if len(sel) == 0 {
		return nil, errors.New("-scenarios: empty list")
	}
	return sel, nil
}

// bench runs the selected scenarios against the targets, one server at a
// time, and collects the report.
type bench struct {
	cfg     config
	loads   loads
	targets []target
	log     io.Writer

	// Set as the scenarios run, one at a time:
	fgRates     map[string]float64 // complete closed-loop foreground rates (1a) by column
	ref         *openRef           // the open loop's 100%, once measured
	syscallTool *toolChoice        // scenario 11's counter, once chosen
}

func newBench(cfg config, log io.Writer) *bench {
	b := &bench{cfg: cfg, loads: fullLoads(), log: log, fgRates: map[string]float64{}}
	if cfg.quick {
		b.loads = quickLoads()
	}
	if cfg.gserverd != "" {
		b.targets = append(b.targets, target{name: "gserverd", path: cfg.gserverd, args: cfg.gserverdArgs,
			memArgs: cfg.gserverdMemArgs, rssArgs: cfg.gserverdMemArgs, durableArgs: cfg.gserverdDurableArgs})
	}
	if cfg.gearmand != "" {
		b.targets = append(b.targets, target{name: "gearmand", path: cfg.gearmand, args: cfg.gearmandArgs,
			rssArgs: cfg.gearmandRSSArgs, durableArgs: cfg.gearmandDurableArgs})
	}
	return b
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "gbench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) *report {
	rep := &report{Meta: meta{
		Started:  time.Now().UTC().Format(time.RFC3339),
		CPUs:     runtime.NumCPU(),
		Quick:    b.cfg.quick,
		RSSWait:  b.cfg.rssWait.String(),
		Commands: map[string]string{},
	}}
	for _, t := range b.targets {
		rep.Meta.Columns = append(rep.Meta.Columns, t.name)
		cmd := strings.Join(append([]string{t.path}, t.args...), " ")
		if len(t.memArgs) > 0 {
			cmd += "; in-memory scenarios add " + strings.Join(t.memArgs, " ")
		}
		if !slices.Equal(t.rssArgs, t.memArgs) {
			cmd += "; scenario 5 adds " + strings.Join(t.rssArgs, " ")
		}
		cmd += "; scenario 6 adds " + strings.ReplaceAll(strings.Join(t.durableArgs, " "), "{dir}", "<tmp>")
		if base := filepath.Base(t.path); base != t.name {
			cmd += fmt.Sprintf(" (NOTE: this column runs %s, not %s)", base, t.name)
		}
		rep.Meta.Commands[t.name] = cmd
	}
	if b.cfg.scenarios[workersScenario] {
		rep.Meta.Workers = b.describeWorkers()
	}

	for _, sc := range scenarios() {
		if !b.cfg.scenarios[sc.id] {
			continue
		}
		rows := make([]*row, len(sc.figures))
		for i, f := range sc.figures {
			rows[i] = &row{ID: fmt.Sprintf("%s%s", sc.id, sub(i, len(sc.figures))), Figure: f.name, Unit: f.unit, Lower: f.lower, Cells: map[string]cell{}}
		}
		for _, t := range b.targets {
			if ctx.Err() != nil {
				break
			}
			b.logf("%s %s on %s ...", sc.id, sc.title, t.name)
			cells := sc.run(b, ctx, t)
			for i, c := range cells {
				rows[i].Cells[t.name] = c
				b.logf("  %s %s: %s", rows[i].ID, t.name, c.String(rows[i].Unit))
			}
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	if b.ref != nil && b.ref.err == nil {
		o := b.loads.open
		rep.Meta.OpenLoop = fmt.Sprintf("100%% = %s; %d connections send each job when it is due, whatever is outstanding; %d raw workers as in 1; latency from each job's due time, not its send (no coordinated omission)",
			b.ref.source, o.conns, o.workers)
	}
	rep.derive()
	return rep
}

// sub names the figures of a multi-figure scenario a, b, c.
func sub(i, n int) string {
	if n == 1 {
		return ""
	}
	return string(rune('a' + i))
}

// start starts a fresh server of t with the given queue flags.
func (b *bench) start(ctx context.Context, t target, queueArgs []string) (*loadgen.Proc, error) {
	args := slices.Concat(t.args, queueArgs)
	p, err := loadgen.Start(ctx, t.path, args...)
	if err != nil {
		return nil, err
	}
	if b.cfg.verbose {
		b.logf("  started %s", strings.Join(p.Args, " "))
	}
	return p, nil
}

// failed returns n cells that all carry err.
func failed(n int, err error) []cell {
	cells := make([]cell, n)
	for i := range cells {
		cells[i] = cell{Err: err.Error()}
	}
	return cells
}

// noStart returns n failed cells for a server that did not start.
func noStart(n int, what string, err error) []cell {
	return failed(n, fmt.Errorf("%s did not start: %w", what, err))
}

// notRun returns n cells for a scenario whose feature is not available
// (yet): reported, but not a failure of the bench.
func notRun(n int, why string) []cell {
	cells := make([]cell, n)
	for i := range cells {
		cells[i] = cell{NotRun: true, Err: "not run: " + why}
	}
	return cells
}

// rateCell turns a throughput result into a cell. A result cut by a time
// bound or missing replies still reports what completed.
func rateCell(r loadgen.Result, err error, what string) cell {
	c := cell{Value: r.Rate(), OK: r.Jobs > 0, Jobs: r.Jobs, Sent: r.Submitted}
	c.Note = fmt.Sprintf("%d %s in %s", r.Jobs, what, r.Elapsed.Round(time.Millisecond))
	if r.Submitted != r.Jobs {
		c.Note += fmt.Sprintf(" (%d sent)", r.Submitted)
	}
	if r.TimeBound {
		c.Note += ", stopped by the time bound"
	}
	if err != nil {
		c.Partial = c.OK
		if !c.OK {
			c.Err = err.Error()
		} else {
			c.Note += "; incomplete: " + err.Error()
		}
	}
	return c
}

func (b *bench) foreground(ctx context.Context, t target) []cell {
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(4, t.name, err)
	}
	defer p.Stop()
	r, err := loadgen.Foreground(ctx, p.Addr, b.loads.fg)
	c := rateCell(r, err, "jobs")
	if c.OK && !c.Partial {
		b.fgRates[t.name] = c.Value
	}
	us := func(d time.Duration) cell {
		return cell{Value: float64(d.Nanoseconds()) / 1e3, OK: c.OK, Partial: c.Partial, Err: c.Err, Jobs: c.Jobs, Sent: c.Sent,
			Note: fmt.Sprintf("over %d round trips", r.Jobs)}
	}
	return []cell{c, us(r.P50), us(r.P99), us(r.P999)}
}

func (b *bench) submit(ctx context.Context, t target) []cell {
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(1, t.name, err)
	}
	defer p.Stop()
	r, err := loadgen.Submit(ctx, p.Addr, b.loads.submit)
	return []cell{rateCell(r, err, "jobs created")}
}

func (b *bench) endToEnd(ctx context.Context, t target) []cell {
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(1, t.name, err)
	}
	defer p.Stop()
	r, err := loadgen.EndToEnd(ctx, p.Addr, b.loads.e2e)
	return []cell{rateCell(r, err, "jobs done")}
}

func (b *bench) drain(ctx context.Context, t target) []cell {
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(3, t.name, err)
	}
	defer p.Stop()
	l := b.loads.drain
	const mib = 1 << 20
	var rss [3]int64 // before, queued, after the drain and the wait
	if rss[0], err = p.RSS(); err != nil {
		return failed(3, err)
	}
	q, err := loadgen.Submit(ctx, p.Addr, l)
	if err != nil {
		return failed(3, err)
	}
	if rss[1], err = p.RSS(); err != nil {
		return failed(3, err)
	}
	d, derr := loadgen.DrainQueued(ctx, p.Addr, l, q.Jobs)
	c := rateCell(d, derr, "jobs drained")
	c.Note += fmt.Sprintf("; queued first at %.0f/s", q.Rate())
	if err := sleepCtx(ctx, b.cfg.rssWait); err != nil {
		return []cell{c, {Err: err.Error()}, {Err: err.Error()}}
	}
	if rss[2], err = p.RSS(); err != nil {
		return []cell{c, {Err: err.Error()}, {Err: err.Error()}}
	}
	queued := cell{Value: float64(rss[1]) / mib, OK: true, Jobs: q.Jobs, Sent: q.Submitted,
		Note: fmt.Sprintf("%d jobs queued: RSS %.1f -> %.1f MiB", q.Jobs, float64(rss[0])/mib, float64(rss[1])/mib)}
	after := cell{Value: float64(rss[2]) / mib, OK: true, Partial: c.Partial || derr != nil, Jobs: d.Jobs, Sent: d.Submitted,
		Note: fmt.Sprintf("%s after %d of %d jobs were drained", b.cfg.rssWait, d.Jobs, q.Jobs)}
	return []cell{c, queued, after}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *bench) memory(ctx context.Context, t target) []cell {
	p, err := b.start(ctx, t, t.rssArgs)
	if err != nil {
		return noStart(3, t.name, err)
	}
	defer p.Stop()
	l := b.loads.rss
	m, err := loadgen.Memory(ctx, p, l, b.cfg.rssWait)
	cut := errors.Is(err, loadgen.ErrDrainTimeout)
	if err != nil && !cut {
		if m.Queued == 0 {
			return failed(3, err)
		}
	}
	const mib = 1 << 20
	per := cell{Value: m.PerJob(), OK: m.Queue.Jobs > 0, Jobs: m.Queue.Jobs, Sent: m.Queue.Submitted,
		Note: fmt.Sprintf("%d jobs queued in %s: RSS %.1f -> %.1f MiB", m.Queue.Jobs, m.Queue.Elapsed.Round(time.Millisecond),
			float64(m.Before)/mib, float64(m.Queued)/mib)}
	drained := fmt.Sprintf("%d of %d jobs drained by %d workers in %s", m.Drain.Jobs, m.Queue.Jobs, l.Workers, m.Drain.Elapsed.Round(time.Millisecond))
	if cut {
		drained += fmt.Sprintf(" (PARTIAL: the drain is bounded to %s)", l.Grace)
	}
	after := cell{Value: float64(m.After) / mib, OK: m.After > 0, Partial: cut, Jobs: m.Drain.Jobs, Sent: m.Drain.Submitted,
		Note: "right after " + drained}
	waited := cell{Value: float64(m.Waited) / mib, OK: m.Waited > 0, Partial: cut, Jobs: m.Drain.Jobs, Sent: m.Drain.Submitted,
		Note: fmt.Sprintf("%s after the drain; %s", m.Wait, drained)}
	if err != nil && !cut {
		for _, c := range []*cell{&after, &waited} {
			if !c.OK {
				c.Err = err.Error()
			}
		}
		per.Note += "; " + err.Error()
	}
	return []cell{per, after, waited}
}

func (b *bench) durable(ctx context.Context, t target) []cell {
	run := func(l loadgen.Load, measure func(context.Context, string, loadgen.Load) (loadgen.Result, error), what string) cell {
		dir, err := os.MkdirTemp("", "gbench-"+t.name+"-")
		if err != nil {
			return cell{Err: err.Error()}
		}
		defer os.RemoveAll(dir)
		args := make([]string, len(t.durableArgs))
		for i, a := range t.durableArgs {
			args[i] = strings.ReplaceAll(a, "{dir}", dir)
		}
		p, err := b.start(ctx, t, args)
		if err != nil {
			// The durable queue may not be built yet: report, do not fail.
			return notRun(1, fmt.Sprintf("%s %s: %v", filepath.Base(t.path), strings.ReplaceAll(strings.Join(t.durableArgs, " "), "{dir}", "<tmp>"), err))[0]
		}
		defer p.Stop()
		r, err := measure(ctx, p.Addr, l)
		c := rateCell(r, err, what)
		c.Note += "; " + strings.ReplaceAll(strings.Join(t.durableArgs, " "), "{dir}", "<tmp>")
		return c
	}
	return []cell{
		run(b.loads.durableSubmit, loadgen.Submit, "jobs created"),
		run(b.loads.durableE2E, loadgen.EndToEnd, "jobs done"),
	}
}

func (b *bench) client(ctx context.Context, t target) []cell {
	l := b.loads.client
	run := func(measure func(context.Context, string, loadgen.Load) (loadgen.Result, error), how string) cell {
		p, err := b.start(ctx, t, t.memArgs)
		if err != nil {
			return noStart(1, t.name, err)[0]
		}
		defer p.Stop()
		r, err := measure(ctx, p.Addr, l)
		c := rateCell(r, err, "jobs created")
		c.Note += "; " + how
		return c
	}
	return []cell{
		run(clientBulk, fmt.Sprintf("%d goroutines", l.Conns)),
		run(clientBatch, "2 goroutines"),
	}
}
