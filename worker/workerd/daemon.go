package workerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// startTimeout bounds how long a detached start waits for the daemon to
// report that it serves.
const startTimeout = 15 * time.Second

// StartOptions are the inputs of Start.
type StartOptions struct {
	// Inputs are what the config is loaded from; a reload reads them
	// again.
	Inputs config.Inputs
	// Foreground keeps the master in this process (systemd, containers);
	// otherwise Start re-executes Args as a detached daemon and waits
	// for its report.
	Foreground bool
	// Args is the daemon's command line for a detached start.
	Args []string
	// Signals are the master's signals (SIGTERM and SIGINT stop, SIGHUP
	// reloads, SIGUSR1 reopens the log file); main subscribes them. Only
	// the process that runs the master reads them.
	Signals <-chan os.Signal
	// Stdout and Stderr are the operator's: what start says, and the
	// master's log when log_file is "".
	Stdout, Stderr io.Writer
}

// IsMaster reports whether Start, called with foreground and this
// process's environment, runs the master in this process (foreground,
// or the re-executed daemon) rather than starting a daemon: only then
// does main need to subscribe the master's signals.
func IsMaster(foreground bool, lookupEnv func(string) (string, bool)) bool {
	return foreground || sysproc.IsChild(lookupEnv)
}

// Start starts the daemon behind its locked pid file: detached (the
// command returns once the daemon serves, or with the daemon's error),
// or in the foreground until a stop signal. A pid file held by a
// running daemon is a *sysproc.RunningError.
func Start(ctx context.Context, o StartOptions) error {
	cfg, res, err := loadChecked(o.Inputs)
	if err != nil {
		return err
	}
	isChild := sysproc.IsChild(o.Inputs.LookupEnv)
	if !o.Foreground && !isChild {
		// The daemon logs them; the operator who starts it sees them.
		for _, w := range skippedWarnings(res.skipped) {
			fmt.Fprintln(o.Stderr, "gworkerd:", w)
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.PidFile), 0o755); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	m := &master{in: o.Inputs, cfg: cfg, signals: o.Signals}
	if o.Foreground {
		pf, err := sysproc.LockPidFile(cfg.PidFile)
		if err != nil {
			return err
		}
		defer pf.Remove()
		return m.start(ctx, o.Stderr)
	}
	d := &sysproc.Daemon{
		Name: "gworkerd", PidFile: cfg.PidFile, Output: cfg.LogFile, Args: o.Args,
		// The daemon starts where this process works, so that it
		// resolves relative flag and environment paths as this process
		// did, and works from "/" once it has its config.
		Umask: 0o027,
	}
	if isChild {
		c, err := d.Child(o.Inputs.LookupEnv)
		if err != nil {
			return err
		}
		defer func() { _ = c.Release() }()
		m.ready = c.Ready
		if err := os.Chdir("/"); err != nil {
			c.Ready(err)
			return err
		}
		err = m.start(ctx, o.Stderr)
		c.Ready(err) // a start that failed says why; after Ready(nil) nothing
		return err
	}
	if cfg.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogFile), 0o755); err != nil {
			return fmt.Errorf("log file: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	pid, err := d.Start(sctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("gworkerd (pid %d) did not report its start within %v; see the log (%s)", pid, startTimeout, orStderr(cfg.LogFile))
		}
		var exited *sysproc.ExitedError
		if errors.As(err, &exited) {
			// It failed before it could report (a config it could not
			// load, a panic): its log says why.
			return fmt.Errorf("%w; see the log (%s)", err, orStderr(cfg.LogFile))
		}
		return err
	}
	fmt.Fprintf(o.Stdout, "gworkerd started (pid %d)\n", pid)
	return nil
}

// start opens the log and runs the master.
func (m *master) start(ctx context.Context, stderr io.Writer) error {
	lf, err := openLog(m.cfg.LogFile, stderr)
	if err != nil {
		return err
	}
	defer lf.Close()
	m.logFile, m.log = lf, newLogger(lf)
	return m.run(ctx)
}

func orStderr(s string) string {
	if s == "" {
		return "no log_file configured"
	}
	return s
}

