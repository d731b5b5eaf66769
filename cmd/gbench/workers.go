package main

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gworkerd/gworkerd/internal/loadgen"
)

// The worker section (scenario 8) serves one trivial PHP job, the
// workload reversed (`return strrev($job->workload());`), with 4 workers
// hosted six ways, one after the other against the same server:
// resident PHP in gworkerd (4 PHP handlers in one child, `count: 1,
// concurrency: 4, prefetch: 3`, the shape README recommends for short
// jobs), per-job exec in
// gworkerd (a php process per job, today's executable contract), the
// native pecl GearmanWorker loop (4 php processes that gbench starts
// itself: the baseline), gworkerd's Go built-in `reverse`, and resident
// PHP again as 4 children of one handler each (`count: 4`), and as the
// first without prefetch (each handler waits for gworkerd between jobs).
// The jobs are foreground and
// pipelined (ForegroundPipelined): every result is checked, and the
// window keeps the queue from running dry, so the rate, from the first
// submit to the last WORK_COMPLETE, is the workers' throughput.

//go:embed php
var phpFiles embed.FS

const (
	// workersScenario is the worker section's id.
	workersScenario = "8"
	// hostedWorkers is how many workers every hosting runs.
	hostedWorkers = 4
	// phpFunction is the function the PHP files serve.
	phpFunction = "rev"
	// builtinFunction is gworkerd's Go built-in that does the same.
	builtinFunction = "reverse"
	// hostReady bounds the start of a hosting's workers (until the server
	// lists all of them) and, after the run, their exit.
	hostReady = 30 * time.Second
	// residentPrefetch is the prefetch of the resident hosting (8a).
	residentPrefetch = 3
	// hostStopTimeout is gworkerd's stop_timeout in the section.
	hostStopTimeout = 5 * time.Second
)

// hosting is one way of running the workers.
type hosting struct {
	key      string // short name, in errors
	label    string // its name in the closing note
	figure   string // its row in the table
	function string
	// exec: the per-job exec load, smaller (a php start per job).
	exec bool
	// conns is how many worker connections the hosting makes (gworkerd:
	// its children); 0 means hostedWorkers.
	conns int
	// start starts the workers against addr; files is the section's
	// directory, with the PHP files written out.
	start func(b *bench, addr, files string) ([]*loadgen.Proc, error)
	// missing says why the hosting cannot run here ("" when it can).
	missing func(b *bench) string
}

func hostings() []hosting {
	return []hosting{
		{key: "resident", label: "resident PHP", function: phpFunction, start: startResident, missing: needPHPAndGworkerd, conns: 1,
			figure: "PHP strrev job, resident in gworkerd (job_rev.php, 4 handlers in 1 child, prefetch 3)"},
		{key: "exec", label: "per-job exec", function: phpFunction, exec: true, start: startExec, missing: needPHPAndGworkerd,
			figure: "PHP strrev job, per-job exec by gworkerd (4 children, a php per job)"},
		{key: "pecl", label: "native pecl loop", function: phpFunction, start: startPecl, missing: needPecl,
			figure: "PHP strrev job, native pecl GearmanWorker loop (4 php processes)"},
		{key: "builtin", label: "Go built-in", function: builtinFunction, start: startBuiltin, missing: needGworkerd,
			figure: "same job, gworkerd's Go built-in reverse (4 children)"},
		{key: "resident4", label: "resident PHP in 4 children", function: phpFunction, start: startResident4, missing: needPHPAndGworkerd,
			figure: "PHP strrev job, resident in gworkerd (job_rev.php, 4 children of 1 handler)"},
		{key: "resident-noprefetch", label: "resident PHP without prefetch", function: phpFunction, start: startResidentNoPrefetch, missing: needPHPAndGworkerd, conns: 1,
			figure: "PHP strrev job, resident in gworkerd (job_rev.php, 4 handlers in 1 child, no prefetch)"},
	}
}

func needGworkerd(b *bench) string {
	if b.cfg.gworkerd == "" {
		return "no gworkerd (-gworkerd)"
	}
	return ""
}

func needPHP(b *bench) string {
	if b.cfg.php == "" {
		return "no php (-php; Debian package php-cli)"
	}
	return ""
}

