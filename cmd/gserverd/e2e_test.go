package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/sysuser"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// These tests run the built gserverd binary (testpeer.Binary).

// rawConn speaks the binary protocol to a server, for tests.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *protocol.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: protocol.NewReader(c, protocol.Limits{})}
}

func (rc *rawConn) send(typ protocol.Type, args ...string) {
	rc.t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(protocol.AppendPacketString(nil, protocol.Req, typ, args...)); err != nil {
		rc.t.Fatalf("send %v: %v", typ, err)
	}
}

// expect reads the next packet and checks its type; it returns the
// arguments as strings.
func (rc *rawConn) expect(typ protocol.Type) []string {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := rc.r.Next()
	if err != nil {
		rc.t.Fatalf("waiting for %v: %v", typ, err)
	}
	if f.Text || f.Packet.Type != typ {
		rc.t.Fatalf("got %v (text %v %q), want %v", f.Packet.Type, f.Text, f.Line, typ)
	}
	out := make([]string, len(f.Packet.Args))
	for i, a := range f.Packet.Args {
		out[i] = string(a)
	}
	return out
}

// echo checks the server answers ECHO_REQ on addr.
func echo(t *testing.T, addr string) {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.send(protocol.EchoReq, "ping")
	if got := rc.expect(protocol.EchoRes); len(got) != 1 || got[0] != "ping" {
		t.Fatalf("ECHO_RES on %s = %q, want [ping]", addr, got)
	}
}

// ours checks that the server on addr is the one the test started with
// --job-handle-prefix prefix (and not another test's on a reused port).
func ours(t *testing.T, addr, prefix string) {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.send(protocol.SubmitJobBg, "probe", "", "x")
	if h := rc.expect(protocol.JobCreated); len(h) != 1 || !strings.HasPrefix(h[0], prefix+":") {
		t.Fatalf("JOB_CREATED handle %q on %s, want prefix %s:", h, addr, prefix)
	}
}

// eventually polls cond (a state owned by another process) until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond) // another process's state: nothing to wait on
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// runBinary runs gserverd to completion with env added to the test's.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testpeer.Binary(t, "gserverd"), args...)
	cmd.Env = append(append(os.Environ(), dataDirEnv(t)), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return o.String(), e.String(), exitCode(err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("gserverd %q did not exit", args)
	}
	return "", "", -1
}

func startBinary(t *testing.T, env []string, args ...string) *testpeer.Process {
	t.Helper()
	return startBinaryIn(t, "", env, args...)
}

// startBinaryIn is startBinary with the working directory dir ("" for
// the test's).
func startBinaryIn(t *testing.T, dir string, env []string, args ...string) *testpeer.Process {
	t.Helper()
	cmd := exec.Command(testpeer.Binary(t, "gserverd"), args...)
	cmd.Env = append(append(os.Environ(), dataDirEnv(t)), env...)
	cmd.Dir = dir
	return logOnFailure(t, testpeer.Start(t, cmd))
}

// dataDirEnv gives each gserverd started by a test its own embedded store
// (the default queue); a --data-dir in the args or env wins over it.
func dataDirEnv(t *testing.T) string {
	return "GSERVERD_DATA_DIR=" + t.TempDir()
}

var startedAddr = regexp.MustCompile(`gserverd started.*?addr=(?:"([^",]+)|([^\s,]+))|"addr":"([^",]+)[^}]*"msg":"gserverd started"`)

// startGserverd starts gserverd on 127.0.0.1 port 0 (no race for a free
// port between parallel tests) and learns its address from the start line
// of the log (stderr, or the --log-file given in args). The server's
// output goes to the test log when the test fails.
func startGserverd(t *testing.T, args ...string) *testpeer.Process {
	t.Helper()
	return startGserverdIn(t, "", args...)
}

