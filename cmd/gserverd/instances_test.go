package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// instanceEnv is a clean environment for a gserverd that takes every
// default: no GSERVERD_* or GEARMAND_PORT, and HOME and XDG_STATE_HOME in
// a directory of the test's own, so that the default data directory is
// private to the test. As root the default would be /var/lib/gserverd...,
// so the process then runs as nobody (uid 65534), and the directory and
// binary are made reachable for it. It returns the env, the state home,
// the binary and the credentials to run as (nil when not root).
func instanceEnv(t *testing.T) (env []string, stateHome, bin string, cred *syscall.Credential) {
	t.Helper()
	root, err := os.MkdirTemp("", "gserverd-instances-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	stateHome = filepath.Join(root, "state")
	home := filepath.Join(root, "home")
	for _, d := range []string{stateHome, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin = testpeer.Binary(t, "gserverd")
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		if err := os.Chmod(root, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{stateHome, home} {
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		// Copied by cp, not written here: a process this test binary
		// forks meanwhile (parallel tests start servers) would inherit
		// a descriptor open for writing, and exec would fail with "text
		// file busy".
		dst := filepath.Join(root, "gserverd")
		if out, err := exec.Command("cp", bin, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v: %s", bin, err, out)
		}
		if err := os.Chmod(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		bin = dst
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GSERVERD_") || k == "GEARMAND_PORT" || k == "HOME" || k == "XDG_STATE_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "XDG_STATE_HOME="+stateHome)
	return env, stateHome, bin, cred
}

// startPortOnly starts gserverd with `-p PORT` and nothing else, on a
// port that was free a moment ago (a new one if another process took it
// meanwhile), and waits until it accepts on 127.0.0.1.
func startPortOnly(t *testing.T, env []string, bin string, cred *syscall.Credential) (p *testpeer.Process, port int) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port = testpeer.FreePort(t)
		cmd := exec.Command(bin, "-p", strconv.Itoa(port))
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		p = logOnFailure(t, testpeer.Start(t, cmd))
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		up := false
		eventually(t, "gserverd -p "+strconv.Itoa(port)+" accepts or exits", func() bool {
			select {
			case <-p.Done():
				return true
			default:
			}
			c, err := net.DialTimeout("tcp", p.Addr, time.Second)
			if err == nil {
				c.Close()
				up = true
			}
			return up
		})
		if up {
			return p, port
		}
		if attempt == 2 || !strings.Contains(p.Output(), "address already in use") {
			t.Fatalf("gserverd -p %d did not start: %s", port, p.Output())
		}
	}
}

// runOneJob runs a foreground job through the server at addr with a raw
// worker and client.
func runOneJob(t *testing.T, addr, fn string) {
	t.Helper()
	worker := dialRaw(t, addr)
	worker.send(protocol.CanDo, fn)
	client := dialRaw(t, addr)
	client.send(protocol.SubmitJob, fn, "", "in")
	handle := client.expect(protocol.JobCreated)[0]
	worker.send(protocol.GrabJob)
	if got := worker.expect(protocol.JobAssign); got[0] != handle || got[2] != "in" {
		t.Fatalf("%s: JOB_ASSIGN %q, want [%s %s in]", addr, got, handle, fn)
	}
	worker.send(protocol.WorkComplete, handle, "out")
	if got := client.expect(protocol.WorkComplete); got[0] != handle || got[1] != "out" {
		t.Fatalf("%s: WORK_COMPLETE %q, want [%s out]", addr, got, handle)
	}
}

// TestInstancesDifferOnlyInPort starts two gserverd on one host with only
// -p differing and every other setting at its default (issue 11): both
// start, each with its own default data directory (gserverd-PORT under
// $XDG_STATE_HOME), both run a job, and each has its own HTTP endpoint on
// its port + 1. That port is not chosen by the kernel and may be taken by
// another process on a loaded host: then gserverd must say so in one line
// at its default log level and go on serving Gearman, which the test
// accepts in place of the endpoint.
func TestInstancesDifferOnlyInPort(t *testing.T) {
	t.Parallel()
	env, stateHome, bin, cred := instanceEnv(t)
	a, portA := startPortOnly(t, env, bin, cred)
	b, portB := startPortOnly(t, env, bin, cred)
	for _, s := range []struct {
		p    *testpeer.Process
		port int
	}{{a, portA}, {b, portB}} {
		runOneJob(t, s.p.Addr, "f"+strconv.Itoa(s.port))
		dir := filepath.Join(stateHome, "gserverd-"+strconv.Itoa(s.port))
		if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
			t.Errorf("gserverd -p %d: no store in %s: %v", s.port, dir, err)
		}
		httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port+1))
		if out := s.p.Output(); strings.Contains(out, "default HTTP address in use") {
			if !strings.Contains(out, httpAddr) {
				t.Errorf("gserverd -p %d: the HTTP warning does not name %s: %s", s.port, httpAddr, out)
			}
			t.Logf("gserverd -p %d: %s was taken; the endpoint is off, as logged", s.port, httpAddr)
			continue
		}
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			t.Errorf("gserverd -p %d: HTTP endpoint %s: %v", s.port, httpAddr, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("gserverd -p %d: GET %s/healthz = %d %q, want 200", s.port, httpAddr, resp.StatusCode, body)
		}
	}
	if _, err := os.Stat(filepath.Join(stateHome, "gserverd")); err == nil {
		t.Errorf("%s/gserverd exists: the port-4730 directory is not the default of other ports", stateHome)
	}
}

