package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/worker/supervise"
	"github.com/gworkerd/gworkerd/worker/workerd"
)

// exitNotRunning is the exit status of `gworkerd status` when the daemon
// does not run (LSB's "program is not running").
const exitNotRunning = 3

func startCmd(g *globalFlags) *cobra.Command {
	var foreground bool
	cmd := &cobra.Command{
		Use:   "start",
		Short: "start the daemon (detached unless --foreground)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return start(cmd, g, foreground) },
	}
	cmd.Flags().BoolVarP(&foreground, "foreground", "f", false, "stay in the foreground (systemd, containers)")
	return cmd
}

func start(cmd *cobra.Command, g *globalFlags, foreground bool) error {
	o := workerd.StartOptions{
		Inputs: g.inputs(), Foreground: foreground, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
		Args: append([]string{os.Args[0], "start"}, config.FlagArgs(g.fs)...),
	}
	if workerd.IsMaster(foreground, os.LookupEnv) {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
		defer signal.Stop(sigs)
		o.Signals = sigs
	}
	return workerd.Start(cmd.Context(), o)
}

func stopCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "stop the daemon and wait until every process is gone",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return workerd.Stop(cmd.Context(), workerd.LoadControl(g.inputs(), cmd.ErrOrStderr()), cmd.OutOrStdout())
		},
	}
}

func restartCmd(g *globalFlags) *cobra.Command {
	var foreground bool
	cmd := &cobra.Command{
		Use:   "restart",
		Short: "stop the daemon, then start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := workerd.StopToRestart(cmd.Context(), g.inputs(), cmd.OutOrStdout()); err != nil {
				return err
			}
			return start(cmd, g, foreground)
		},
	}
	cmd.Flags().BoolVarP(&foreground, "foreground", "f", false, "start in the foreground")
	return cmd
}

func reloadCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "re-read the config and re-scan the job directories (SIGHUP)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return workerd.Reload(cmd.Context(), g.inputs(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func checkCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "validate the config and the job directories, then exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return workerd.Check(g.inputs(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func statusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show every child: function, pid, state, uptime, jobs, current job, RSS, restarts, last exit",
		Long: "Show every child: function, pid, state, uptime, jobs, current job, RSS, restarts, last exit.\n" +
			"The memory line says how RSS is measured: a cgroup's working set, or the process tree's RSS.\n" +
			"When gworkerd is not running it says so and exits with status 3.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := workerd.Status(cmd.Context(), workerd.LoadControl(g.inputs(), cmd.ErrOrStderr()), cmd.OutOrStdout(), asJSON)
			if nr := (*workerd.NotRunningError)(nil); errors.As(err, &nr) {
				fmt.Fprintln(cmd.OutOrStdout(), nr) // on stdout, as stop says it
				return &cliError{code: exitNotRunning}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func ctlCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ctl status | start F | stop F | restart F | scale F N | reload",
		Short: "send a command to the running daemon's control socket",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := workerd.CtlRequest(args)
			if err != nil {
				return &usageError{err: err}
			}
			return workerd.Ctl(cmd.Context(), workerd.LoadControl(g.inputs(), cmd.ErrOrStderr()), req, cmd.OutOrStdout())
		},
	}
}

func childCmd(_ *globalFlags) *cobra.Command {
	var function string
	cmd := &cobra.Command{
		Use:    "child --function NAME",
		Short:  "run one worker child (started by the master)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := workerd.NewChild(os.LookupEnv, function)
			if err != nil {
				return err
			}
			if os.Getenv("GOMAXPROCS") == "" {
				runtime.GOMAXPROCS(c.Procs())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return c.Run(ctx, os.Stderr, supervise.OpenReporter())
		},
	}
	cmd.Flags().StringVar(&function, "function", "", "function served")
	return cmd
}

// importCmd is `gworkerd import FORMAT FILE`.
func importCmd(_ *globalFlags) *cobra.Command {
	var (
		output string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "import FORMAT FILE",
		Short: "convert a GearmanManager or supervisord configuration to gworkerd's YAML",
		Long: `Convert the configuration of another worker manager to gworkerd's YAML.

The YAML goes to standard output, or to -o FILE (an existing file is kept
unless --force). Every key that has no gworkerd equivalent is listed on
standard error with the reason, "FILE:LINE: key: not mapped: reason", and
so are the notes on mappings that change behaviour; the YAML starts with
the same list as comments. A file that cannot be read in its format is an
error naming FILE:LINE.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("import: name the format: gearmanmanager or supervisord")
			}
			return fmt.Errorf("import: unknown format %q: want gearmanmanager or supervisord", args[0])
		},
	}
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "", "write the YAML to this file instead of standard output")
	cmd.PersistentFlags().BoolVar(&force, "force", false, "overwrite the -o file when it exists")
	for _, f := range workerd.ImportFormats() {
		convert := f.Convert
		cmd.AddCommand(&cobra.Command{
			Use: f.Name + " FILE", Short: f.Description, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				host, _ := os.Hostname()
				return workerd.Import(workerd.ImportOptions{Convert: convert, File: args[0], Output: output, Force: force,
					LookupEnv: os.LookupEnv, Hostname: host, Stdout: c.OutOrStdout(), Stderr: c.ErrOrStderr()})
			},
		})
	}
	return cmd
}
