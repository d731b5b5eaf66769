package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"

	daemon "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"
)

// inheritNothing marks every descriptor above standard error
// close-on-exec, so that no program this process starts inherits one by
// accident: go-daemon leaves the daemon the pid file (read-write, fd 4)
// and /dev/null (fd 3) without the flag, and a child its report pipe.
// A descriptor a program must get is passed through exec.Cmd's
// ExtraFiles, which clears the flag on the copy: children get fds 0-2
// and the report pipe, job executables 0-2 and the progress fd 3,
// resident handlers 0-4, commands 0-2.
//
// Call it before any process is started.
func inheritNothing() error {
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	// Kernels before 5.11: one descriptor at a time.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("close-on-exec: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		// The descriptor of the directory read above is gone: EBADF.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("close-on-exec: fd %d: %w", fd, err)
		}
	}
	return nil
}

// errNotMaster: the pid file is locked, but no process that can be
// shown to hold the lock was found; nothing is signalled.
type errNotMaster struct {
	file    string
	textPid int
}

func (e *errNotMaster) Error() string {
	return fmt.Sprintf("pid file %s is locked, but neither the process on the control socket nor pid %d (the file's text) holds its lock: not signalling anything", e.file, e.textPid)
}

// masterPid returns the pid of the running master, or 0 when the pid
// file is missing or not locked (a stale file from a crash).
//
// The file's text is not trusted (any process that could write the
// file could name another process in it): the pid is the one the kernel
// gives for the control socket's listener (SO_PEERCRED), else the
// file's text, and is only returned when that process holds the pid
// file's lock (/proc/PID/fdinfo lists the lock on its descriptor).
func masterPid(pidFile, controlSocket string) (int, error) {
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
	if pid := socketPeerPid(controlSocket); pid > 0 && holdsLock(pid, fi) {
		return pid, nil
	}
	textPid, _ := daemon.ReadPidFile(pidFile)
	if textPid > 0 && holdsLock(textPid, fi) {
		return textPid, nil
	}
	return 0, &errNotMaster{file: pidFile, textPid: textPid}
}

// socketPeerPid returns the pid of the process listening on the unix
// socket at path, as the kernel records it, or 0.
func socketPeerPid(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
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
