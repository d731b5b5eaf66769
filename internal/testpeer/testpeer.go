// Package testpeer starts the real programs tests talk to: the project's
// own binaries (gserverd, gworkerd, gclient) and the reference peers from
// Debian packages (gearmand, gearman, gearadmin, php, perl).
//
// A test that needs a missing peer is skipped with a line naming the Debian
// package, unless GWORKERD_REQUIRE_PEERS=1, when it fails instead.
package testpeer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Debian packages that provide each peer.
var packages = map[string]string{
	"gearmand":  "gearman-job-server",
	"gearman":   "gearman-tools",
	"gearadmin": "gearman-tools",
	"php":       "php-cli php-gearman",
	"perl":      "libgearman-client-perl",
	"chromium":  "chromium",
	"sqlite3":   "sqlite3",
	"tr":        "coreutils",
	"script":    "bsdutils",
}

// Require returns the path of the peer program bin, or skips (fails under
// GWORKERD_REQUIRE_PEERS=1) when it is not installed.
func Require(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if c := filepath.Join(dir, bin); isExec(c) {
			return c
		}
	}
	Missing(t, bin, packages[bin])
	return ""
}

// Missing skips the test because a peer is missing, naming the Debian
// package that provides it; under GWORKERD_REQUIRE_PEERS=1 it fails.
func Missing(t testing.TB, what, pkg string) {
	t.Helper()
	msg := fmt.Sprintf("SKIP: %s is not installed (Debian package: %s)", what, pkg)
	if os.Getenv("GWORKERD_REQUIRE_PEERS") == "1" {
		t.Fatal(msg + "; GWORKERD_REQUIRE_PEERS=1 makes this a failure")
	}
	t.Skip(msg)
}

// RequirePHPGearman skips unless PHP has the gearman extension.
func RequirePHPGearman(t testing.TB) string {
	t.Helper()
	php := Require(t, "php")
	out, err := exec.Command(php, "-r", "echo extension_loaded('gearman') ? 'yes' : 'no';").Output()
	if err != nil || string(out) != "yes" {
		Missing(t, "PHP's gearman extension", "php-gearman")
	}
	return php
}

// RequirePerlGearman skips unless Perl has Gearman::Client and Gearman::Worker.
func RequirePerlGearman(t testing.TB) string {
	t.Helper()
	perl := Require(t, "perl")
	if err := exec.Command(perl, "-MGearman::Client", "-MGearman::Worker", "-e1").Run(); err != nil {
		Missing(t, "Perl's Gearman::Client", "libgearman-client-perl")
	}
	return perl
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitListening waits until addr accepts TCP connections, or fails t.
func WaitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening within %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a socket that is not ours to signal
	}
}

// Process is a program started for a test; it is stopped at cleanup.
type Process struct {
	Cmd    *exec.Cmd
	Addr   string // host:port it serves, for servers
	stderr *lockedWriter
	done   chan struct{}
}

// Stop sends SIGTERM, then kills after 5 s; it waits for the exit.
func (p *Process) Stop() {
	if p.Cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Output returns what the process wrote to stderr so far (when the test
// did not set cmd.Stderr itself).
func (p *Process) Output() string {
	p.stderr.mu.Lock()
	defer p.stderr.mu.Unlock()
	return p.stderr.buf.String()
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Start runs cmd, stops it at cleanup and returns it.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, stderr: &lockedWriter{buf: &bytes.Buffer{}}, done: make(chan struct{})}
	if cmd.Stderr == nil {
		cmd.Stderr = p.stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	return p
}

// StartGearmand starts the C gearmand on a free loopback port.
func StartGearmand(t testing.TB, args ...string) *Process {
	t.Helper()
	bin := Require(t, "gearmand")
	for attempt := 0; ; attempt++ {
		port := FreePort(t)
		a := append([]string{"-p", strconv.Itoa(port), "-L", "127.0.0.1", "--log-file", "stderr", "-t", "2"}, args...)
		p := Start(t, exec.Command(bin, a...))
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitUp(p, 10*time.Second) {
			return p
		}
		p.Stop()
		if attempt == 2 {
			t.Fatalf("gearmand did not start: %s", p.Output())
		}
	}
}

// StartGserverd starts gserverd (built from this module) on a free loopback
// port with the given extra flags. Its embedded store (the default queue)
// lives in a fresh temporary directory, given as GSERVERD_DATA_DIR, so
// tests never share the user's state directory; a --data-dir or -q in
// args wins over it.
func StartGserverd(t testing.TB, args ...string) *Process {
	t.Helper()
	bin := Binary(t, "gserverd")
	dataDir := t.TempDir() // before Start: removed after the process stops
	for attempt := 0; ; attempt++ {
		port := FreePort(t)
		a := append([]string{"-p", strconv.Itoa(port), "-L", "127.0.0.1", "--log-file", "stderr"}, args...)
		cmd := exec.Command(bin, a...)
		cmd.Env = append(os.Environ(), "GSERVERD_DATA_DIR="+filepath.Join(dataDir, strconv.Itoa(attempt)))
		p := Start(t, cmd)
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitUp(p, 10*time.Second) {
			return p
		}
		p.Stop()
		if attempt == 2 {
			t.Fatalf("gserverd did not start: %s", p.Output())
		}
	}
}

func waitUp(p *Process, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling a socket that is not ours to signal
	}
	return false
}

// Binary returns the path of one of the module's commands (gserverd,
// gworkerd, gclient). It uses $GWORKERD_BIN/<name> when set (the Makefile
// builds ./bin first); otherwise it builds ./cmd/<name> into a temp dir.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("GWORKERD_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if isExec(p) {
			return p
		}
		t.Fatalf("GWORKERD_BIN=%s has no %s: run make build", dir, name)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
	}
	return out
}

// ModuleRoot returns the directory that holds go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testpeer: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("testpeer: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// lockedWriter serialises writes to a buffer shared with readers.
type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
