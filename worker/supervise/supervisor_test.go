package supervise

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
	"github.com/gworkerd/gworkerd/internal/sysuser/sysusertest"
)

// run starts a supervisor and stops it at cleanup; it returns the
// supervisor and a function that stops it and waits for Run.
func run(t *testing.T, opts Options) (*Supervisor, func()) {
	t.Helper()
	if opts.Logger == nil {
		l, _ := test.NewNullLogger()
		l.SetLevel(logrus.DebugLevel)
		if testing.Verbose() {
			l.Out = os.Stderr
		}
		opts.Logger = l
	}
	if opts.Backoff.Initial == 0 {
		opts.Backoff = Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond}
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 5 * time.Second
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(opts.StopTimeout + 10*time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return s, stop
}

func status(t *testing.T, s *Supervisor) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// running returns the pids of the running children of fn.
func running(t *testing.T, s *Supervisor, fn string) []int {
	var pids []int
	for _, c := range status(t, s).Children {
		if c.Function == fn && c.State == StateRunning {
			pids = append(pids, c.Pid)
		}
	}
	return pids
}

func children(t *testing.T, s *Supervisor, fn string) []ChildStatus {
	var out []ChildStatus
	for _, c := range status(t, s).Children {
		if c.Function == fn {
			out = append(out, c)
		}
	}
	return out
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: -1}.withDefaults()
	tests := []struct {
		attempt int
		want    time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second}, {50, time.Second}}
	for _, tt := range tests {
		if got := b.Delay(tt.attempt, nil); got != tt.want {
			t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
	j := Backoff{Initial: time.Second, Max: time.Second, Jitter: 0.2}.withDefaults()
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		if d := j.Delay(3, rnd); d < 800*time.Millisecond || d > time.Second {
			t.Fatalf("jittered delay %v outside 1s less up to 20%%", d)
		}
	}
}

func TestStateText(t *testing.T) {
	t.Parallel()
	for s := StateStopped; s <= StateFatal; s++ {
		b, _ := s.MarshalText()
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("round trip of %v gave %v", s, back)
		}
	}
}

// A child killed with SIGKILL is reaped and replaced within the backoff.
func TestChildKilledIsReplaced(t *testing.T) {
	t.Parallel()
	f := helperSpec("idle", "idle")
	f.Count = 2
	s, _ := run(t, Options{Functions: []FunctionSpec{f}})
	waitFor(t, 10*time.Second, "2 running children", func() bool { return len(running(t, s, "idle")) == 2 })
	pids := running(t, s, "idle")
	// Each child leads its own process group (so that a group SIGKILL
	// at stop reaches whatever the handler started, and the terminal's
	// Ctrl-C does not).
	for _, pid := range pids {
		if pg, err := syscall.Getpgid(pid); err != nil || pg != pid {
			t.Errorf("child %d: process group %d (%v), want its own", pid, pg, err)
		}
	}
	victim := pids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, 10*time.Second, "a new child", func() bool {
		p := running(t, s, "idle")
		return len(p) == 2 && p[0] != victim && p[1] != victim
	})
	if el := time.Since(killed); el > 5*time.Second {
		t.Errorf("replacement took %v, backoff is at most 400ms", el)
	}
	if alive(victim) {
		t.Errorf("killed child %d still in /proc (not reaped)", victim)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(victim)); err == nil {
		t.Errorf("killed child %d is a zombie: the master did not reap it", victim)
	}
	var restarts int
	for _, c := range children(t, s, "idle") {
		restarts += c.Restarts
		if c.Restarts == 1 && !strings.Contains(c.LastExit, "killed") {
			t.Errorf("last exit = %q, want it to say killed", c.LastExit)
		}
	}
	if restarts != 1 {
		t.Errorf("restarts = %d, want 1", restarts)
	}
}

