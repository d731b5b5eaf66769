package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/gworkerd/gworkerd/internal/cgroup/cgrouptest"
	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// gworkerdBin is the binary under test: $GWORKERD_BIN/gworkerd, or built
// once by TestMain (with gserverd and gclient).
var gworkerdBin string

func TestMain(m *testing.M) {
	// The daemons detach; as a subreaper this process adopts them, so
	// that the tests can reap them and see that no zombie is left.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl:", err)
		os.Exit(1)
	}
	code, err := testMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func testMain(m *testing.M) (int, error) {
	if dir := os.Getenv("GWORKERD_BIN"); dir != "" {
		gworkerdBin = filepath.Join(dir, "gworkerd")
		return runVerified(m)
	}
	tmp, err := os.MkdirTemp("", "gworkerd-test")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	gworkerdBin = filepath.Join(tmp, "gworkerd")
	root, err := testpeer.ModuleRoot()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command("go", "build", "-o", tmp+string(filepath.Separator), "./cmd/gworkerd", "./cmd/gserverd", "./cmd/gclient")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, out)
	}
	// testpeer.Binary finds gserverd and gclient here too, instead of
	// building them again for every test that starts one.
	os.Setenv("GWORKERD_BIN", tmp)
	return runVerified(m)
}

// runVerified runs the tests, then checks that no goroutine leaked.
func runVerified(m *testing.M) (int, error) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			return 1, fmt.Errorf("goleak: %w", err)
		}
	}
	return code, nil
}

// env is one daemon's files: config, job directory, pid file, socket.
type env struct {
	t       *testing.T
	cgroup  string // memory_cgroup: a fresh cgroup of the test's; "" without one
	noCg    error  // why there is none
	dir     string
	jobs    string
	cfg     string
	pidFile string
	sock    string
	log     string
	server  string
}

func newEnv(t *testing.T, server, functions string, stopTimeout time.Duration) *env {
	t.Helper()
	// Unix socket paths are short: keep the directory name short.
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, jobs: filepath.Join(dir, "jobs"), cfg: filepath.Join(dir, "g.yaml"),
		pidFile: filepath.Join(dir, "run", "g.pid"), sock: filepath.Join(dir, "run", "g.sock"), log: filepath.Join(dir, "g.log"), server: server}
	if err := os.MkdirAll(e.jobs, 0o755); err != nil {
		t.Fatal(err)
	}
	// Each daemon's memory cgroups go under a cgroup of the test's own,
	// removed at its end whatever happened to the daemon; without one
	// (no writable memory cgroup), the daemon measures process trees.
	cgroupLine := ""
	if e.cgroup, e.noCg = cgrouptest.New(t); e.noCg == nil {
		cgroupLine = "memory_cgroup: " + e.cgroup + "\n"
	}
	cfg := fmt.Sprintf("servers: [%s]\njob_dirs: [%s]\npid_file: %s\ncontrol_socket: %s\nlog_file: %s\nstop_timeout: %s\n%sfunctions:\n%s",
		server, e.jobs, e.pidFile, e.sock, e.log, stopTimeout, cgroupLine, functions)
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	return e
}