func needPHPAndGworkerd(b *bench) string {
	if why := needPHP(b); why != "" {
		return why
	}
	return needGworkerd(b)
}

func needPecl(b *bench) string {
	if why := needPHP(b); why != "" {
		return why
	}
	if !phpHasGearman(b.cfg.php) {
		return b.cfg.php + " has no gearman extension (Debian package php-gearman)"
	}
	return ""
}

// describeWorkers is the report's line on the worker section.
func (b *bench) describeWorkers() string {
	gw, php := b.cfg.gworkerd, b.cfg.php
	if gw == "" {
		gw = "(none)"
	}
	if php == "" {
		php = "(none)"
	} else if out, err := exec.Command(php, "-r", "echo PHP_VERSION;").Output(); err == nil {
		php += " " + string(out)
	}
	h, e := b.loads.hosted, b.loads.hostedExec
	return fmt.Sprintf("gworkerd %s, php %s; %d workers per hosting, %d foreground jobs of %d bytes (per-job exec: %d, a php start each), pipelined on %d conns x %d in flight; each hosting runs alone against one server per column",
		gw, php, hostedWorkers, h.Jobs, len(h.Workload()), e.Jobs, h.Conns, h.Window)
}

// phpHasGearman reports whether php loads pecl/gearman.
func phpHasGearman(php string) bool {
	out, err := exec.Command(php, "-r", "echo extension_loaded('gearman') ? 'yes' : 'no';").Output()
	return err == nil && string(out) == "yes"
}

// workers runs the worker section on t: one server, the four hostings in
// turn.
func (b *bench) workers(ctx context.Context, t target) []cell {
	hs := hostings()
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(len(hs), t.name, err)
	}
	defer p.Stop()
	// Unix socket paths are short: keep the directory name short.
	files, err := os.MkdirTemp("", "gbw-")
	if err != nil {
		return failed(len(hs), err)
	}
	defer os.RemoveAll(files)
	if err := b.writePHPFiles(files); err != nil {
		return failed(len(hs), err)
	}
	cells := make([]cell, len(hs))
	for i, h := range hs {
		if ctx.Err() != nil {
			cells[i] = cell{Err: ctx.Err().Error()}
			continue
		}
		cells[i] = b.host(ctx, p.Addr, files, h)
	}
	return cells
}

// host measures one hosting: start its workers, wait until the server
// lists all of them, run the jobs, stop the workers and wait until the
// server has dropped them, so that the next hosting starts clean.
func (b *bench) host(ctx context.Context, addr, files string, h hosting) cell {
	if why := h.missing(b); why != "" {
		return notRun(1, why)[0]
	}
	l := b.loads.hosted
	if h.exec {
		l = b.loads.hostedExec
	}
	l.Function = h.function
	procs, err := h.start(b, addr, files)
	stopAll := func() {
		for _, p := range procs {
			p.Stop()
		}
	}
	defer stopAll()
	if err != nil {
		return cell{Err: err.Error()}
	}
	if b.cfg.verbose {
		for _, p := range procs {
			b.logf("  started %s", strings.Join(p.Args, " "))
		}
	}
	conns := h.conns
	if conns == 0 {
		conns = hostedWorkers
	}
	if err := waitWorkers(ctx, addr, h.function, conns, procs); err != nil {
		return cell{Err: fmt.Sprintf("%s workers did not register: %v", h.key, err)}
	}
	r, err := loadgen.ForegroundPipelined(ctx, addr, l, []byte(reverse(l.Workload())))
	c := rateCell(r, err, "jobs done")
	c.Note += fmt.Sprintf("; %d workers, foreground, %d conns x %d in flight", hostedWorkers, l.Conns, l.Window)
	if err != nil {
		c.Note += "; worker output: " + lastOutput(procs)
	}
	stopAll()
	if err := waitWorkers(ctx, addr, h.function, 0, nil); err != nil {
		c.Note += "; after the stop: " + err.Error()
	}
	return c
}

// waitWorkers waits until the server lists n workers for fn, at most
// hostReady, and fails at once when one of procs exits.
func waitWorkers(ctx context.Context, addr, fn string, n int, procs []*loadgen.Proc) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, cancelT := context.WithTimeoutCause(ctx, hostReady, fmt.Errorf("not within %s", hostReady))
	defer cancelT()
	for _, p := range procs {
		go func() {
			select {
			case <-p.Done():
				cancel(fmt.Errorf("%s exited: %s", filepath.Base(p.Args[0]), p.Output()))
			case <-ctx.Done():
			}
		}()
	}
	return loadgen.WaitWorkers(ctx, addr, fn, n)
}

