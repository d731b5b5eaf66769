// Command gbench measures gserverd against the C gearmand, side by side in
// one run: foreground round trips, pipelined background submits,
// background end-to-end, the drain of a queue, resident memory per queued
// job, durable submits (gserverd's embedded store against gearmand's
// SQLite queue), bulk submits through the client package, the worker
// section: one trivial PHP job on 4 workers, resident in gworkerd, run
// per job by gworkerd, in the native pecl GearmanWorker loop, and as
// gworkerd's Go built-in; then the open-loop latency of foreground jobs
// at fixed rates, and what a foreground job costs the server in
// processor time and in system calls.
//
// It starts every server itself, fresh for each scenario, on a free
// loopback port, and drives it with internal/loadgen, which speaks the
// protocol directly. Every scenario is bounded in job count and in time
// and reports what completed. `make bench` runs it.
//
// Usage:
//
//	gbench -gserverd bin/gserverd [-gearmand /usr/sbin/gearmand] [-gworkerd bin/gworkerd] [-php php] [-quick] [-scenarios 1,2,fg] [-json]
//	       [-openloop-max JOBS/S] [-syscall-tool auto|perf|strace|none]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.Is(err, errFigures):
		fmt.Fprintln(os.Stderr, "gbench:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "gbench:", err)
		os.Exit(2)
	}
}

// errFigures reports that some figures failed; the table was printed with
// the reason in each such cell. Figures "not run" because a feature is
// not built (yet) are not failures.
var errFigures = errors.New("some figures failed (see the table)")

// config is what the command line selects.
type config struct {
	gserverd, gearmand   string
	gworkerd, php        string   // the worker section's
	gserverdArgs         []string // every gserverd start
	gserverdMemArgs      []string // scenarios 1-5
	gserverdDurableArgs  []string // scenario 6; {dir} is a fresh temp dir
	gearmandArgs         []string // every gearmand start
	gearmandDurableArgs  []string // scenario 6
	gearmandRSSArgs      []string // scenario 5
	quick, json, verbose bool
	scenarios            map[string]bool
	rssWait              time.Duration
	openLoopMax          float64 // scenario 9's 100% in jobs/s; 0: measured
	syscallTool          string  // scenario 11's counter: auto, perf, strace or none
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("gbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var gsArgs, gsMem, gsDur, gmArgs, gmDur, gmRSS, scen string
	fs.StringVar(&c.gserverd, "gserverd", "", "path of the gserverd binary to measure (empty: the gserverd column is not run)")
	fs.StringVar(&c.gearmand, "gearmand", defaultGearmand(), "path of the C gearmand to compare with (empty: not run)")
	fs.StringVar(&c.gworkerd, "gworkerd", "", "path of gworkerd for the worker section (not given: the gworkerd beside -gserverd, if any; empty: its gworkerd figures are not run)")
	fs.StringVar(&c.php, "php", defaultPHP(), "PHP interpreter for the worker section (empty: its PHP figures are not run)")
	fs.StringVar(&gsArgs, "gserverd-args", "", "extra flags for every gserverd start, space-separated")
	fs.StringVar(&gsMem, "gserverd-mem-args", "-q builtin", "queue flags for gserverd in scenarios 1-5 (in-memory)")
	fs.StringVar(&gsDur, "gserverd-durable-args", "-q embedded --sync always --data-dir {dir}", "queue flags for gserverd in scenario 6; {dir} is a fresh temporary directory")
	fs.StringVar(&gmArgs, "gearmand-args", "", "extra flags for every gearmand start, space-separated")
	fs.StringVar(&gmRSS, "gearmand-rss-args", "--hashtable-buckets 1000003", "flags for gearmand in scenario 5 (1,000,000 queued jobs): with its default 991 hash buckets gearmand drains them at about 2,500 jobs/s and the drain does not finish within the bound")
	fs.StringVar(&gmDur, "gearmand-durable-args", "-q libsqlite3 --libsqlite3-db {dir}/q.db", "queue flags for gearmand in scenario 6; {dir} is a fresh temporary directory")
	fs.BoolVar(&c.quick, "quick", false, "small counts, for a smoke test (each scenario bounded by its count; its time bounds only guard against a hang)")
	fs.BoolVar(&c.json, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&c.verbose, "v", false, "print each server's command line and output tail on failure")
	fs.StringVar(&scen, "scenarios", "all", "comma-separated scenarios by number or name: "+scenarioNames())
	fs.DurationVar(&c.rssWait, "rss-wait", 5*time.Second, "delay after the drain before the last RSS reading (lets a garbage-collected runtime return memory)")
	fs.Float64Var(&c.openLoopMax, "openloop-max", 0, "jobs/s taken as 100% by the open loop (scenario 9), to compare runs at the same rates (0: gearmand's closed-loop foreground rate, from 1a of this run or a probe like it)")
	fs.StringVar(&c.syscallTool, "syscall-tool", "auto", "system call counter of scenario 11: auto (perf if it can count the syscall tracepoints here, else strace), perf, strace or none")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gbench -gserverd PATH [flags]\n\nMeasures gserverd against gearmand; every scenario starts fresh servers on loopback ports.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.gserverdArgs = strings.Fields(gsArgs)
	c.gserverdMemArgs = strings.Fields(gsMem)
	c.gserverdDurableArgs = strings.Fields(gsDur)
	c.gearmandArgs = strings.Fields(gmArgs)
	c.gearmandDurableArgs = strings.Fields(gmDur)
	c.gearmandRSSArgs = strings.Fields(gmRSS)
	var err error
	if c.scenarios, err = parseScenarios(scen); err != nil {
		return c, err
	}
	if c.openLoopMax < 0 {
		return c, fmt.Errorf("-openloop-max %v: must not be negative", c.openLoopMax)
	}
	if !slices.Contains([]string{"auto", "perf", "strace", "none"}, c.syscallTool) {
		return c, fmt.Errorf("-syscall-tool %q: want auto, perf, strace or none", c.syscallTool)
	}
	if c.rssWait < 0 {
		return c, fmt.Errorf("-rss-wait %v: must not be negative", c.rssWait)
	}
	if c.quick && c.rssWait > time.Second {
		c.rssWait = time.Second
	}
	if c.gserverd == "" && c.gearmand == "" {
		return c, errors.New("nothing to measure: give -gserverd and/or -gearmand")
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "gworkerd" })
	if !given && c.gserverd != "" {
		if p := filepath.Join(filepath.Dir(c.gserverd), "gworkerd"); isExecutable(p) {
			c.gworkerd = p
		}
	}
	return c, nil
}

// defaultPHP finds php on PATH; "" when it is not installed.
func defaultPHP() string {
	p, _ := exec.LookPath("php")
	return p
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// defaultGearmand finds gearmand on PATH or in /usr/sbin, where Debian
// puts it; "" when it is not installed.
func defaultGearmand() string {
	if p, err := exec.LookPath("gearmand"); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, "gearmand"); isExecutable(p) {
			return p
		}
	}
	return ""
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := newBench(cfg, stderr)
	rep := b.run(ctx)
	if cfg.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rep.failed() {
		return errFigures
	}
	return nil
}
