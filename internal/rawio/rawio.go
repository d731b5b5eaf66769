// Package rawio reads and writes non-blocking descriptors (sockets,
// pipes) with raw system calls, waiting on the runtime's poller through
// syscall.RawConn when they would block.
//
// A plain Read or Write enters the scheduler's syscall state, and the
// first such entry after an idle spell wakes the runtime's sysmon thread,
// which then polls every 20µs until the process is idle again. A process
// that serves a job every few hundred microseconds on GOMAXPROCS 1 (a
// gworkerd child) goes idle and busy twice a job, and those wake-ups and
// polls cost it more CPU than the job's own work. A read or write of a
// non-blocking descriptor never blocks, so it needs no syscall state.
// Deadlines and Close act as on the descriptor's own Read and Write.
package rawio

import (
	"errors"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// Conn reads and writes one descriptor.
type Conn struct {
	rc   syscall.RawConn
	file *os.File // when the descriptor is a file's, for its errors
}

// New returns the Conn of c (a *net.TCPConn, *net.UnixConn, an
// *os.File of os.Pipe ...), or false when c has no non-blocking
// descriptor of its own (a TLS connection, an in-memory pipe, a file in
// blocking mode): use c itself then.
func New(c any) (*Conn, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	nonblock := false
	err = rc.Control(func(fd uintptr) {
		flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblock = e == 0 && flags&syscall.O_NONBLOCK != 0
	})
	if err != nil || !nonblock {
		return nil, false // a raw read would block the thread and its P
	}
	f, _ := c.(*os.File)
	return &Conn{rc: rc, file: f}, true
}

// fileErr makes the error of an operation on a closed file os.ErrClosed,
// as os.File's own Read and Write do (a RawConn returns the poller's).
func (c *Conn) fileErr(op string, err error) error {
	if c.file == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if c.rc.Control(func(uintptr) {}) != nil { // the file is closed
		return &os.PathError{Op: op, Path: c.file.Name(), Err: os.ErrClosed}
	}
	return err
}

// Read reads into p; io.EOF at the end of the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r1, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r1)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait for the poller
			default:
				errno = e
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, c.fileErr("read", err)
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, or fails.
func (c *Conn) Write(p []byte) (int, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r1, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r1)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait for the poller
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, c.fileErr("write", err)
	case errno != 0:
		return n, os.NewSyscallError("write", errno)
	}
	return n, nil
}
