package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	daemon "github.com/sevlyar/go-daemon"
	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// errAlreadyRunning is returned by start when the pid file is locked.
type errAlreadyRunning struct {
	pid  int
	file string
}

func (e *errAlreadyRunning) Error() string {
	return fmt.Sprintf("gworkerd already runs with pid %d (pid file %s)", e.pid, e.file)
}

func (e *errAlreadyRunning) namesProgram() {}

// notRunning says that the daemon does not run, and how that was seen.
func notRunning(pidFile string) string {
	if _, err := os.Stat(pidFile); err != nil {
		return fmt.Sprintf("gworkerd is not running (no pid file at %s)", pidFile)
	}
	return fmt.Sprintf("gworkerd is not running (pid file %s is not locked)", pidFile)
}

// loadControl reads what stop, status and ctl need: with a config that
// does not load they still reach the daemon, after a warning.
func loadControl(cmd *cobra.Command, g *globalFlags) (config.WorkerControl, error) {
	c, loadErr := config.LoadWorkerControl(g.inputs())
	if loadErr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "gworkerd: warning: %v\ngworkerd: warning: using pid file %s and control socket %s\n", loadErr, c.PidFile, c.ControlSocket)
	}
	return c, nil
}

func loadChecked(in config.Inputs) (*config.Worker, resolved, error) {
	cfg, err := config.LoadWorker(in)
	if err != nil {
		return nil, resolved{}, err
	}
	res, err := resolve(cfg)
	if err != nil {
		return nil, resolved{}, err
	}
	return cfg, res, nil
}

func startCmd(g *globalFlags) *cobra.Command {
	var foreground bool
	cmd := &cobra.Command{
		Use:   "start",
		Short: "start the daemon (detached unless --foreground)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return start(cmd, g, foreground)
		},
	}
	cmd.Flags().BoolVarP(&foreground, "foreground", "f", false, "stay in the foreground (systemd, containers)")
	return cmd
}

func start(cmd *cobra.Command, g *globalFlags, foreground bool) error {
	in := g.inputs()
	cfg, res, err := loadChecked(in)
	if err != nil {
		return err
	}
	if !foreground && !daemon.WasReborn() {
		// The daemon logs them; the operator who starts it sees them.
		for _, w := range skippedWarnings(res.skipped) {
			fmt.Fprintln(cmd.ErrOrStderr(), "gworkerd:", w)
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.PidFile), 0o755); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	lf := &logFile{path: cfg.LogFile}
	if foreground {
		lock, err := lockPidFile(cfg.PidFile)
		if err != nil {
			return err
		}
		defer lock.Remove()
		if err := lf.open(); err != nil {
			return err
		}
		return runMaster(in, cfg, lf, newLogger())
	}
	logName := cfg.LogFile
	if logName == "" {
		logName = os.DevNull
	} else if err := os.MkdirAll(filepath.Dir(logName), 0o755); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	dctx := &daemon.Context{
		PidFileName: cfg.PidFile,
		PidFilePerm: 0o644,
		LogFileName: logName,
		LogFilePerm: 0o640,
		// The daemon starts where this process works, so that it
		// resolves relative flag and environment paths as this process
		// did, and works from "/" once it has its config.
		Umask: 0o027,
		Args:  append([]string{os.Args[0], "start"}, config.FlagArgs(g.fs)...),
	}
	child, err := dctx.Reborn()
	if err != nil {
		return alreadyRunning(cfg.PidFile, err)
	}
	if child != nil {
		// The parent: wait until the daemon answers on its socket.
		if err := waitStarted(cmd.Context(), cfg, child); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "gworkerd started (pid %d)\n", child.Pid)
		return nil
	}
	defer func() { _ = dctx.Release() }()
	if err := os.Chdir("/"); err != nil {
		return err
	}
	return runMaster(in, cfg, lf, newLogger())
}

// lockPidFile locks and writes the pid file of a foreground daemon.
// (daemon.CreatePidFile is not used: it removes the file of the running
// daemon when the lock fails.)
func lockPidFile(name string) (*daemon.LockFile, error) {
	lock, err := daemon.OpenLockFile(name, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file %s: %w", name, err)
	}
	if err := lock.Lock(); err != nil {
		lock.Close()
		return nil, alreadyRunning(name, err)
	}
	if err := lock.WritePid(); err != nil {
		lock.Remove()
		return nil, fmt.Errorf("pid file %s: %w", name, err)
	}
	return lock, nil
}

