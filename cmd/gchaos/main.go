// Command gchaos runs issue 10's fault scenarios against the built
// servers, at a larger scale than the unit tests, and prints one line per
// scenario and server: jobs acknowledged (JOB_CREATED), lost
// (acknowledged, never handed to a worker), duplicates (handed out more
// than once), refused (ERROR), the worst round trip a bystander
// connection saw all through the scenario, and the server's peak RSS.
//
//   - crash: gserverd's embedded store (--sync always, --sync interval)
//     and gearmand's SQLite queue take pipelined SUBMIT_JOB_BG (empty and
//     distinct uniques) and are SIGKILLed several times, each restarted on
//     its data; then a raw worker drains everything.
//   - disk-full: gserverd's embedded store and gearmand's SQLite queue
//     on a small tmpfs: submits until refused, drain, space freed,
//     submits again, restart, drain.
//   - store-stall: gserverd on PostgreSQL through a proxy that stops
//     forwarding for a few seconds mid-load.
//   - flood: one connection sends duplicate CAN_DO and duplicate
//     foreground submits, another CAN_DO of distinct names, then a
//     /metrics scrape (gserverd), against gserverd and gearmand.
//
// `make chaos` runs it. It needs root for the tmpfs, and PostgreSQL for
// the stall; a scenario that cannot run says why on its line.
//
// Usage:
//
//	gchaos -gserverd bin/gserverd [-gearmand /usr/sbin/gearmand] [-scenarios crash,disk-full,store-stall,flood] [-quick]
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
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "gchaos:", err)
		os.Exit(1)
	}
}

// config is what the command line selects.
type config struct {
	gserverd, gearmand string
	scenarios          []string
	quick              bool
	pgAddr, pgOptions  string
	tmpDir             string // parent of the scenarios' data directories and mount points
}

// scenarioNames lists the scenarios in the order they run.
func scenarioNames() []string { return []string{"crash", "disk-full", "store-stall", "flood"} }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("gchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var scen string
	fs.StringVar(&c.gserverd, "gserverd", "", "path of the gserverd binary (required)")
	fs.StringVar(&c.gearmand, "gearmand", defaultGearmand(), "path of the C gearmand run side by side where a scenario applies to it (empty: not run)")
	fs.StringVar(&scen, "scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios: "+strings.Join(scenarioNames(), ", "))
	fs.BoolVar(&c.quick, "quick", false, "small counts and short phases, for a smoke test")
	fs.StringVar(&c.pgAddr, "pg", "127.0.0.1:5432", "host:port of the PostgreSQL of the store-stall scenario")
	fs.StringVar(&c.pgOptions, "pg-options", "user=postgres dbname=test sslmode=disable connect_timeout=5", "libpq options of that PostgreSQL besides host and port")
	fs.StringVar(&c.tmpDir, "tmpdir", os.TempDir(), "directory for the data directories and the tmpfs mount point")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.gserverd == "" {
		return c, errors.New("-gserverd is required")
	}
	for _, s := range strings.Split(scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		found := false
		for _, a := range scenarioNames() {
			found = found || a == s
		}
		if !found {
			return c, fmt.Errorf("-scenarios: unknown scenario %q (want %s)", s, strings.Join(scenarioNames(), ", "))
		}
		c.scenarios = append(c.scenarios, s)
	}
	if len(c.scenarios) == 0 {
		return c, errors.New("-scenarios: empty list")
	}
	return c, nil
}

// defaultGearmand finds gearmand on PATH or in /usr/sbin; "" if absent.
func defaultGearmand() string {
	if p, err := exec.LookPath("gearmand"); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, "gearmand")
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
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
	ch := &chaos{cfg: cfg, sizes: fullSizes(), out: stdout, log: stderr}
	if cfg.quick {
		ch.sizes = quickSizes()
	}
	ch.run(ctx)
	return ctx.Err()
}
