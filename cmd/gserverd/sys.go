package main

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"syscall"

	daemon "github.com/sevlyar/go-daemon"

	"github.com/gworkerd/gworkerd/config"
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

// credentials is a user to switch to.
type credentials struct {
	name     string
	uid, gid int
	groups   []int
}

// lookupUser checks -u/--user before anything is bound: the user must
// exist and we must be root.
func lookupUser(name string, euid int, src config.Source) (*credentials, error) {
	if euid != 0 {
		return nil, fmt.Errorf("%s: switching to user %q needs root (running as uid %d)", src, name, euid)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	c := &credentials{name: name}
	if c.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("%s: user %q has a non-numeric uid %q", src, name, u.Uid)
	}
	if c.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("%s: user %q has a non-numeric gid %q", src, name, u.Gid)
	}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			c.groups = append(c.groups, n)
		}
	}
	if len(c.groups) == 0 {
		c.groups = []int{c.gid}
	}
	return c, nil
}

// switchTo drops root for c: groups, gid, then uid (Go applies them to
// every thread).
func switchTo(c *credentials) error {
	if err := syscall.Setgroups(c.groups); err != nil {
		return fmt.Errorf("switch to user %s: setgroups: %w", c.name, err)
	}
	if err := syscall.Setgid(c.gid); err != nil {
		return fmt.Errorf("switch to user %s: setgid: %w", c.name, err)
	}
	if err := syscall.Setuid(c.uid); err != nil {
		return fmt.Errorf("switch to user %s: setuid: %w", c.name, err)
	}
	return nil
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