// A handler that crashes at start is restarted with growing delays; with
// FatalAfter it ends in fatal.
func TestCrashingChildBacksOff(t *testing.T) {
	t.Parallel()
	f := helperSpec("crash", "crash")
	fatal := helperSpec("crashfatal", "crash")
	fatal.FatalAfter = 2
	s, _ := run(t, Options{Functions: []FunctionSpec{f, fatal},
		Backoff: Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Jitter: -1}})
	start := time.Now()
	waitFor(t, 10*time.Second, "crashfatal to be fatal", func() bool {
		c := children(t, s, "crashfatal")
		return len(c) == 1 && c[0].State == StateFatal
	})
	// 100+200 ms of backoff before the third failure.
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("fatal after %v, want at least the 300ms of backoff", el)
	}
	time.Sleep(2 * time.Second) // observe the restart rate over a fixed window
	c := children(t, s, "crash")
	if len(c) != 1 {
		t.Fatalf("children = %+v", c)
	}
	// Delays 100,200,400,400,... ms: in ~2.3 s at most 9 restarts; a fork
	// storm would be hundreds.
	el := time.Since(start)
	maxRestarts := 3 + int(el/(400*time.Millisecond))
	if c[0].Restarts < 3 || c[0].Restarts > maxRestarts {
		t.Errorf("restarts in %v = %d, want 3..%d", el, c[0].Restarts, maxRestarts)
	}
	if c[0].State == StateFatal {
		t.Errorf("crash without fatal_after went fatal")
	}
	if !strings.Contains(c[0].LastExit, "exit status 3") {
		t.Errorf("last exit = %q", c[0].LastExit)
	}
	fc := children(t, s, "crashfatal")[0]
	if fc.Restarts != 3 {
		t.Errorf("crashfatal restarts = %d, want 3 (fatal_after 2)", fc.Restarts)
	}
	// ctl start takes it out of fatal.
	if err := s.StartFunction(context.Background(), "crashfatal"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "crashfatal to leave fatal", func() bool { return children(t, s, "crashfatal")[0].Restarts > 3 })
}

// Stop: a child that ignores SIGTERM is killed after StopTimeout and Run
// returns with no process left.
func TestStopKillsStubbornChild(t *testing.T) {
	t.Parallel()
	s, stop := run(t, Options{Functions: []FunctionSpec{helperSpec("stubborn", "stubborn"), helperSpec("idle", "idle")},
		StopTimeout: 500 * time.Millisecond})
	waitFor(t, 10*time.Second, "children running", func() bool {
		return len(running(t, s, "stubborn")) == 1 && len(running(t, s, "idle")) == 1
	})
	pids := append(running(t, s, "stubborn"), running(t, s, "idle")...)
	start := time.Now()
	stop()
	el := time.Since(start)
	if el < 500*time.Millisecond || el > 5*time.Second {
		t.Errorf("stop took %v, want about the 500ms stop timeout", el)
	}
	for _, p := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(p)); err == nil {
			t.Errorf("child %d still exists after Run returned", p)
		}
	}
}

