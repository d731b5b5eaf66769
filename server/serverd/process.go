package serverd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/sysuser"
)

// daemon is the detached start of cfg (-d); the starter and the
// re-executed daemon build the same one.
func daemon(cfg *config.Server) *sysproc.Daemon {
	return &sysproc.Daemon{Name: "gserverd", PidFile: cfg.PidFile, Output: daemonOutput(cfg.LogFile)}
}

// daemonOutput is what the daemon's standard output and error are: the
// log file, the standard error of `gserverd -d` for "stderr", /dev/null
// for "none".
func daemonOutput(logFile string) string {
	switch logFile {
	case "stderr":
		return "/dev/stderr" // go-daemon passes its own stderr on
	case "none":
		return ""
	}
	if abs, err := filepath.Abs(logFile); err == nil {
		return abs
	}
	return logFile
}

// StartDaemon runs in `gserverd -d`: it checks -u/--user, starts the
// daemon (this program re-executed with the same arguments, which then
// calls Run) and waits until the daemon reports that it serves, or
// fails, or exits. The daemon's error is returned as its own.
func StartDaemon(ctx context.Context, cfg *config.Server) error {
	if cfg.User != "" {
		if _, err := lookupUser(cfg.User, os.Geteuid(), cfg.Source("user")); err != nil {
			return err
		}
	}
	_, err := daemon(cfg).Start(ctx)
	return pidError(err)
}

// lockPidFile locks the pid file of a foreground gserverd. As in
// gearmand, a pid file in a missing directory is an error.
func lockPidFile(path string) (*sysproc.PidFile, error) {
	pf, err := sysproc.LockPidFile(path)
	return pf, pidError(err)
}

// pidError adds gserverd's hint to a pid file locked by a running
// process.
func pidError(err error) error {
	var re *sysproc.RunningError
	if errors.As(err, &re) {
		return fmt.Errorf("%w (is gserverd already running?)", err)
	}
	return err
}

// lookupUser checks -u/--user before anything is bound: the user must
// exist and we must be root.
func lookupUser(name string, euid int, src config.Source) (*sysuser.User, error) {
	if euid != 0 {
		return nil, fmt.Errorf("%s: switching to user %q needs root (running as uid %d)", src, name, euid)
	}
	u, err := sysuser.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &u, nil
}

// setFileLimit sets the open-file limit to n (-f/--file-descriptors).
func setFileLimit(n int, src config.Source) error {
	if err := sysproc.SetFileLimit(n); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// maxConnections resolves --max-connections: -1 derives it from the
// open-file limit (less config.ReservedFiles, at most
// config.DefaultMaxConnections, at least 1/2 of the limit); others are
// kept (0: unlimited).
func maxConnections(n int) int {
	if n >= 0 {
		return n
	}
	lim, err := sysproc.FileLimit()
	if err != nil {
		return config.DefaultMaxConnections
	}
	cur := int(min(lim, uint64(config.DefaultMaxConnections)+config.ReservedFiles))
	return max(cur-config.ReservedFiles, cur/2, 1)
}