// script writes an executable job_<name>.
func (e *env) script(name, body string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.jobs, "job_"+name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) run(args ...string) (string, error) {
	cmd := exec.Command(gworkerdBin, append([]string{"--config", e.cfg}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *env) must(args ...string) string {
	e.t.Helper()
	out, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("gworkerd %s: %v\n%s\nlog:\n%s", strings.Join(args, " "), err, out, e.logTail())
	}
	return out
}

func (e *env) logTail() string {
	b, _ := os.ReadFile(e.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (e *env) masterPid() int {
	e.t.Helper()
	b, err := os.ReadFile(e.pidFile)
	if err != nil {
		e.t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		e.t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// cleanup kills a daemon a failed test left behind, and reaps it.
func (e *env) cleanup() {
	b, err := os.ReadFile(e.pidFile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid > 0 && sysproc.Alive(pid) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	reap(pid)
}

// reap collects pid if it is our (adopted) zombie.
func reap(pid int) {
	if pid <= 0 {
		return
	}
	var ws unix.WaitStatus
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil || got == pid {
			return
		}
		time.Sleep(10 * time.Millisecond) // waiting for an adopted process's exit
	}
}

func (e *env) status() supervise.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := supervise.Call(ctx, e.sock, supervise.Request{Cmd: "status"})
	if err != nil {
		e.t.Fatalf("status: %v", err)
	}
	return *resp.Status
}

// appendConfig adds top-level keys to the end of the config file.
func (e *env) appendConfig(text string) {
	e.t.Helper()
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) running(fn string) []int {
	var pids []int
	for _, c := range e.status().Children {
		if c.Function == fn && c.State == supervise.StateRunning && sysproc.Alive(c.Pid) {
			pids = append(pids, c.Pid)
		}
	}
	return pids
}

func (e *env) allChildPids() []int {
	var pids []int
	for _, c := range e.status().Children {
		if c.Pid != 0 {
			pids = append(pids, c.Pid)
		}
	}
	return pids
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling processes we do not own
	}
}

// processesInGroups lists the processes (zombies included) whose process
// group or session is one of pgids, from /proc. The daemon leads its own
// session, so every descendant (job executables too) is found.
func processesInGroups(pgids []int) []string {
	want := map[int]bool{}
	for _, p := range pgids {
		want[p] = true
	}
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		if len(f) < 4 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgid, _ := strconv.Atoi(f[2])
		sid, _ := strconv.Atoi(f[3])
		if want[pgid] || want[pid] || want[sid] {
			if f[0] == "Z" && ppid == os.Getpid() {
				// Orphans adopted by this test (the subreaper, standing
				// in for init) are reaped as init would.
				var ws unix.WaitStatus
				if got, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got == pid {
					continue
				}
			}
			out = append(out, fmt.Sprintf("pid %d state %s pgid %d sid %d", pid, f[0], pgid, sid))
		}
	}
	return out
}

// noneLeft fails unless every process of the daemon's session and of
// the children's groups is gone within a moment.
func noneLeft(t *testing.T, pgids []int) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(3 * time.Second)
	for {
		if left = processesInGroups(pgids); len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left after stop: %v", left)
			return
		}
		time.Sleep(20 * time.Millisecond) // processes killed a moment ago
	}
}

// submit runs one job over the raw protocol; background returns at
// JOB_CREATED.
func submit(ctx context.Context, addr, fn, data string, background bool) (string, error) {
	return submitJob(ctx, addr, fn, data, background, false)
}

// submitJob is submit; with exceptions, the connection first asks for
// WORK_EXCEPTION, whose message the error then carries.
func submitJob(ctx context.Context, addr, fn, data string, background, exceptions bool) (string, error) {
	return testpeer.SubmitJob(ctx, addr, fn, data, background, exceptions)
}

// adminStatus returns the server's status line for fn: total, running.
func adminStatus(t *testing.T, addr, fn string) (total, running int) {
	t.Helper()
	s := serverStatus(t, addr)[fn]
	return s.Total, s.Running
}

// serverStatus is the server's status table by function.
func serverStatus(t *testing.T, addr string) map[string]protocol.FunctionStatus {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "status\r\n")
	lines, err := protocol.ReadAdminList(bufio.NewReader(conn))
	if err != nil {
		t.Fatal(err)
	}
	st, err := protocol.ParseStatus(lines)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]protocol.FunctionStatus{}
	for _, s := range st {
		out[s.Function] = s
	}
	return out
}

func TestCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "127.0.0.1:1", "  rev:\n    count: 2\n  reverse: {}\n", 5*time.Second)
	e.script("rev", "rev")
	out := e.must("check")
	if !strings.Contains(out, "OK, 2 functions") {
		t.Errorf("check said %q", out)
	}
	bad := filepath.Join(e.dir, "bad.yaml")
	os.WriteFile(bad, []byte("servers: [a:1]\nfunctions:\n  F:\n    max_jobs: lots\n"), 0o644)
	outb, err := exec.Command(gworkerdBin, "check", "--config", bad).CombinedOutput()
	out = string(outb)
	if err == nil || !strings.Contains(string(out), "functions.F.max_jobs") || !strings.Contains(string(out), "bad.yaml:4") {
		t.Errorf("check of a bad config: %v %q; want key and line", err, out)
	}
	os.WriteFile(bad, []byte("functions:\n  nosuch: {}\n"), 0o644)
	outb, err = exec.Command(gworkerdBin, "check", "--config", bad).CombinedOutput()
	out = string(outb)
	if err == nil || !strings.Contains(string(out), "functions.nosuch") || !strings.Contains(string(out), ":2") {
		t.Errorf("check of an unknown function: %v %q", err, out)
	}
	// prefetch on a handler run once per job (rev is executable) or built in.
	for _, fn := range []string{"rev", "reverse"} {
		os.WriteFile(bad, []byte("servers: [a:1]\njob_dirs: ["+strconv.Quote(e.jobs)+"]\nfunctions:\n  "+fn+":\n    prefetch: 2\n"), 0o644)
		outb, err = exec.Command(gworkerdBin, "check", "--config", bad).CombinedOutput()
		out = string(outb)
		if err == nil || !strings.Contains(out, "functions."+fn+".prefetch") || !strings.Contains(out, "applies to resident handlers") || !strings.Contains(out, "bad.yaml") {
			t.Errorf("check of prefetch on %s: %v %q; want the key, the file and why", fn, err, out)
		}
	}
}

// Two starts on one pid file: the second fails naming the pid; a stale
// pid file does not block a start.
func TestStartTwiceAndStalePidFile(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  reverse: {}\n", 5*time.Second)
	// A stale pid file from a crash: a pid, no lock.
	os.MkdirAll(filepath.Dir(e.pidFile), 0o755)
	os.WriteFile(e.pidFile, []byte("999999\n"), 0o644)
	out := e.must("start")
	pid := e.masterPid()
	if !strings.Contains(out, strconv.Itoa(pid)) {
		t.Errorf("start said %q, pid %d", out, pid)
	}
	out, err := e.run("start")
	if err == nil {
		t.Fatalf("second start succeeded: %s", out)
	}
	if !strings.Contains(out, "already runs with pid "+strconv.Itoa(pid)) {
		t.Errorf("second start said %q, want it to name pid %d", out, pid)
	}
	if _, err := e.run("start", "--foreground"); err == nil {
		t.Errorf("start --foreground beside a running daemon succeeded")
	}
	if e.masterPid() != pid {
		t.Errorf("pid file changed")
	}
	// start returns before the child registers: wait for it.
	waitFor(t, 30*time.Second, "the reverse child running", func() bool { return len(e.running("reverse")) == 1 })
	// status --json
	out = e.must("status", "--json")
	var resp supervise.Response
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Pid != pid || len(resp.Status.Children) != 1 {
		t.Errorf("status --json: %v %+v", err, resp)
	}
	out = e.must("status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantHead := []string{"FUNCTION", "PID", "STATE", "UPTIME", "JOBS", "CURRENT", "JOB", "AGE", "RSS", "RESTARTS", "LAST", "EXIT"}
	if len(lines) != 4 || lines[0] != "gworkerd pid "+strconv.Itoa(pid) || lines[1] != "memory: "+resp.Status.Memory ||
		strings.Join(strings.Fields(lines[2]), " ") != strings.Join(wantHead, " ") {
		t.Fatalf("status table: %q, want the master's pid, the memory accounting %q, a header %v and one child", out, resp.Status.Memory, wantHead)
	}
	lines = lines[2:]
	child := resp.Status.Children[0]
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "reverse" || f[1] != strconv.Itoa(child.Pid) || f[2] != "running" || f[4] != "0" {
		t.Errorf("status row %q, want reverse, pid %d, running, 0 jobs", lines[1], child.Pid)
	}
	// The table's columns line up: each header word starts where its
	// column does in the row.
	if h, r := lines[0], lines[1]; strings.Index(h, "PID") != strings.Index(r, strconv.Itoa(child.Pid)) {
		t.Errorf("PID column not aligned:\n%s\n%s", h, r)
	}
	// gworkerd ctl: scale, stop, start one function.
	e.must("ctl", "scale", "reverse", "3")
	waitFor(t, 15*time.Second, "reverse scaled to 3", func() bool { return len(e.running("reverse")) == 3 })
	if out := e.must("ctl", "status"); strings.Count(out, "reverse") != 3 {
		t.Errorf("ctl status: %q", out)
	}
	e.must("ctl", "stop", "reverse")
	waitFor(t, 15*time.Second, "reverse stopped", func() bool { return len(e.status().Children) == 0 })
	e.must("ctl", "start", "reverse")
	waitFor(t, 15*time.Second, "reverse started", func() bool { return len(e.running("reverse")) == 3 })
	before := e.running("reverse")
	e.must("ctl", "restart", "reverse")
	waitFor(t, 15*time.Second, "reverse restarted", func() bool {
		now := e.running("reverse")
		if len(now) != 3 {
			return false
		}
		for _, p := range now {
			if slices.Contains(before, p) {
				return false
			}
		}
		return true
	})
	// Each old child is stopped once its replacement runs; it may still
	// be finishing its exit when the new ones are all up.
	waitFor(t, 15*time.Second, "the old children gone", func() bool {
		for _, p := range before {
			if sysproc.Alive(p) {
				return false
			}
		}
		return true
	})
	for _, bad := range [][]string{{"ctl", "scale", "reverse"}, {"ctl", "scale", "nosuch", "1"}, {"ctl", "dance"}} {
		if out, err := e.run(bad...); err == nil {
			t.Errorf("gworkerd %v succeeded: %q", bad, out)
		}
	}
	// SIGUSR1 reopens the log file (logrotate).
	if err := os.Rename(e.log, e.log+".1"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a new log file", func() bool {
		b, _ := os.ReadFile(e.log)
		return strings.Contains(string(b), "log file reopened")
	})
	// A reload that changes a setting fixed at start is rejected whole.
	orig, _ := os.ReadFile(e.cfg)
	os.WriteFile(e.cfg, []byte(strings.Replace(string(orig), "stop_timeout: 5s", "stop_timeout: 7s", 1)), 0o644)
	if out, err := e.run("reload"); err == nil || !strings.Contains(out, "stop_timeout cannot change") {
		t.Errorf("reload changing stop_timeout: %v %q", err, out)
	}
	os.WriteFile(e.cfg, orig, 0o644)
	// restart: a new master.
	e.must("restart")
	pid2 := e.masterPid()
	reap(pid)
	if pid2 == pid || !sysproc.Alive(pid2) || sysproc.Alive(pid) {
		t.Errorf("restart: old pid %d, new pid %d", pid, pid2)
	}
	e.must("stop")
	reap(pid2)
	if _, err := os.Stat(e.pidFile); err == nil {
		t.Errorf("pid file left after stop")
	}
	if out := e.must("stop"); !strings.Contains(out, "not running") {
		t.Errorf("stop of a stopped daemon: %q", out)
	}
}

