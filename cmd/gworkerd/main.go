// Command gworkerd is the supervised Gearman worker daemon: a master
// process that runs one child process per worker slot of every function
// (built-in handlers, executables job_<name> found in the job
// directories, resident PHP and Python handlers, existing worker programs
// given by command), restarts them with backoff, recycles them between
// jobs, scales them by backlog and reloads them one at a time.
//
//	gworkerd start [--foreground]   start the daemon (behind a locked pid file)
//	gworkerd stop                   stop it and wait until every process is gone
//	gworkerd restart                stop, then start
//	gworkerd reload                 re-read the config, re-scan the job directories
//	gworkerd status [--json]        one line per child
//	gworkerd check                  validate the config and exit
//	gworkerd ctl CMD [FUNCTION [N]] start, stop, restart or scale one function
//	gworkerd import gearmanmanager|supervisord FILE
//	                                their configuration as gworkerd YAML
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/worker/workerd"
)

func main() {
	// Before anything starts a process: no program gworkerd starts
	// inherits a descriptor it was not given on purpose.
	if err := sysproc.InheritNothing(); err != nil {
		fmt.Fprintln(os.Stderr, "gworkerd:", err)
		os.Exit(1)
	}
	os.Exit(run(newRoot(), os.Args[1:], os.Stderr))
}

// Exit statuses (also in the root command's help).
const (
	exitFailure = 1
	exitUsage   = 2
)

// cliError is an error printed as it is (its message names the
// program; an empty one is not printed), with its exit status.
type cliError struct {
	msg  string
	code int
}

func (e *cliError) Error() string { return e.msg }

// usageError is a command line gworkerd does not understand: an unknown
// command or flag, or wrong arguments. It exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// run executes the command line args and returns the exit status,
// printing the error, if any, to stderr.
func run(root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	// An unknown command: cobra's error carries its suggestions on
	// lines of their own.
	if _, _, ferr := root.Find(args); ferr != nil {
		err = &usageError{err: ferr}
	}
	// These messages name the program themselves.
	var (
		ce *cliError
		nr *workerd.NotRunningError
		ar *sysproc.RunningError
	)
	switch {
	case err.Error() == "": // said already
	case errors.As(err, &ar):
		fmt.Fprintf(stderr, "gworkerd already runs with pid %d (pid file %s)\n", ar.Pid, ar.File)
	case errors.As(err, &ce), errors.As(err, &nr):
		fmt.Fprintln(stderr, strings.TrimRight(err.Error(), "\n"))
	default:
		fmt.Fprintln(stderr, "gworkerd:", strings.TrimRight(err.Error(), "\n"))
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'gworkerd --help' for usage.")
		return exitUsage
	}
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitFailure
}

// globalFlags are the configuration flags (config.WorkerFlags), shared
// by every command, and the working directory their relative paths are
// from.
type globalFlags struct {
	fs      *pflag.FlagSet
	workDir string
}

// inputs are what config.LoadWorker reads besides the file.
func (g *globalFlags) inputs() config.Inputs {
	return config.Inputs{Flags: g.fs, LookupEnv: os.LookupEnv, WorkDir: g.workDir}
}

func newRoot() *cobra.Command {
	wd, _ := os.Getwd() // "" if gone: relative paths then fail to resolve, naming them
	g := &globalFlags{workDir: wd}
	root := &cobra.Command{
		Use:   "gworkerd",
		Short: "supervised Gearman worker daemon",
		Long: "gworkerd: supervised Gearman worker daemon.\n\n" +
			"Every setting outside the defaults and functions sections is also a flag\n" +
			"(--pid-file) and an environment variable (GWORKERD_PID_FILE); a flag wins\n" +
			"over the variable, which wins over the file. Relative paths in the config\n" +
			"file are relative to the file's directory, others to the working directory.\n" +
			"Exit status: 0 success, 1 failure, 2 usage error (unknown command or flag,\n" +
			"wrong arguments), 3 from status when gworkerd is not running.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	root.SetVersionTemplate("gworkerd {{.Version}}\n")
	root.Flags().BoolP("version", "V", false, "print the version and exit")
	config.WorkerFlags(root.PersistentFlags())
	g.fs = root.PersistentFlags()
	root.AddCommand(
		startCmd(g), stopCmd(g), restartCmd(g), reloadCmd(g), statusCmd(g), checkCmd(g), ctlCmd(g), childCmd(g), importCmd(g),
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return &usageError{err: fmt.Errorf("%s: %w", cmd.Name(), err)}
				}
				return nil
			}
		}
	}
	return root
}
