package sysproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	daemon "github.com/sevlyar/go-daemon"
)

// readyEnv names the abstract unix socket on which the daemon tells the
// process that started it "ok" once it serves, or "error <msg>".
const readyEnv = "_GWORKERD_DAEMON_READY"

// Daemon is a detached start. go-daemon re-executes the program; the
// re-executed process takes over the pid file the starter locked and
// tells the starter whether it serves or why it failed, so that the
// start command exits non-zero with the daemon's own error instead of
// detaching blindly.
type Daemon struct {
	// Name is the program's name in socket names and messages.
	Name string
	// PidFile is locked by the starter and inherited by the daemon.
	PidFile string
	// Output is the file the daemon's standard output and error go to:
	// "" for /dev/null, "/dev/stderr" for the starter's standard error.
	Output string
	// Args is the daemon's command line; nil repeats the starter's.
	Args []string
	// Umask is the daemon's umask; 0 keeps the starter's.
	Umask int
}

func (d *Daemon) context(env []string) *daemon.Context {
	out := d.Output
	if out == "" {
		out = os.DevNull
	}
	return &daemon.Context{
		PidFileName: d.PidFile,
		PidFilePerm: 0o644,
		LogFileName: out,
		LogFilePerm: 0o640,
		Args:        d.Args,
		Env:         env,
		Umask:       d.Umask,
	}
}

// IsChild reports whether this process is a re-executed daemon.
func IsChild(lookupEnv func(string) (string, bool)) bool {
	v, _ := lookupEnv(daemon.MARK_NAME)
	return v == daemon.MARK_VALUE
}

// Start runs in the starting process: it starts the daemon and waits
// until the daemon reports that it serves (nil), reports an error, exits
// or ctx ends. It returns the daemon's pid. A pid file locked by a
// running process is a *RunningError; a daemon that exits without a
// report is an *ExitedError.
//
// Start is for a starter that exits after it: a goroutine waiting for the
// daemon's exit stays until the daemon exits or the starter does.
func (d *Daemon) Start(ctx context.Context) (int, error) {
	name := fmt.Sprintf("@%s-ready-%d-%d", d.Name, os.Getpid(), time.Now().UnixNano())
	ln, err := net.Listen("unix", name)
	if err != nil {
		return 0, fmt.Errorf("daemon: readiness socket: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close() // ends the accept goroutine

	child, err := d.context(append(daemonEnv(os.Environ()), readyEnv+"="+name)).Reborn()
	if err != nil {
		if errors.Is(err, daemon.ErrWouldBlock) {
			return 0, lockError(d.PidFile, err)
		}
		return 0, fmt.Errorf("daemon: start: %w", err)
	}

	msgs := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
		msgs <- line
	}()
	// The wait goroutine ends when the daemon exits; if it still runs
	// when the starter returns, the starter's exit takes it along.
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
		return child.Pid, readyMessage(child.Pid, m)
	case err := <-exited:
		// A daemon that failed reported why just before exiting: give
		// the accept goroutine a moment to read it.
		select {
		case m := <-msgs:
			if err := readyMessage(child.Pid, m); err != nil {
				return child.Pid, err
			}
		case <-time.After(time.Second):
		}
		return child.Pid, &ExitedError{Name: d.Name, Pid: child.Pid, Err: err}
	case <-ctx.Done():
		return child.Pid, fmt.Errorf("%s (pid %d) did not report its start: %w", d.Name, child.Pid, ctx.Err())
	}
}

// daemonEnv is env without the variables of a detached start (a stale
// one would be taken for the new daemon's).
func daemonEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, readyEnv+"=") && !strings.HasPrefix(kv, daemon.MARK_NAME+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// readyMessage turns the daemon's report into the start's result.
func readyMessage(pid int, m string) error {
	m = strings.TrimSpace(m)
	if m == "ok" {
		return nil
	}
	if msg, ok := strings.CutPrefix(m, "error "); ok {
		return errors.New(msg)
	}
	return fmt.Errorf("daemon (pid %d) failed to start", pid)
}

// Child is the re-executed daemon's side of a detached start.
type Child struct {
	dctx  *daemon.Context
	ready string // the starter's socket
	once  sync.Once
}

// Child completes the start in the re-executed process: go-daemon writes
// our pid into the pid file it inherited locked. The variables of the
// start (go-daemon's mark and the readiness socket) are then removed from
// this process's environment, so that the daemon's own children (a job
// that runs `gserverd -d`) do not take themselves for a re-executed
// daemon. Call Ready once serving (or with the error that ended the
// start), and Release at exit. If Child fails, it reports the error.
func (d *Daemon) Child(lookupEnv func(string) (string, bool)) (*Child, error) {
	c := &Child{dctx: d.context(nil)}
	c.ready, _ = lookupEnv(readyEnv)
	_, err := c.dctx.Reborn()
	os.Unsetenv(readyEnv)
	os.Unsetenv(daemon.MARK_NAME)
	if err != nil {
		err = fmt.Errorf("daemon: %w", err)
		c.Ready(err)
		return nil, err
	}
	return c, nil
}

// Ready tells the starter how the start went (nil: serving). Only the
// first call says anything; later ones and a nil Child do nothing. It
// may be called from any goroutine.
func (c *Child) Ready(startErr error) {
	if c == nil {
		return
	}
	c.once.Do(func() { c.report(startErr) })
}

func (c *Child) report(startErr error) {
	name := c.ready
	if name == "" {
		return
	}
	conn, err := net.DialTimeout("unix", name, 5*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	msg := "ok\n"
	if startErr != nil {
		msg = "error " + strings.ReplaceAll(startErr.Error(), "\n", " ") + "\n"
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, msg)
}

// Release releases the pid file at the daemon's exit. A nil Child does
// nothing.
func (c *Child) Release() error {
	if c == nil {
		return nil
	}
	return c.dctx.Release()
}