// startGserverdIn is startGserverd with the working directory dir ("" for
// the test's).
func startGserverdIn(t *testing.T, dir string, args ...string) *testpeer.Process {
	t.Helper()
	logPath := ""
	for i, a := range args {
		if a == "--log-file" && i+1 < len(args) && args[i+1] != "stderr" {
			logPath = args[i+1]
		}
	}
	base := []string{"-L", "127.0.0.1", "-p", "0", "--log-file", "stderr", "--verbose", "INFO"}
	p := startBinaryIn(t, dir, nil, append(base, args...)...)
	eventually(t, "gserverd logs its address", func() bool {
		out := p.Output()
		if logPath != "" {
			b, _ := os.ReadFile(logPath)
			out = string(b)
		}
		if m := startedAddr.FindStringSubmatch(out); m != nil {
			p.Addr = m[1] + m[2] + m[3]
			return true
		}
		select {
		case <-p.Done():
			t.Fatalf("gserverd exited: %s", out)
		default:
		}
		return false
	})
	return p
}

func logOnFailure(t *testing.T, p *testpeer.Process) *testpeer.Process {
	t.Cleanup(func() {
		if t.Failed() {
			p.Stop()
			t.Logf("gserverd output:\n%s", p.Output())
		}
	})
	return p
}

func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func TestBinaryVersion(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-V", "--version"} {
		out, errOut, code := runBinary(t, nil, flag)
		if code != 0 || !strings.HasPrefix(out, "gserverd ") || strings.Count(out, "\n") != 1 || errOut != "" {
			t.Errorf("gserverd %s: code %d, stdout %q, stderr %q; want 0 and one line \"gserverd <version>\"", flag, code, out, errOut)
		}
	}
}

func TestBinaryHelp(t *testing.T) {
	t.Parallel()
	out, _, code := runBinary(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"-j, --job-retries", "-1 unlimited, 0 no retry", "GSERVERD_", "GEARMAND_PORT", "USR1"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// Checklist (Ops) "Flags from §5; at least -p -L -l -P -d -t -j -w -R -q
// --exceptions --job-handle-prefix --keepalive* --verbose --pid-file
// --log-file -u --check-args": every flag parses here; their effects are
// tested where they act (TestBinaryDaemonPidFile, TestBinaryUserAndLimits,
// TestListenKeepalive, interop Options/*).
func TestBinaryCheckArgs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("port: 4731\nlisten: [127.0.0.1]\njob_retries: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("port: 4731\nworker_wakeup: -3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		args    []string
		code    int
		wantErr string
	}{
		{"defaults", nil, nil, 0, ""},
		{"every gearmand flag", nil, []string{"-p", "4731", "-L", "localhost", "-l", "none", "-P", filepath.Join(dir, "x.pid"), "-t", "4", "-j", "0",
			"-w", "1", "-R", "-q", "builtin", "--exceptions", "--job-handle-prefix", "H:t", "--keepalive", "--keepalive-idle", "10",
			"--keepalive-interval", "5", "--keepalive-count", "3", "--verbose", "DEBUG", "-b", "64", "-f", "1024"}, 0, ""},
		{"good file", nil, []string{"--config-file", good}, 0, ""},
		{"bad flag value", nil, []string{"-j", "300"}, 1, "gserverd: --job-retries: want -1 (unlimited), 0 (no retry) or 1..255, got 300\n"},
		{"-vvv stacks", nil, []string{"-vvv"}, 0, ""},
		{"unknown flag", nil, []string{"--no-such-flag"}, 1, "gserverd: unknown flag: --no-such-flag (see gserverd --help)\n"},
		{"bad file", nil, []string{"--config-file", bad}, 1, "gserverd: " + bad + ":2: worker_wakeup: want at least 0, got -3\n"},
		{"bad env", []string{"GSERVERD_VERBOSE=chatty"}, nil, 1, "gserverd: GSERVERD_VERBOSE (environment): verbose: want one of FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG, got \"chatty\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runBinary(t, tt.env, append(tt.args, "--check-args")...)
			if code != tt.code || errOut != tt.wantErr || out != "" {
				t.Errorf("gserverd %q --check-args: code %d, stdout %q, stderr %q; want code %d, stderr %q", tt.args, code, out, errOut, tt.code, tt.wantErr)
			}
		})
	}
}