// A job_<name> dropped into a job directory is served after reload,
// without restarting the other functions; a removed one stops.
func TestReloadDiscoversScripts(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  rev:\n    count: 2\n", 5*time.Second)
	e.script("rev", "rev")
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 15*time.Second, "rev running", func() bool { return len(e.running("rev")) == 2 })
	revPids := e.running("rev")
	// The children are the gworkerd binary run again (never a bare fork).
	bin, err := filepath.EvalSymlinks(gworkerdBin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range revPids {
		exe, err := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe")
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		if err != nil || exe != bin || !bytes.Contains(cmdline, []byte("\x00child\x00")) {
			t.Errorf("child %d runs %q %q (%v), want %s child ...", p, exe, cmdline, err, bin)
		}
	}
	e.script("up", "tr a-z A-Z")
	e.must("reload")
	waitFor(t, 15*time.Second, "up running", func() bool { return len(e.running("up")) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got, err := submit(ctx, gd.Addr, "up", "hello", false); err != nil || strings.TrimSpace(got) != "HELLO" {
		t.Errorf("up job = %q, %v", got, err)
	}
	if got := e.running("rev"); len(got) != 2 || !(got[0] == revPids[0] && got[1] == revPids[1]) {
		t.Errorf("rev pids %v after reload, want unchanged %v", got, revPids)
	}
	for _, p := range revPids {
		if !sysproc.Alive(p) {
			t.Errorf("rev child %d gone", p)
		}
	}
	upPid := e.running("up")[0]
	if err := os.Remove(filepath.Join(e.jobs, "job_up")); err != nil {
		t.Fatal(err)
	}
	// The gworkerd binary's own reload path: SIGHUP.
	if err := unix.Kill(pid, unix.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "up stopped", func() bool {
		for _, c := range e.status().Children {
			if c.Function == "up" {
				return false
			}
		}
		return !sysproc.Alive(upPid)
	})
	if got := e.running("rev"); len(got) != 2 || got[0] != revPids[0] || got[1] != revPids[1] {
		t.Errorf("rev pids %v after the second reload, want %v", got, revPids)
	}
	// An edited script is rolled out: new children, one at a time.
	e.script("rev", "rev # v2")
	e.must("reload")
	waitFor(t, 20*time.Second, "rev replaced", func() bool {
		got := e.running("rev")
		return len(got) == 2 && len(e.status().Children) == 2 && got[0] != revPids[0] && got[0] != revPids[1] && got[1] != revPids[0] && got[1] != revPids[1]
	})
}

// stop while 20 children are mid-job: every job completes; afterwards no
// process of the daemon is left, no zombie, the pid file is gone.
func TestStopWhileBusy(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  sleeper:\n    count: 20\n", 20*time.Second)
	e.script("sleeper", "sleep 1; echo done")
	e.must("start")
	pid := e.masterPid()
	waitFor(t, 60*time.Second, "20 children", func() bool { return len(e.running("sleeper")) == 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := submit(ctx, gd.Addr, "sleeper", strconv.Itoa(i), false)
			if err == nil && strings.TrimSpace(got) != "done" {
				err = fmt.Errorf("result %q", got)
			}
			errs <- err
		}()
	}
	waitFor(t, 20*time.Second, "20 jobs running", func() bool {
		busy := 0
		for _, c := range e.status().Children {
			if c.CurrentJob != "" {
				busy++
			}
		}
		return busy == 20
	})
	children := e.allChildPids()
	e.must("stop")
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("job: %v", err)
		}
	}
	reap(pid)
	noneLeft(t, append(children, pid))
	if _, err := os.Stat(e.pidFile); err == nil {
		t.Errorf("pid file left after stop")
	}
	if _, err := os.Stat(e.sock); err == nil {
		t.Errorf("control socket left after stop")
	}
}

