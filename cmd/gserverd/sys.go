package main

import (
	"errors"
	"fmt"
	"syscall"

	daemon "github.com/sevlyar/go-daemon"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/sysuser"
)

// maxConnections resolves --max-connections: -1 derives it from the
// open-file limit (less config.ReservedFiles, at most
// config.DefaultMaxConnections, at least 1/2 of the limit); others are
// kept (0: unlimited).
func maxConnections(n int) int {
	if n >= 0 {
		return n
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return config.DefaultMaxConnections
	}
	cur := int(min(lim.Cur, uint64(config.DefaultMaxConnections)+config.ReservedFiles))
	return max(cur-config.ReservedFiles, cur/2, 1)
}

// setFileLimit sets RLIMIT_NOFILE to n (-f/--file-descriptors), raising
// the hard limit too when needed (which needs root).
func setFileLimit(n int, src config.Source) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("%s: getrlimit: %w", src, err)
	}
	want := lim
	want.Cur = uint64(n)
	if want.Cur > want.Max {
		want.Max = want.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("%s: cannot set the open-file limit to %d (hard limit %d): %w", src, n, lim.Max, err)
	}
	return nil
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

// pidFile is a locked pid file of a foreground gserverd.
type pidFile struct{ lf *daemon.LockFile }

// createPidFile creates and locks path and writes our pid. If another
// process holds the lock, the error names its pid.
func createPidFile(path string) (*pidFile, error) {
	lf, err := daemon.OpenLockFile(path, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if err := lf.Lock(); err != nil {
		lf.Close() // never Remove: the file belongs to the running process
		return nil, pidLockedError(path, err)
	}
	if err := lf.WritePid(); err != nil {
		lf.Remove()
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	return &pidFile{lf: lf}, nil
}

// pidLockedError explains a failed lock of the pid file.
func pidLockedError(path string, err error) error {
	if !errors.Is(err, daemon.ErrWouldBlock) {
		return fmt.Errorf("pid file %s: lock: %w", path, err)
	}
	if pid, rerr := daemon.ReadPidFile(path); rerr == nil && pid > 0 {
		return fmt.Errorf("pid file %s is locked by running process %d (is gserverd already running?)", path, pid)
	}
	return fmt.Errorf("pid file %s is locked by another process (is gserverd already running?)", path)
}

// Remove deletes the pid file and releases the lock.
func (p *pidFile) Remove() error {
	if p == nil {
		return nil
	}
	return p.lf.Remove()
}