// Checklist (Ops) "Listen on all getaddrinfo results (IPv4 and IPv6 for
// localhost)" (TestBindAddrs checks the address list itself).
func TestBinaryListenLocalhost(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(testpeer.FreePort(t))
	startBinary(t, nil, "-L", "localhost", "-p", port, "--log-file", "stderr", "--job-handle-prefix", "H:localhost-test")
	addr4 := net.JoinHostPort("127.0.0.1", port)
	testpeer.WaitListening(t, addr4, 15*time.Second)
	ours(t, addr4, "H:localhost-test")
	if !hasIPv6Loopback() {
		t.Log("no IPv6 loopback on this machine: only 127.0.0.1 checked")
		return
	}
	ours(t, net.JoinHostPort("::1", port), "H:localhost-test")
}

// Checklist (Ops) "honour GEARMAND_PORT".
func TestBinaryGearmandPortEnv(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(testpeer.FreePort(t))
	startBinary(t, []string{"GEARMAND_PORT=" + port}, "-L", "127.0.0.1", "--job-handle-prefix", "H:gearmand-port")
	addr := net.JoinHostPort("127.0.0.1", port)
	testpeer.WaitListening(t, addr, 15*time.Second)
	ours(t, addr, "H:gearmand-port")
}

func TestBinaryGserverdEnv(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(testpeer.FreePort(t))
	startBinary(t, []string{"GSERVERD_PORT=" + port, "GSERVERD_LISTEN=127.0.0.1", "GSERVERD_JOB_HANDLE_PREFIX=H:envtest"})
	addr := net.JoinHostPort("127.0.0.1", port)
	testpeer.WaitListening(t, addr, 15*time.Second)
	ours(t, addr, "H:envtest") // the prefix from GSERVERD_JOB_HANDLE_PREFIX
}

// Checklist (Ops) "Signals: TERM/INT = stop; USR1 = graceful (stop
// accepting, drain); HUP = reopen the log": this test, TestBinaryTermStops,
// TestBinaryHupReopensLog and TestWaitStop (INT).
//
// TestBinaryGracefulStop: SIGUSR1 while a job runs stops accepting, lets
// the job complete (the client gets WORK_COMPLETE), then exits 0.
func TestBinaryGracefulStop(t *testing.T) {
	t.Parallel()
	p := startGserverd(t)
	worker := dialRaw(t, p.Addr)
	worker.send(protocol.CanDo, "slow")
	client := dialRaw(t, p.Addr)
	client.send(protocol.SubmitJob, "slow", "", "payload")
	handle := client.expect(protocol.JobCreated)[0]
	worker.send(protocol.GrabJob)
	if got := worker.expect(protocol.JobAssign); got[0] != handle || got[1] != "slow" || got[2] != "payload" {
		t.Fatalf("JOB_ASSIGN %q, want [%s slow payload]", got, handle)
	}

	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gserverd stops accepting after SIGUSR1", func() bool {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case <-p.Done():
		t.Fatalf("gserverd exited before the running job completed: %s", p.Output())
	default:
	}
	worker.send(protocol.WorkComplete, handle, "result")
	if got := client.expect(protocol.WorkComplete); got[0] != handle || got[1] != "result" {
		t.Fatalf("WORK_COMPLETE %q, want [%s result]", got, handle)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("gserverd did not exit after the job completed: %s", p.Output())
	}
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGUSR1, want 0: %s", code, p.Output())
	}
}

// TestBinaryTermStops: SIGTERM stops the server with status 0.
func TestBinaryTermStops(t *testing.T) {
	t.Parallel()
	p := startGserverd(t)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("gserverd did not exit on SIGTERM: %s", p.Output())
	}
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0: %s", code, p.Output())
	}
}

