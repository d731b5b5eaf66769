// Package sysproc is the process plumbing gserverd and gworkerd share:
// the locked pid file and who holds it, the detached start with a
// readiness report, whether a process is alive, the open-file limit,
// descriptors not inherited by children, and a log file reopened after a
// rotation. User and group switching is in internal/sysuser.
package sysproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	daemon "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"
)

// PidFile is a pid file this process has locked and written its pid to.
// The lock is held until Remove or the process's exit, so a second
// daemon on the same file fails at start (*RunningError).
type PidFile struct {
	lf *daemon.LockFile
}

// LockPidFile creates path, locks it and writes our pid. Its directory
// must exist (gearmand refuses a pid file in a missing directory; a caller
// that wants it made makes it). If another process holds the lock, the
// error is a *RunningError naming it. (daemon.CreatePidFile is not used:
// it removes the file of the running daemon when the lock fails.)
func LockPidFile(path string) (*PidFile, error) {
	lf, err := daemon.OpenLockFile(path, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if err := lf.Lock(); err != nil {
		lf.Close() // never Remove: the file belongs to the running process
		return nil, lockError(path, err)
	}
	if err := lf.WritePid(); err != nil {
		lf.Remove()
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	return &PidFile{lf: lf}, nil
}

// Remove deletes the pid file and releases the lock. A nil PidFile does
// nothing.
func (p *PidFile) Remove() error {
	if p == nil {
		return nil
	}
	return p.lf.Remove()
}

// lockError explains a failed lock of the pid file at path.
func lockError(path string, err error) error {
	if !errors.Is(err, daemon.ErrWouldBlock) {
		return fmt.Errorf("pid file %s: lock: %w", path, err)
	}
	pid, _ := daemon.ReadPidFile(path)
	return &RunningError{File: path, Pid: max(pid, 0)}
}

// LockHolder returns the pid of the process that holds the lock of
// pidFile, or 0 when the file is missing or not locked (a stale file
// left by a crash).
//
// The file's text is not trusted (any process that could write the file
// could name another process in it): the pid is the one the kernel gives
// for the listener of controlSocket (SO_PEERCRED; "" for none), else the
// file's text, and is only returned when that process holds the file's
// lock (/proc/PID/fdinfo lists the lock on its descriptor). Otherwise
// the error is a *NotHolderError.
func LockHolder(ctx context.Context, pidFile, controlSocket string) (int, error) {
	f, err := os.Open(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", pidFile, err)
	}
	if controlSocket != "" {
		if pid := socketPeerPid(ctx, controlSocket); pid > 0 && holdsLock(pid, fi) {
			return pid, nil
		}
	}
	textPid, _ := daemon.ReadPidFile(pidFile)
	if textPid > 0 && holdsLock(textPid, fi) {
		return textPid, nil
	}
	return 0, &NotHolderError{File: pidFile, TextPid: textPid}
}

// socketPeerPid returns the pid of the process listening on the unix
// socket at path, as the kernel records it, or 0.
func socketPeerPid(ctx context.Context, path string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return 0
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0
	}
	return int(cred.Pid)
}

// holdsLock reports whether process pid has the file fi open with a lock
// on that descriptor.
func holdsLock(pid int, fi os.FileInfo) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return false
	}
	for _, e := range ents {
		st, err := os.Stat(dir + "/fd/" + e.Name())
		if err != nil || !os.SameFile(st, fi) {
			continue
		}
		info, err := os.ReadFile(dir + "/fdinfo/" + e.Name())
		if err == nil && bytes.Contains(info, []byte("\nlock:")) {
			return true
		}
	}
	return false
}

// Alive reports whether pid runs and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