// TestSecondOnSameDataDir starts a gserverd on a data directory another
// gserverd has open: it exits 1 with one line naming the first's pid.
func TestSecondOnSameDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startGserverd(t, "--data-dir", dir, "--http-listen", "")
	_, stderr, code := runBinary(t, nil, "-L", "127.0.0.1", "-p", "0", "--data-dir", dir, "--http-listen", "")
	want := fmt.Sprintf("is in use by process %d (gserverd)", first.Cmd.Process.Pid)
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("second gserverd on %s: exit %d, stderr %q; want 1 and one line containing %q", dir, code, stderr, want)
	}
}

// TestDerivedHTTPPortTaken starts gserverd with only -p, on a port whose
// next port (the default HTTP endpoint's) the test holds: gserverd serves
// Gearman all the same and says in one line, at its default log level,
// that the endpoint is off and at which address.
func TestDerivedHTTPPortTaken(t *testing.T) {
	t.Parallel()
	env, _, bin, cred := instanceEnv(t)
	for attempt := 0; ; attempt++ {
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		httpPort := held.Addr().(*net.TCPAddr).Port
		port := httpPort - 1
		cmd := exec.Command(bin, "-p", strconv.Itoa(port))
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		p := logOnFailure(t, testpeer.Start(t, cmd))
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		up := false
		eventually(t, "gserverd accepts or exits", func() bool {
			select {
			case <-p.Done():
				return true
			default:
			}
			if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
				c.Close()
				up = true
			}
			return up
		})
		if !up {
			// port - 1 is not reserved: any socket of the machine (an
			// outgoing connection of a parallel test takes an ephemeral
			// port) may hold it. Under load three such collisions in a
			// row were seen; another pair is tried, up to ten.
			if attempt < 9 && strings.Contains(p.Output(), "address already in use") {
				continue
			}
			t.Fatalf("gserverd -p %d did not start: %s", port, p.Output())
		}
		runOneJob(t, p.Addr, "f")
		want := "127.0.0.1:" + strconv.Itoa(httpPort)
		var line string
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, "default HTTP address in use") {
				line = l
			}
		}
		if !strings.Contains(line, want) || !strings.Contains(line, "level=error") {
			t.Errorf("gserverd -p %d with %s taken: log %q; want an error-level line naming %s", port, want, p.Output(), want)
		}
		return
	}
}