// TestBinaryHupReopensLog: rename the log file, send SIGHUP, a new file
// appears and gets the new lines.
func TestBinaryHupReopensLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "gserverd.log")
	p := startGserverd(t, "--log-file", logPath, "--verbose", "INFO")
	eventually(t, "the start line is logged", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte("gserverd started"))
	})
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new log file with the reopen line", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte("log file reopened"))
	})
	p.Stop()
	newLog, _ := os.ReadFile(logPath)
	oldLog, _ := os.ReadFile(rotated)
	if !bytes.Contains(newLog, []byte("gserverd stopped")) {
		t.Errorf("new log lacks the stop line:\n%s", newLog)
	}
	if bytes.Contains(oldLog, []byte("log file reopened")) || bytes.Contains(oldLog, []byte("gserverd stopped")) {
		t.Errorf("lines after SIGHUP went to the rotated file:\n%s", oldLog)
	}
}

// TestBinaryDaemonPidFile: -d detaches (the command exits 0, the daemon
// serves and holds the pid file); a second -d on the same pid file fails
// naming the running pid; SIGTERM stops the daemon and removes the file.
func TestBinaryDaemonPidFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "gserverd.pid")
	logPath := filepath.Join(dir, "gserverd.log")
	port := strconv.Itoa(testpeer.FreePort(t))
	args := []string{"-d", "-P", pidPath, "-l", logPath, "-L", "127.0.0.1", "-p", port, "--verbose", "INFO", "--job-handle-prefix", "H:daemon-test"}

	out, errOut, code := runBinary(t, nil, args...)
	if code != 0 {
		t.Fatalf("gserverd -d: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	b, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file holds %q", b)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(pidPath); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	ours(t, net.JoinHostPort("127.0.0.1", port), "H:daemon-test")

	_, errOut, code = runBinary(t, nil, "-d", "-P", pidPath, "-l", logPath, "-L", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)))
	want := "gserverd: pid file " + pidPath + " is locked by running process " + strconv.Itoa(pid)
	if code != 1 || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("second gserverd -d: exit %d, stderr %q; want 1 and %q...", code, errOut, want)
	}
	// The failed start left the pid file to its owner.
	if b2, err := os.ReadFile(pidPath); err != nil || !bytes.Equal(b, b2) {
		t.Errorf("pid file after the failed start: %q, %v; want %q", b2, err, b)
	}

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the daemon removes its pid file on SIGTERM", func() bool {
		_, err := os.Stat(pidPath)
		return os.IsNotExist(err)
	})
	logText, _ := os.ReadFile(logPath)
	if !bytes.Contains(logText, []byte("gserverd stopped")) {
		t.Errorf("daemon log lacks the stop line:\n%s", logText)
	}
}

// TestBinaryDaemonStartError: a daemon that cannot bind makes `gserverd -d`
// fail with the daemon's error.
func TestBinaryDaemonStartError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	_, errOut, code := runBinary(t, nil, "-d", "-P", filepath.Join(dir, "p.pid"), "-l", filepath.Join(dir, "l.log"), "-L", "127.0.0.1", "-p", port)
	if code != 1 || !strings.Contains(errOut, "address already in use") {
		t.Errorf("gserverd -d on a busy port: exit %d, stderr %q; want 1 and the bind error", code, errOut)
	}
}

// TestBinaryPidFileForeground: a foreground gserverd also locks its pid
// file, and a second one is refused.
func TestBinaryPidFileForeground(t *testing.T) {
	t.Parallel()
	pidPath := filepath.Join(t.TempDir(), "fg.pid")
	p := startGserverd(t, "-P", pidPath)
	want := "gserverd: pid file " + pidPath + " is locked by running process " + strconv.Itoa(p.Cmd.Process.Pid)
	_, errOut, code := runBinary(t, nil, "-P", pidPath, "-L", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)))
	if code != 1 || !strings.HasPrefix(errOut, want) {
		t.Errorf("second gserverd: exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
	p.Stop()
	if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
		t.Errorf("pid file still there after stop: %v", err)
	}
}