func alreadyRunning(pidFile string, err error) error {
	if errors.Is(err, daemon.ErrWouldBlock) {
		pid, _ := daemon.ReadPidFile(pidFile)
		return &errAlreadyRunning{pid: pid, file: pidFile}
	}
	return fmt.Errorf("pid file %s: %w", pidFile, err)
}

func waitStarted(ctx context.Context, cfg *config.Worker, child *os.Process) error {
	if ctx == nil {
		ctx = context.Background()
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := supervise.Call(cctx, cfg.ControlSocket, supervise.Request{Cmd: "status"})
		cancel()
		if err == nil {
			return nil
		}
		if !processAlive(child.Pid) {
			return fmt.Errorf("gworkerd exited during start; see the log (%s)", orStderr(cfg.LogFile))
		}
		time.Sleep(50 * time.Millisecond) // polling a process we just detached
	}
	return fmt.Errorf("gworkerd (pid %d) did not open its control socket %s within 15s", child.Pid, cfg.ControlSocket)
}

func orStderr(s string) string {
	if s == "" {
		return "no log_file configured"
	}
	return s
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func stopCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "stop the daemon and wait until every process is gone",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadControl(cmd, g)
			if err != nil {
				return err
			}
			return stop(cmd, c)
		},
	}
}

func stop(cmd *cobra.Command, cfg config.WorkerControl) error {
	pid, err := masterPid(cfg.PidFile, cfg.ControlSocket)
	if err != nil {
		return err
	}
	if pid == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), notRunning(cfg.PidFile))
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	// The master exits after its last child; then its lock is released.
	deadline := time.Now().Add(cfg.StopTimeout + 15*time.Second)
	for {
		p, err := masterPid(cfg.PidFile, cfg.ControlSocket)
		if err == nil && p == 0 && !processAlive(pid) {
			break
		}
		if time.Now().After(deadline) {
			// Only the process that still holds the lock: the pid may
			// have been reused meanwhile.
			if p == pid {
				_ = syscall.Kill(pid, syscall.SIGKILL) // the children die with it
				return fmt.Errorf("gworkerd (pid %d) did not stop within stop_timeout+15s: killed", pid)
			}
			return fmt.Errorf("gworkerd (pid %d) did not stop within stop_timeout+15s", pid)
		}
		time.Sleep(50 * time.Millisecond) // polling a process that is not ours
	}
	fmt.Fprintf(cmd.OutOrStdout(), "gworkerd stopped (pid %d)\n", pid)
	return nil
}

func restartCmd(g *globalFlags) *cobra.Command {
	var foreground bool
	cmd := &cobra.Command{
		Use:   "restart",
		Short: "stop the daemon, then start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadChecked(g.inputs())
			if err != nil {
				return err
			}
			c := config.WorkerControl{PidFile: cfg.PidFile, ControlSocket: cfg.ControlSocket, StopTimeout: cfg.StopTimeout}
			if err := stop(cmd, c); err != nil {
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
			cfg, err := config.LoadWorker(g.inputs())
			if err != nil {
				return err
			}
			pid, err := masterPid(cfg.PidFile, cfg.ControlSocket)
			if err != nil {
				return err
			}
			if pid == 0 {
				return &cliError{msg: notRunning(cfg.PidFile), code: 1}
			}
			// Through the socket the answer says whether the new config
			// was accepted; SIGHUP when the socket does not answer.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp, err := supervise.Call(ctx, cfg.ControlSocket, supervise.Request{Cmd: "reload"})
			if err != nil {
				var re *supervise.RemoteError
				if errors.As(err, &re) { // the daemon's answer: the config was refused
					return fmt.Errorf("%s: %s", re.Cmd, re.Msg)
				}
				var ne interface{ Timeout() bool }
				if strings.Contains(err.Error(), "control socket") && !errors.As(err, &ne) {
					if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "sent SIGHUP to gworkerd (pid %d)\n", pid)
					return nil
				}
				return err
			}
			for _, w := range resp.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "gworkerd:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gworkerd reloaded (pid %d)\n", pid)
			return nil
		},
	}
}

func checkCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "validate the config and the job directories, then exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadWorker(g.inputs())
			if err != nil {
				return err
			}
			res, err := resolve(cfg)
			if err != nil {
				return err
			}
			for _, w := range skippedWarnings(res.skipped) {
				fmt.Fprintln(cmd.ErrOrStderr(), "gworkerd:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK, %d functions\n", cfg.Path, len(res.specs))
			for _, s := range res.specs {
				n := strconv.Itoa(s.Count)
				if s.Max > s.Min {
					n = fmt.Sprintf("%d..%d", s.Min, s.Max)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "  %-24s children %s\n", s.Name, n)
			}
			return nil
		},
	}
}