// lastOutput returns the output tail of the first proc that wrote any.
func lastOutput(procs []*loadgen.Proc) string {
	for _, p := range procs {
		if out := p.Output(); out != "" {
			return out
		}
	}
	return "(none)"
}

// reverse reverses s byte by byte, as PHP's strrev does.
func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// writePHPFiles writes the embedded PHP files under dir: the resident
// job file, the per-job executable (made executable, its #! line naming
// the PHP measured) and the pecl loop.
func (b *bench) writePHPFiles(dir string) error {
	return fs.WalkDir(phpFiles, "php", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := phpFiles.ReadFile(path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if rest, ok := strings.CutPrefix(string(data), "#!"); ok {
			_, body, _ := strings.Cut(rest, "\n")
			data = []byte("#!" + b.cfg.php + "\n" + body)
			mode = 0o755
		}
		return os.WriteFile(out, data, mode)
	})
}

// startGworkerd writes a gworkerd config for the section under
// files/name and starts gworkerd in the foreground on it: servers addr,
// jobDir (if any) as the job directory, children children of fn that
// run hostedWorkers/children jobs at once each.
func (b *bench) startGworkerd(addr, files, name, jobDir, fn string, children, prefetch int) ([]*loadgen.Proc, error) {
	dir := filepath.Join(files, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "servers: [%s]\n", strconv.Quote(addr))
	if jobDir != "" {
		fmt.Fprintf(&cfg, "job_dirs: [%s]\n", strconv.Quote(jobDir))
	}
	if b.cfg.php != "" {
		fmt.Fprintf(&cfg, "php: %s\n", strconv.Quote(b.cfg.php))
	}
	fmt.Fprintf(&cfg, "pid_file: %s\ncontrol_socket: %s\nlog_file: \"\"\nhttp_listen: \"\"\nstop_timeout: %s\n",
		strconv.Quote(filepath.Join(dir, "g.pid")), strconv.Quote(filepath.Join(dir, "g.sock")), hostStopTimeout)
	fmt.Fprintf(&cfg, "functions:\n  %s:\n    count: %d\n    concurrency: %d\n    prefetch: %d\n", fn, children, hostedWorkers/children, prefetch)
	path := filepath.Join(dir, "gworkerd.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := loadgen.Spawn(b.cfg.gworkerd, nil, "--config", path, "start", "--foreground")
	if err != nil {
		return nil, err
	}
	return []*loadgen.Proc{p}, nil
}

func startResident(b *bench, addr, files string) ([]*loadgen.Proc, error) {
	return b.startGworkerd(addr, files, "gw-resident", filepath.Join(files, "php", "resident"), phpFunction, 1, residentPrefetch)
}

func startResidentNoPrefetch(b *bench, addr, files string) ([]*loadgen.Proc, error) {
	return b.startGworkerd(addr, files, "gw-resident0", filepath.Join(files, "php", "resident"), phpFunction, 1, 0)
}

func startResident4(b *bench, addr, files string) ([]*loadgen.Proc, error) {
	return b.startGworkerd(addr, files, "gw-resident4", filepath.Join(files, "php", "resident"), phpFunction, hostedWorkers, 0)
}

func startExec(b *bench, addr, files string) ([]*loadgen.Proc, error) {
	return b.startGworkerd(addr, files, "gw-exec", filepath.Join(files, "php", "exec"), phpFunction, hostedWorkers, 0)
}

func startBuiltin(b *bench, addr, files string) ([]*loadgen.Proc, error) {
	return b.startGworkerd(addr, files, "gw-builtin", "", builtinFunction, hostedWorkers, 0)
}

// startPecl starts hostedWorkers plain pecl worker loops.
func startPecl(b *bench, addr, files string) ([]*loadgen.Proc, error) {
	var procs []*loadgen.Proc
	for range hostedWorkers {
		p, err := loadgen.Spawn(b.cfg.php, nil, filepath.Join(files, "php", "pecl_rev.php"), addr)
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}