// stop past stop_timeout: the jobs still running are killed and the
// server requeues them.
func TestStopTimeoutRequeues(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  long:\n    count: 3\n", time.Second)
	e.script("long", "sleep 30; echo done")
	e.must("start")
	pid := e.masterPid()
	waitFor(t, 20*time.Second, "3 children", func() bool { return len(e.running("long")) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := submit(ctx, gd.Addr, "long", strconv.Itoa(i), true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "3 jobs running", func() bool {
		_, running := adminStatus(t, gd.Addr, "long")
		return running == 3
	})
	children := e.allChildPids()
	start := time.Now()
	e.must("stop")
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("stop took %v with stop_timeout 1s", el)
	}
	reap(pid)
	noneLeft(t, append(children, pid))
	total, running := adminStatus(t, gd.Addr, "long")
	if total != 3 || running != 0 {
		t.Errorf("server status after stop: total %d running %d; want the 3 jobs requeued", total, running)
	}
}

// SIGKILL of the master: every child exits within 2 s.
func TestMasterKilled(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  reverse:\n    count: 3\n", 5*time.Second)
	e.must("start")
	pid := e.masterPid()
	waitFor(t, 20*time.Second, "3 children", func() bool { return len(e.running("reverse")) == 3 })
	children := e.allChildPids()
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "every child to exit", func() bool {
		for _, c := range children {
			if sysproc.Alive(c) {
				return false
			}
		}
		return true
	})
	reap(pid)
	for _, c := range children {
		reap(c) // adopted by this subreaper once the master died
	}
	// A stale pid file from the crash does not block the next start.
	e.must("start")
	pid2 := e.masterPid()
	if pid2 == pid {
		t.Errorf("pid file not rewritten")
	}
	e.must("stop")
	reap(pid2)
}
