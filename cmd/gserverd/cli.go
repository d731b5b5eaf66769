package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/config"
)

const usageHead = `Usage: gserverd [options]
       gserverd queue export|import [options]   (see gserverd queue --help)

gserverd is a Gearman job server, a drop-in for gearmand: the same protocol,
admin commands and command line. It runs in the foreground unless -d is given.

Options:
`

const usageTail = `
Every option can also be set in the --config-file, in gearmand's format (its
options as on the command line, --job-retries=3 -vvv, and key=value lines,
# comments) or in YAML (the keys are the long option names: job_retries: 3,
listen: [127.0.0.1, "::1"]), and in the environment as GSERVERD_<KEY>
(GSERVERD_JOB_RETRIES=3, GSERVERD_LISTEN=a,b). A flag wins over the
environment, which wins over the file. /etc/gearmand.conf is read when it
exists and no --config-file is given. A key the file does not know is an
error naming its line; relative paths in the file are relative to its
directory.

-v raises --verbose one level each (-vvv: INFO). gearmand options marked
"accepted and ignored" print one warning line each when given.
GEARMAND_PORT sets the port when neither -p nor GSERVERD_PORT is given.

Signals: TERM or INT stop (running jobs get a short grace period), USR1 stops
gracefully (stop accepting, wait for the running jobs, exit), HUP reopens the
log file.

Exit status: 0 after a clean stop, 1 when the server fails or for a bad
command line or configuration (as gearmand).
`

// command is the parsed command line.
type command struct {
	cfg       *config.Server
	help      bool
	version   bool
	checkArgs bool
	fs        *pflag.FlagSet
}

// newFlagSet returns gserverd's flags: config.ServerFlags plus the
// actions -h, -V and --check-args.
func newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("gserverd", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.BoolP("help", "h", false, "print this help and exit")
	fs.BoolP("version", "V", false, "print the version and exit")
	fs.Bool("check-args", false, "check the options and the config file, then exit (status 0 if valid)")
	config.ServerFlags(fs)
	return fs
}

// parseCommandLine parses args and loads the configuration from the
// flags, the environment and the config file. Its errors are a bad
// command line or configuration (exit status 1, as gearmand).
func parseCommandLine(args []string, lookupEnv func(string) (string, bool), uid int) (*command, error) {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w (see gserverd --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see gserverd --help)", fs.Arg(0))
	}
	cmd := &command{fs: fs}
	cmd.help, _ = fs.GetBool("help")
	cmd.version, _ = fs.GetBool("version")
	cmd.checkArgs, _ = fs.GetBool("check-args")
	if cmd.help || cmd.version {
		return cmd, nil
	}
	cfg, err := config.LoadServer(fs, lookupEnv, uid)
	if err != nil {
		return nil, err
	}
	cmd.cfg = cfg
	return cmd, nil
}

func writeUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprint(w, usageHead)
	fmt.Fprint(w, fs.FlagUsagesWrapped(100))
	fmt.Fprint(w, usageTail)
}