// SIGKILL of the master: its children die with it (Pdeathsig).
func TestChildrenDieWithMaster(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=master")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PIDS ") {
		t.Fatalf("master said %q, %v", line, err)
	}
	var pids []int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "PIDS ")) {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, 2*time.Second, "every child to exit after the master's SIGKILL", func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

// Reload: a new function starts, a removed one stops, the others keep
// their pids; a changed one is replaced, the new child running before the
// old one goes.
func TestReload(t *testing.T) {
	t.Parallel()
	a, b := helperSpec("A", "idle"), helperSpec("B", "idle")
	a.Count = 2
	s, _ := run(t, Options{Functions: []FunctionSpec{a, b}})
	waitFor(t, 10*time.Second, "A and B running", func() bool {
		return len(running(t, s, "A")) == 2 && len(running(t, s, "B")) == 1
	})
	pidsA, pidB := running(t, s, "A"), running(t, s, "B")[0]
	c := helperSpec("C", "idle")
	ctx := context.Background()
	if err := s.Reload(ctx, []FunctionSpec{a, c}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "C running and B gone", func() bool {
		return len(running(t, s, "C")) == 1 && len(children(t, s, "B")) == 0
	})
	if got := running(t, s, "A"); !equalInts(got, pidsA) {
		t.Errorf("A pids %v after reload, want unchanged %v", got, pidsA)
	}
	if alive(pidB) {
		t.Errorf("B's child %d still alive", pidB)
	}
	for _, f := range status(t, s).Functions {
		if f.Function == "B" {
			t.Errorf("B still listed: %+v", f)
		}
	}
	// Change A: a rolling replacement; A always has 2 serving children.
	a.Version = "v2"
	if err := s.Reload(ctx, []FunctionSpec{a, c}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "A replaced", func() bool {
		st := children(t, s, "A")
		r := running(t, s, "A")
		if len(r) < 2 {
			t.Fatalf("A has %d running children during the rolling reload: %+v", len(r), st)
		}
		return len(st) == 2 && len(r) == 2 && !containsAny(r, pidsA)
	})
	// Scale only: no replacement.
	pidsA = running(t, s, "A")
	a.Count = 3
	if err := s.Reload(ctx, []FunctionSpec{a, c}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A scaled to 3", func() bool { return len(running(t, s, "A")) == 3 })
	if r := running(t, s, "A"); !containsAll(r, pidsA) {
		t.Errorf("scaling replaced children: %v, had %v", r, pidsA)
	}
}

func TestControlSocket(t *testing.T) {
	t.Parallel()
	s, _ := run(t, Options{Functions: []FunctionSpec{helperSpec("F", "idle")}})
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	cs := &ControlServer{Supervisor: s, Reload: func(context.Context) ([]string, error) { reloads++; return nil, nil }}
	served := make(chan error, 1)
	go func() { served <- cs.Serve(ln) }()
	defer func() {
		cs.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := ListenControl(path); err == nil {
		t.Errorf("a second ListenControl on a live socket succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := func(req Request) Response {
		t.Helper()
		r, err := Call(ctx, path, req)
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		return r
	}
	countRunning := func() int {
		r := call(Request{Cmd: "status"})
		n := 0
		for _, c := range r.Status.Children {
			if c.State == StateRunning {
				n++
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, "F running", func() bool { return countRunning() == 1 })
	call(Request{Cmd: "scale", Function: "F", N: 3})
	waitFor(t, 10*time.Second, "F scaled to 3", func() bool { return countRunning() == 3 })
	call(Request{Cmd: "stop", Function: "F"})
	waitFor(t, 10*time.Second, "F stopped", func() bool { return len(call(Request{Cmd: "status"}).Status.Children) == 0 })
	call(Request{Cmd: "start", Function: "F"})
	waitFor(t, 10*time.Second, "F started", func() bool { return countRunning() == 3 })
	before := running(t, s, "F")
	call(Request{Cmd: "restart", Function: "F"})
	waitFor(t, 15*time.Second, "F restarted", func() bool {
		r := running(t, s, "F")
		return len(r) == 3 && len(children(t, s, "F")) == 3 && !containsAny(r, before)
	})
	call(Request{Cmd: "reload"})
	if reloads != 1 {
		t.Errorf("reload hook called %d times", reloads)
	}
	if _, err := Call(ctx, path, Request{Cmd: "scale", Function: "nope", N: 1}); err == nil || !strings.Contains(err.Error(), "unknown function") {
		t.Errorf("scale of an unknown function: %v", err)
	}
	if _, err := Call(ctx, path, Request{Cmd: "dance"}); err == nil {
		t.Errorf("unknown command accepted")
	}
}

func TestNewRejectsDuplicates(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Functions: []FunctionSpec{{Name: "a"}, {Name: "a"}}})
	if err == nil {
		t.Fatal("duplicate function accepted")
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(canceled()); !errors.Is(err, context.Canceled) {
		t.Errorf("Status before Run with a canceled ctx: %v", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestLineLogger(t *testing.T) {
	t.Parallel()
	l, hook := test.NewNullLogger()
	w := &lineLogger{log: l, fields: logrus.Fields{"function": "f"}}
	w.setPid(42)
	_, _ = io.WriteString(w, "one\ntw")
	_, _ = io.WriteString(w, "o\r\n\n")
	var got []string
	for _, e := range hook.AllEntries() {
		got = append(got, e.Message)
		if e.Data["pid"] != 42 || e.Data["function"] != "f" {
			t.Errorf("fields = %v", e.Data)
		}
	}
	if want := []string{"child: one", "child: two"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", got, want)
	}

	// A child's own log line (logrus text) is logged once, structured,
	// at its level: not re-escaped inside a "child: " entry.
	hook.Reset()
	_, _ = io.WriteString(w, `level=warning msg="job failed" duration=1ms error="jobs: job_x exited 1: \"bad\" input" function=f job_handle="H:1"`+"\n")
	_, _ = io.WriteString(w, "level=panic msg=boom\n")
	es := hook.AllEntries()
	if len(es) != 2 {
		t.Fatalf("entries %v, want 2", es)
	}
	e := es[0]
	if e.Message != "job failed" || e.Level != logrus.WarnLevel || e.Data["error"] != `jobs: job_x exited 1: "bad" input` || e.Data["job_handle"] != "H:1" || e.Data["pid"] != 42 {
		t.Errorf("job failed entry: %v %q %v", e.Level, e.Message, e.Data)
	}
	if es[1].Level != logrus.ErrorLevel || es[1].Message != "boom" {
		t.Errorf("a child's panic line: %v %q, want error level", es[1].Level, es[1].Message)
	}
}

// FuzzParseLogLine: any line parses or is refused without panicking; a
// parsed line has a message field-free of level and msg.
func FuzzParseLogLine(f *testing.F) {
	for _, s := range []string{
		`level=warning msg="job failed" error="x \"y\"" function=f`,
		`level=info msg=registered server=127.0.0.1:4730`,
		"plain output", `a=b`, `level=debug msg="unterminated`, `level=bogus msg=x`, `=x level=info msg=y`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		_, _, fields, ok := parseLogLine(line)
		if ok {
			if _, bad := fields["level"]; bad {
				t.Fatalf("level kept as a field: %q", line)
			}
			if len(fields) > maxLogFields {
				t.Fatalf("%d fields", len(fields))
			}
		}
	})
}

func TestReadReports(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	rep := NewReporter(pw)
	go func() {
		rep.Ready()
		rep.JobStarted("H:1", time.Unix(0, 5))
		rep.JobFinished("H:1", false, errors.New("boom"), time.Millisecond)
		rep.Heartbeat()
		pw.Close()
	}()
	var got []Message
	if err := readReports(pr, func(ms []Message) { got = append(got, ms...) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Type != MsgReady || got[1].Handle != "H:1" || got[1].At != 5 ||
		got[2].OK || got[2].Error != "boom" || got[2].Dur != int64(time.Millisecond) || got[3].RSS <= 0 {
		t.Errorf("messages = %+v", got)
	}
	if err := readReports(strings.NewReader("{bad\n"), func([]Message) {}); err == nil {
		t.Error("bad line accepted")
	}
	long := `{"type":"job_end","error":"` + strings.Repeat("x", 10000) + `"}` + "\n"
	if err := readReports(strings.NewReader(long), func(ms []Message) { got = ms }); err != nil || len(got) != 1 || len(got[0].Error) != 10000 {
		t.Errorf("a line longer than the read buffer: %v, %d messages", err, len(got))
	}
	if err := readReports(strings.NewReader(strings.Repeat("x", maxReportLine+10)+"\n"), func([]Message) {}); err == nil {
		t.Error("a line over maxReportLine accepted")
	}
	var nilRep *Reporter
	nilRep.Ready() // no master: ignored
}

// TestReporterBatches: while Run is active, job messages wait for the
// next flush; a job that starts and ends within one wait is sent as its
// job_end alone, and one still running goes as its job_start.
func TestReporterBatches(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	rep := NewReporter(pw)
	rep.mu.Lock()
	rep.batching = true // as Run sets it
	rep.mu.Unlock()
	batches := make(chan []Message, 8)
	go func() {
		_ = readReports(pr, func(ms []Message) { batches <- ms })
		close(batches)
	}()
	t0 := time.Unix(100, 0)
	rep.JobStarted("H:1", t0) // held
	rep.JobFinished("H:1", true, nil, 3*time.Millisecond)
	rep.JobStarted("H:2", t0.Add(time.Second))
	go rep.Flush() // what Run does every ReportFlush; io.Pipe: the write waits for the reader
	if b := <-batches; len(b) != 2 || b[0].Type != MsgJobEnd || b[0].Handle != "H:1" || !b[0].OK || b[0].Dur != int64(3*time.Millisecond) ||
		b[1].Type != MsgJobStart || b[1].Handle != "H:2" || b[1].At != t0.Add(time.Second).UnixNano() {
		t.Errorf("first batch = %+v, want H:1's job_end alone and H:2's job_start", b)
	}
	rep.JobFinished("H:2", false, errors.New("boom"), time.Second)
	go rep.Flush()
	if b := <-batches; len(b) != 1 || b[0].Type != MsgJobEnd || b[0].Handle != "H:2" || b[0].Error != "boom" {
		t.Errorf("second batch = %+v, want H:2's job_end", b)
	}
	go rep.Ready() // not a job message: at once
	if b := <-batches; len(b) != 1 || b[0].Type != MsgReady {
		t.Errorf("third batch = %+v, want ready", b)
	}
	pw.Close()
	if b, ok := <-batches; ok {
		t.Errorf("extra batch %+v", b)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	return containsAll(a, b)
}

func containsAll(a, b []int) bool {
	for _, x := range b {
		found := false
		for _, y := range a {
			found = found || x == y
		}
		if !found {
			return false
		}
	}
	return true
}

func containsAny(a, b []int) bool {
	for _, x := range b {
		for _, y := range a {
			if x == y {
				return true
			}
		}
	}
	return false
}

func FuzzReadReports(f *testing.F) {
	f.Add([]byte("{\"type\":\"ready\"}\n{\"type\":\"job_start\",\"handle\":\"H:1\"}\n"))
	f.Add([]byte("{\"type\":\"heartbeat\",\"rss\":123}\n{\"type\":\"job_end\",\"handle\":\"H:1\",\"ok\":true}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		_ = readReports(bytes.NewReader(data), func(ms []Message) { n += len(ms) })
		if n > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d messages from %d lines", n, bytes.Count(data, []byte("\n"))+1)
		}
	})
}

// The log hub keeps the last lines per function in a ring, follows with
// a subscription, and drops (and counts) what a slow subscriber cannot
// take.
func TestLogHub(t *testing.T) {
	t.Parallel()
	clk := clocktest.New()
	h := newLogHub(clk, 3)
	w := &lineLogger{log: logrus.New(), hub: h, fn: "f", child: 7, stream: "stderr"}
	w.log.(*logrus.Logger).Out = io.Discard
	w.setPid(42)
	_, _ = io.WriteString(w, "l1\nl2\nl3\nl4\n")
	_, _ = io.WriteString(w, strings.Repeat("x", maxOutputLine+100)+"\n")
	h.add("g", 1, 1, "stdout", "other function")

	backlog, sub := h.subscribe("f")
	var got []string
	for _, l := range backlog {
		got = append(got, l.Line[:min(len(l.Line), 2)])
		if l.Function != "f" || l.Child != 7 || l.Pid != 42 || l.Stream != "stderr" || !l.Time.Equal(clk.Now()) {
			t.Errorf("line %+v", l)
		}
	}
	if want := "l3 l4 xx"; strings.Join(got, " ") != want {
		t.Errorf("backlog %q, want %q", got, want)
	}
	if n := len(backlog[2].Line); n != maxOutputLine {
		t.Errorf("long line kept with %d bytes, want %d", n, maxOutputLine)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < subscriberQueue+10; i++ {
		h.add("f", 7, 42, "stdout", "n"+strconv.Itoa(i))
	}
	lines, dropped, err := sub.Next(ctx)
	if err != nil || len(lines) != subscriberQueue || dropped != 10 || lines[0].Line != "n0" {
		t.Fatalf("Next = %d lines (first %+v), %d dropped, %v; want %d, 10", len(lines), lines[:min(len(lines), 1)], dropped, err, subscriberQueue)
	}
	h.add("f", 7, 42, "stdout", "after")
	lines, dropped, err = sub.Next(ctx)
	if err != nil || len(lines) != 1 || lines[0].Line != "after" || dropped != 0 || lines[0].Seq <= backlog[2].Seq {
		t.Fatalf("Next = %+v, %d, %v", lines, dropped, err)
	}
	// The byte bound: 16 KiB lines fill 1 MiB before 512 lines.
	long := strings.Repeat("y", maxOutputLine)
	for range subscriberBytes/maxOutputLine + 3 {
		h.add("f", 7, 42, "stdout", long)
	}
	lines, dropped, err = sub.Next(ctx)
	if err != nil || len(lines) != subscriberBytes/maxOutputLine || dropped != 3 {
		t.Fatalf("Next = %d long lines, %d dropped, %v; want %d, 3", len(lines), dropped, err, subscriberBytes/maxOutputLine)
	}
	sub.Close()
	sub.Close()
	h.add("f", 7, 42, "stdout", "closed")
	if len(h.subs) != 0 {
		t.Errorf("subscribers left: %v", h.subs)
	}
	short, scancel := context.WithCancel(context.Background())
	scancel()
	if _, _, err := sub.Next(short); !errors.Is(err, context.Canceled) {
		t.Errorf("Next after cancel: %v", err)
	}
}

// A function's user (the `user` config key) runs its children under that
// user's uid and gid. Only root can switch users: CI runs as root.
func TestChildRunsAsUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root; CI runs the tests as root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	// The test binary sits in a directory only root may enter; give
	// nobody a copy it can run.
	dir, err := os.MkdirTemp("", "gworkerd-user-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "supervise.test")
	copyExecutable(t, os.Args[0], exe)
	f := helperSpec("asuser", "idle")
	f.Path = exe
	f.User = "nobody"
	s, _ := run(t, Options{Functions: []FunctionSpec{f}})
	waitFor(t, 10*time.Second, "a running child", func() bool { return len(running(t, s, "asuser")) == 1 })
	pid := running(t, s, "asuser")[0]
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var uid, gid string
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(line, "Gid:"); ok {
			gid = strings.Fields(v)[0]
		}
	}
	if uid != u.Uid || gid != u.Gid {
		t.Errorf("child %d runs as uid %s gid %s, want nobody's %s %s", pid, uid, gid, u.Uid, u.Gid)
	}
}

// A function's user keeps its supplementary groups (initgroups), as
// su and systemd's User= do: a user created for the test, in a second
// group, runs its child with that group in /proc/PID/status's Groups.
func TestChildRunsAsUserWithGroups(t *testing.T) {
	t.Parallel()
	tu := sysusertest.UserInGroup(t)
	dir, err := os.MkdirTemp("", "gworkerd-user-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "supervise.test")
	copyExecutable(t, os.Args[0], exe)
	f := helperSpec("asgroups", "idle")
	f.Path = exe
	f.User = tu.Name
	s, _ := run(t, Options{Functions: []FunctionSpec{f}})
	waitFor(t, 10*time.Second, "a running child", func() bool { return len(running(t, s, "asgroups")) == 1 })
	pid := running(t, s, "asgroups")[0]
	if got := sysusertest.ProcIDs(t, pid); !got.Runs(tu) {
		t.Errorf("child %d runs with %+v, want %s's ids and its supplementary group %s (gid %s)", pid, got, tu.Name, tu.Group, tu.GroupID)
	}
}

// Scale, New and Reload keep to MaxChildrenPerFunction and MaxChildren
// (issue 10, item 14): a request beyond a bound changes nothing and
// names the bound.
func TestChildLimits(t *testing.T) {
	t.Parallel()
	fs := newFakeStarter()
	opts := Options{Starter: fs, Clock: clocktest.New(), Executable: "/fake", MaxChildrenPerFunction: 3, MaxChildren: 5,
		Functions: []FunctionSpec{{Name: "a", Count: 1}, {Name: "b", Min: 1, Max: 2}}}
	s, _ := run(t, opts)
	ctx := context.Background()
	desired := func() map[string]int {
		out := map[string]int{}
		for _, f := range status(t, s).Functions {
			out[f.Function] = f.Desired
		}
		return out
	}
	for _, tc := range []struct {
		fn         string
		n          int
		limit      string
		max, total int
	}{
		{"a", 4, LimitPerFunction, 3, 0},
		{"a", 1_000_000, LimitPerFunction, 3, 0},
		{"b", 4, LimitPerFunction, 3, 0},
		{"a", 3, "", 0, 0}, // 3 + b's max 2 = 5
		{"b", 3, LimitTotal, 5, 6},
		{"a", 2, "", 0, 0},
		{"b", 3, "", 0, 0}, // the range widened to 1..3: 2 + 3
	} {
		before := desired()
		err := s.Scale(ctx, tc.fn, tc.n)
		if tc.limit == "" {
			if err != nil {
				t.Fatalf("Scale(%s, %d) = %v, want nil", tc.fn, tc.n, err)
			}
			continue
		}
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != tc.limit || le.Max != tc.max || le.Total != tc.total || le.Function != tc.fn || le.N != tc.n {
			t.Fatalf("Scale(%s, %d) = %#v, want a LimitError %s %d (total %d)", tc.fn, tc.n, err, tc.limit, tc.max, tc.total)
		}
		if !strings.Contains(err.Error(), tc.limit) {
			t.Errorf("error %q does not name %s", err, tc.limit)
		}
		if got := desired(); !maps.Equal(got, before) {
			t.Errorf("Scale(%s, %d) refused, yet desired %v -> %v", tc.fn, tc.n, before, got)
		}
	}

	for _, specs := range [][]FunctionSpec{
		{{Name: "a", Count: 4}},
		{{Name: "a", Min: 1, Max: 4}},
		{{Name: "a", Count: 3}, {Name: "b", Count: 3}},
	} {
		o := opts
		o.Functions = specs
		var se *SpecError
		if _, err := New(o); !errors.As(err, &se) {
			t.Errorf("New(%+v) = %v, want a SpecError", specs, err)
		}
		if err := s.Reload(ctx, specs); !errors.As(err, &se) || !strings.Contains(err.Error(), "max_children") {
			t.Errorf("Reload(%+v) = %v, want a SpecError naming the bound", specs, err)
		}
	}
}

// copyExecutable copies the program src to dst, mode 0755, with cp: a
// copy written by this process could be inherited open for writing by a
// process a parallel test forks meanwhile, and exec would fail with
// "text file busy".
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v: %s", src, dst, err, out)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
}