// StopToRestart is Stop with the settings of the config a restart
// starts with: a config that would not start is refused before the
// running daemon is stopped.
func StopToRestart(ctx context.Context, in config.Inputs, stdout io.Writer) error {
	cfg, _, err := loadChecked(in)
	if err != nil {
		return err
	}
	return Stop(ctx, config.WorkerControl{PidFile: cfg.PidFile, ControlSocket: cfg.ControlSocket, StopTimeout: cfg.StopTimeout}, stdout)
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

func notRunning(pidFile string) *NotRunningError {
	_, err := os.Stat(pidFile)
	return &NotRunningError{PidFile: pidFile, NoFile: err != nil}
}

// LoadControl reads what stop, status and ctl need: with a config that
// does not load they still reach the daemon, after a warning on stderr.
func LoadControl(in config.Inputs, stderr io.Writer) config.WorkerControl {
	c, loadErr := config.LoadWorkerControl(in)
	if loadErr != nil {
		fmt.Fprintf(stderr, "gworkerd: warning: %v\ngworkerd: warning: using pid file %s and control socket %s\n", loadErr, c.PidFile, c.ControlSocket)
	}
	return c
}

// Stop signals the master that holds the pid file's lock and waits until
// it and its lock are gone (its children die before it), killing it
// after stop_timeout+15s. With nothing running it says so on stdout.
func Stop(ctx context.Context, c config.WorkerControl, stdout io.Writer) error {
	pid, err := sysproc.LockHolder(ctx, c.PidFile, c.ControlSocket)
	if err != nil {
		return err
	}
	if pid == 0 {
		fmt.Fprintln(stdout, notRunning(c.PidFile))
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	// The master exits after its last child; then its lock is released.
	deadline := time.NewTimer(c.StopTimeout + 15*time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond) // polling a process that is not ours
	defer tick.Stop()
	for {
		p, err := sysproc.LockHolder(ctx, c.PidFile, c.ControlSocket)
		if err == nil && p == 0 && !sysproc.Alive(pid) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gworkerd (pid %d) stop: %w", pid, ctx.Err())
		case <-tick.C:
			continue
		case <-deadline.C:
		}
		// Only the process that still holds the lock: the pid may have
		// been reused meanwhile.
		if p == pid {
			_ = syscall.Kill(pid, syscall.SIGKILL) // the children die with it
			return fmt.Errorf("gworkerd (pid %d) did not stop within stop_timeout+15s: killed", pid)
		}
		return fmt.Errorf("gworkerd (pid %d) did not stop within stop_timeout+15s", pid)
	}
	fmt.Fprintf(stdout, "gworkerd stopped (pid %d)\n", pid)
	return nil
}

// Reload makes the running daemon re-read its config and re-scan the job
// directories: through the control socket, whose answer says whether
// the new config was accepted, or by SIGHUP when the socket does not
// answer. The daemon's warnings go to stderr.
func Reload(ctx context.Context, in config.Inputs, stdout, stderr io.Writer) error {
	cfg, err := config.LoadWorker(in)
	if err != nil {
		return err
	}
	pid, err := sysproc.LockHolder(ctx, cfg.PidFile, cfg.ControlSocket)
	if err != nil {
		return err
	}
	if pid == 0 {
		return notRunning(cfg.PidFile)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := supervise.Call(ctx, cfg.ControlSocket, supervise.Request{Cmd: "reload"})
	if err != nil {
		var re *supervise.RemoteError
		if errors.As(err, &re) { // the daemon's answer: the config was refused
			return fmt.Errorf("%s: %s", re.Cmd, re.Msg)
		}
		var se *supervise.SocketError
		var ne interface{ Timeout() bool }
		if errors.As(err, &se) && !errors.As(err, &ne) {
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "sent SIGHUP to gworkerd (pid %d)\n", pid)
			return nil
		}
		return err
	}
	for _, w := range resp.Warnings {
		fmt.Fprintln(stderr, "gworkerd:", w)
	}
	fmt.Fprintf(stdout, "gworkerd reloaded (pid %d)\n", pid)
	return nil
}

// Check validates the config and the job directories: the skipped
// handler files go to stderr, the functions served to stdout.
func Check(in config.Inputs, stdout, stderr io.Writer) error {
	cfg, res, err := loadChecked(in)
	if err != nil {
		return err
	}
	for _, w := range skippedWarnings(res.skipped) {
		fmt.Fprintln(stderr, "gworkerd:", w)
	}
	fmt.Fprintf(stdout, "%s: OK, %d functions\n", cfg.Path, len(res.specs))
	for _, s := range res.specs {
		n := strconv.Itoa(s.Count)
		if s.Max > s.Min {
			n = fmt.Sprintf("%d..%d", s.Min, s.Max)
		}
		fmt.Fprintf(stdout, "  %-24s children %s\n", s.Name, n)
	}
	return nil
}

// Control sends req to the running daemon; with nothing running the
// error is a *NotRunningError.
func Control(ctx context.Context, c config.WorkerControl, req supervise.Request) (supervise.Response, error) {
	pid, err := sysproc.LockHolder(ctx, c.PidFile, c.ControlSocket)
	if err != nil {
		return supervise.Response{}, err
	}
	if pid == 0 {
		return supervise.Response{}, notRunning(c.PidFile)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := supervise.Call(ctx, c.ControlSocket, req)
	var re *supervise.RemoteError
	if errors.As(err, &re) {
		return resp, fmt.Errorf("%s: %s", re.Cmd, re.Msg)
	}
	return resp, err
}

// Status writes the running daemon's status to w: a table (PrintStatus),
// or JSON. With nothing running the error is a *NotRunningError.
func Status(ctx context.Context, c config.WorkerControl, w io.Writer, asJSON bool) error {
	resp, err := Control(ctx, c, supervise.Request{Cmd: "status"})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	PrintStatus(w, resp)
	return nil
}

// Ctl sends req (see CtlRequest) to the running daemon and writes the
// answer to w: the status table, or "ok".
func Ctl(ctx context.Context, c config.WorkerControl, req supervise.Request, w io.Writer) error {
	resp, err := Control(ctx, c, req)
	if err != nil {
		return err
	}
	if req.Cmd == "status" {
		PrintStatus(w, resp)
		return nil
	}
	fmt.Fprintln(w, "ok")
	return nil
}
