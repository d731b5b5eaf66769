package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a process started by Start (a server) or Spawn (a worker
// program). Stop ends it.
type Proc struct {
	Addr string // 127.0.0.1:port it listens on; empty for Spawn
	PID  int
	Args []string // the full command line

	cmd    *exec.Cmd
	stderr *tail
	done   chan struct{} // closed when the process has exited (owned by the Wait goroutine)
}

// ErrStart reports a server that exited or never listened.
var ErrStart = errors.New("loadgen: server did not start")

// Start runs the server binary path on a free loopback port with
// gearmand's flags (-p PORT -L 127.0.0.1 -l stderr, which gserverd shares)
// followed by args, and waits until it accepts connections and answers an
// ECHO. The process is in its own process group and, on Linux, gets
// SIGTERM if the bench dies first.
func Start(ctx context.Context, path string, args ...string) (*Proc, error) {
	var lastErr error
	for range 3 { // the free port may be taken between the probe and the start
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(ctx, path, port, args)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, path string, port int, args []string) (*Proc, error) {
	full := append([]string{"-p", strconv.Itoa(port), "-L", "127.0.0.1", "-l", "stderr"}, args...)
	p, err := Spawn(path, nil, full...)
	if err != nil {
		return nil, err
	}
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	upCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond) // polling a socket of another process
	defer tick.Stop()
	for {
		c, err := dial(upCtx, p.Addr)
		if err == nil {
			err = c.echo()
			_ = c.close()
			if err == nil {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%w: %s exited: %s", ErrStart, strings.Join(p.Args, " "), p.Output())
		case <-upCtx.Done():
			p.Stop()
			return nil, fmt.Errorf("%w: %s did not answer on %s: %v: %s", ErrStart, strings.Join(p.Args, " "), p.Addr, err, p.Output())
		case <-tick.C:
		}
	}
}

// Spawn runs the program path with args and, added to the bench's own
// environment, env: a worker program rather than a server (a worker
// daemon, a PHP worker loop). Like a server it runs in its own process
// group, gets SIGTERM if the bench dies first (Linux) and keeps the tail
// of its output for Output. It does not wait for anything: the caller
// knows what "ready" means for the program.
func Spawn(path string, env []string, args ...string) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = sysProcAttr()
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &Proc{
		Args:   append([]string{path}, args...),
		cmd:    cmd,
		stderr: &tail{max: 4 << 10},
		done:   make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start %s: %w", path, err)
	}
	p.PID = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the process group, then SIGKILL after 5 s, and
// waits for the exit. It is safe to call twice.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		<-p.done
	}
}

// Output returns the last few KiB the process wrote.
func (p *Proc) Output() string { return p.stderr.String() }

// RSS returns the process's resident memory (VmRSS) in bytes.
func (p *Proc) RSS() (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(p.PID) + "/status")
	if err != nil {
		return 0, fmt.Errorf("loadgen: rss: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), "VmRSS:")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return 0, fmt.Errorf("loadgen: rss: bad VmRSS line %q", s.Text())
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("loadgen: rss: no VmRSS for pid %d", p.PID)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loadgen: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(b)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