// TestBinaryAdminShutdown: with --admin-shutdown, the admin commands
// `shutdown` and `shutdown graceful` stop gserverd (exit 0).
func TestBinaryAdminShutdown(t *testing.T) {
	t.Parallel()
	for _, cmdLine := range []string{"shutdown", "shutdown graceful"} {
		t.Run(cmdLine, func(t *testing.T) {
			t.Parallel()
			p := startGserverd(t, "--admin-shutdown")
			c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(cmdLine + "\r\n")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("gserverd did not exit on %q: %s", cmdLine, p.Output())
			}
			if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit %d after %q, want 0: %s", code, cmdLine, p.Output())
			}
		})
	}
}

// TestBinaryJSONLogFields: --log-format json writes one JSON object per
// line; -j 0 drops a job whose worker died, and that log line carries the
// server's function and job_handle fields; a connection closed for bad
// framing is logged with its conn_id.
func TestBinaryJSONLogFields(t *testing.T) {
	t.Parallel()
	p := startGserverd(t, "--log-format", "json", "--verbose", "INFO", "-j", "0")
	client := dialRaw(t, p.Addr)
	client.send(protocol.SubmitJobBg, "dies", "", "x")
	handle := client.expect(protocol.JobCreated)[0]
	worker := dialRaw(t, p.Addr)
	worker.send(protocol.CanDo, "dies")
	worker.send(protocol.GrabJob)
	if got := worker.expect(protocol.JobAssign); got[0] != handle {
		t.Fatalf("JOB_ASSIGN %q, want handle %s", got, handle)
	}
	worker.c.Close()
	var dropped map[string]any
	eventually(t, "the drop is logged", func() bool {
		for _, line := range strings.Split(p.Output(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["job_handle"] == handle {
				dropped = m
				return true
			}
		}
		return false
	})
	if dropped["function"] != "dies" || dropped["level"] != "warning" {
		t.Errorf("drop log line %v, want function=dies level=warning", dropped)
	}
	bad := dialRaw(t, p.Addr)
	if _, err := bad.c.Write([]byte("\x00BAD\x00\x00\x00\x01\x00\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the framing error is logged with a conn_id", func() bool {
		for _, line := range strings.Split(p.Output(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "closing connection: framing error" {
				id, ok := m["conn_id"].(float64)
				return ok && id > 0
			}
		}
		return false
	})
	p.Stop()
	var started bool
	for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if m["msg"] == "gserverd started" && m["addr"] == p.Addr {
			started = true
		}
	}
	if !started {
		t.Errorf("no JSON start line with addr %s in:\n%s", p.Addr, p.Output())
	}
}

// TestBinaryUserAndLimits: -u switches to the user after binding and -f
// sets the open-file limit (as root); without root -u is refused.
func TestBinaryUserAndLimits(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		_, errOut, code := runBinary(t, nil, "-u", "nobody", "-L", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)))
		if code != 1 || !strings.Contains(errOut, "flag --user: switching to user \"nobody\" needs root") {
			t.Errorf("-u as non-root: exit %d, stderr %q", code, errOut)
		}
		return
	}
	// -q builtin: the store would be opened as nobody, in a root-owned temp dir.
	p := startGserverd(t, "-u", "nobody", "-f", "2048", "-q", "builtin")
	echo(t, p.Addr)
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Cmd.Process.Pid), "status"))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	nobody, err := sysuser.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
			if want := strconv.FormatUint(uint64(nobody.UID), 10); f[1] != want || f[2] != want {
				t.Errorf("after -u nobody: %s, want uid %s", line, want)
			}
		}
	}
	limits, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Cmd.Process.Pid), "limits"))
	for _, line := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			if f := strings.Fields(line); len(f) < 4 || f[3] != "2048" {
				t.Errorf("after -f 2048: %q", line)
			}
		}
	}
}
