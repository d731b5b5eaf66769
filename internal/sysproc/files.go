package sysproc

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// FileLimit returns the soft limit of open files (RLIMIT_NOFILE).
func FileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	return lim.Cur, nil
}

// SetFileLimit sets the soft limit of open files to n, raising the hard
// limit too when needed (which needs root).
func SetFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	want := lim
	want.Cur = uint64(n)
	if want.Cur > want.Max {
		want.Max = want.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("cannot set the open-file limit to %d (hard limit %d): %w", n, lim.Max, err)
	}
	return nil
}

// InheritNothing marks every descriptor above standard error
// close-on-exec, so that no program this process starts inherits one by
// accident: go-daemon leaves the daemon the pid file (read-write) and
// /dev/null without the flag. A descriptor a program must get is passed
// through exec.Cmd's ExtraFiles, which clears the flag on the copy.
//
// Call it before any process is started.
func InheritNothing() error {
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

// DupToStderr makes f this process's standard output and error, so that
// a panic lands in the current log file after a rotation.
func DupToStderr(f *os.File) error {
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup to fd %d: %w", fd, err)
		}
	}
	return nil
}
