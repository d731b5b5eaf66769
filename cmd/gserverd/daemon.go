package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	daemon "github.com/sevlyar/go-daemon"

	"github.com/gworkerd/gworkerd/config"
)

// readyEnv names the abstract unix socket on which the daemon tells the
// process that started it "ok" once it serves, or "error <msg>", so that
// `gserverd -d` exits non-zero with the daemon's error when start-up fails.
const readyEnv = "_GSERVERD_READY"

// daemonContext is go-daemon's description of the daemon; the parent and
// the re-executed child build the same one.
func daemonContext(cfg *config.Server, env []string) *daemon.Context {
	return &daemon.Context{
		PidFileName: cfg.PidFile,
		PidFilePerm: 0o644,
		LogFileName: daemonStderr(cfg.LogFile),
		LogFilePerm: 0o640,
		Env:         env,
	}
}

// daemonStderr is what the daemon's standard output and error are: the log
// file, the standard error of `gserverd -d` for "stderr", /dev/null for "none".
func daemonStderr(logFile string) string {
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

// isDaemonChild reports whether this process is the re-executed daemon.
func isDaemonChild(lookupEnv func(string) (string, bool)) bool {
	v, _ := lookupEnv(daemon.MARK_NAME)
	return v == daemon.MARK_VALUE
}

// startDaemon runs in `gserverd -d`: it locks the pid file, starts the
// daemon (go-daemon re-executes this program with the same arguments; the
// daemon inherits the locked pid file and writes its pid) and waits until
// the daemon reports that it serves, or fails, or exits.
func startDaemon(cfg *config.Server) error {
	name := fmt.Sprintf("@gserverd-ready-%d-%d", os.Getpid(), time.Now().UnixNano())
	ln, err := net.Listen("unix", name)
	if err != nil {
		return fmt.Errorf("daemon: readiness socket: %w", err)
	}
	defer ln.Close() // ends the accept goroutine

	child, err := daemonContext(cfg, append(os.Environ(), readyEnv+"="+name)).Reborn()
	if err != nil {
		if errors.Is(err, daemon.ErrWouldBlock) {
			return pidLockedError(cfg.PidFile, err)
		}
		return fmt.Errorf("daemon: start: %w", err)
	}

	msgs := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
		msgs <- line
	}()
	// The wait goroutine ends when the daemon exits; if it is still
	// running when we return, this process exits and takes it along.
	exited := make(chan error, 1)
	go func() {
		st, err := child.Wait()
		if err == nil {
			err = errors.New(st.String())
		}
		exited <- err
	}()
	select {
	case m := <-msgs:
		m = strings.TrimSpace(m)
		if m == "ok" {
			return nil
		}
		if msg, ok := strings.CutPrefix(m, "error "); ok {
			return errors.New(msg)
		}
		return fmt.Errorf("daemon (pid %d) failed to start", child.Pid)
	case err := <-exited:
		// A daemon that failed reported why just before exiting: give
		// the accept goroutine a moment to read it.
		select {
		case m := <-msgs:
			if msg, ok := strings.CutPrefix(strings.TrimSpace(m), "error "); ok {
				return errors.New(msg)
			}
		case <-time.After(time.Second):
		}
		return fmt.Errorf("daemon (pid %d) exited during start-up: %v", child.Pid, err)
	}
}

// daemonChild completes the daemon's start in the re-executed process:
// go-daemon writes our pid into the pid file inherited locked.
func daemonChild(cfg *config.Server) (*daemon.Context, error) {
	dctx := daemonContext(cfg, nil)
	if _, err := dctx.Reborn(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return dctx, nil
}

// reportStart tells the process that started the daemon how start-up
// went (nil: serving). Outside a daemon it does nothing.
func reportStart(lookupEnv func(string) (string, bool), startErr error) {
	name, ok := lookupEnv(readyEnv)
	if !ok {
		return
	}
	c, err := net.DialTimeout("unix", name, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	msg := "ok\n"
	if startErr != nil {
		msg = "error " + strings.ReplaceAll(startErr.Error(), "\n", " ") + "\n"
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, msg)
}

// dupToStderr makes f the daemon's standard output and error, so that a
// panic lands in the current log file after a rotation.
func dupToStderr(f *os.File) error {
	for _, fd := range []int{1, 2} {
		if err := syscall.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup to fd %d: %w", fd, err)
		}
	}
	return nil
}
