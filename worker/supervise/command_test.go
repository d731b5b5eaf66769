package supervise

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// hookLogger is a debug logger whose entries the test can read.
func hookLogger() (*logrus.Logger, *test.Hook) {
	l, hook := test.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	if testing.Verbose() {
		l.Out = os.Stderr
	}
	return l, hook
}

// procEnv returns the environment of pid, from /proc.
func procEnv(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatalf("environ of %d: %v", pid, err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// inheritsFD3 reports whether this process holds a file descriptor 3
// without close-on-exec (left open by whoever ran the tests): every
// child inherits it, report pipe or not.
func inheritsFD3() bool {
	_, err := os.Stat("/proc/self/fdinfo/3")
	return err == nil && !closeOnExecSet("/proc/self/fdinfo/3")
}

// closeOnExecSet reports whether the descriptor of an fdinfo file has
// close-on-exec set.
func closeOnExecSet(fdinfo string) bool {
	b, err := os.ReadFile(fdinfo)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&syscall.O_CLOEXEC != 0
		}
	}
	return false
}

// groupMembers returns the live (not zombie) processes of process group
// pgid, from /proc.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
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
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// grandchildPid waits for the forker helper pid to write its
// grandchild's pid into dir.
func grandchildPid(t *testing.T, dir string, forker int) int {
	t.Helper()
	name := filepath.Join(dir, "grandchild."+strconv.Itoa(forker))
	var pid int
	waitFor(t, 10*time.Second, "the grandchild's pid file", func() bool {
		b, err := os.ReadFile(name)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(string(b))
		return err == nil
	})
	return pid
}

// Command children: Count processes with Env and Dir applied, no report
// pipe; running once up for ReadyAfter; RSS read from /proc; a restart
// replaces them one at a time, never leaving fewer than Count running.
func TestCommandChildren(t *testing.T) {
	t.Parallel()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := commandSpec("cmd", "command", "GWORKERD_TEST_COLOUR=teal")
	f.Count = 3
	f.Dir = dir
	f.ReadyAfter = 300 * time.Millisecond
	s, _ := run(t, Options{Functions: []FunctionSpec{f}, TickInterval: 100 * time.Millisecond})
	waitFor(t, 10*time.Second, "3 running command children with their RSS", func() bool {
		n := 0
		for _, c := range children(t, s, "cmd") {
			if c.State == StateRunning && c.RSS > 0 {
				n++
			}
		}
		return n == 3
	})
	fd3 := !inheritsFD3()
	if !fd3 {
		t.Log("the tests inherited a file descriptor 3 without close-on-exec: not checking the children's")
	}
	for _, c := range children(t, s, "cmd") {
		if !c.Command {
			t.Errorf("child %d: Command false in its status", c.Pid)
		}
		if c.Uptime < f.ReadyAfter {
			t.Errorf("child %d running after %v, before ReadyAfter %v", c.Pid, c.Uptime, f.ReadyAfter)
		}
		env := strings.Join(procEnv(t, c.Pid), "\n")
		if !strings.Contains(env, "\nGWORKERD_TEST_COLOUR=teal") {
			t.Errorf("child %d: Env not applied", c.Pid)
		}
		if strings.Contains(env, EnvReportFD+"=") {
			t.Errorf("child %d: %s set", c.Pid, EnvReportFD)
		}
		if cwd, err := os.Readlink("/proc/" + strconv.Itoa(c.Pid) + "/cwd"); err != nil || cwd != dir {
			t.Errorf("child %d: working directory %q (%v), want %q", c.Pid, cwd, err, dir)
		}
		if fd3 {
			// The child's runtime opens descriptors of its own (the race
			// detector's, the poller's): what must not be there is one
			// of ours, a pipe or socket this process also holds.
			for _, fd := range sharedFDs(t, c.Pid) {
				t.Errorf("child %d inherited descriptor %s", c.Pid, fd)
			}
		}
		if pg, err := syscall.Getpgid(c.Pid); err != nil || pg != c.Pid {
			t.Errorf("child %d: process group %d (%v), want its own", c.Pid, pg, err)
		}
	}

	before := running(t, s, "cmd")
	if err := s.RestartFunction(context.Background(), "cmd"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "cmd replaced one child at a time", func() bool {
		r := running(t, s, "cmd")
		if len(r) < 3 {
			t.Fatalf("%d running children during the rolling restart", len(r))
		}
		return len(r) == 3 && len(children(t, s, "cmd")) == 3 && !containsAny(r, before)
	})
	for _, pid := range before {
		waitFor(t, 10*time.Second, "replaced child "+strconv.Itoa(pid)+" gone", func() bool { return !alive(pid) })
	}
	for _, c := range children(t, s, "cmd") {
		if c.Restarts != 0 {
			t.Errorf("child %d: %d restarts; a rolling restart is not a failure", c.Pid, c.Restarts)
		}
	}
}

// A command child killed with SIGKILL is reaped and replaced after the
// backoff.
func TestCommandKilledIsReplaced(t *testing.T) {
	t.Parallel()
	f := commandSpec("cmd", "command")
	f.Count = 2
	f.ReadyAfter = 100 * time.Millisecond
	s, _ := run(t, Options{Functions: []FunctionSpec{f}})
	waitFor(t, 10*time.Second, "2 running children", func() bool { return len(running(t, s, "cmd")) == 2 })
	pids := running(t, s, "cmd")
	victim := pids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a new child running", func() bool {
		p := running(t, s, "cmd")
		return len(p) == 2 && !containsAll(p, []int{victim})
	})
	if _, err := os.Stat("/proc/" + strconv.Itoa(victim)); err == nil {
		t.Errorf("killed child %d still in /proc: not reaped", victim)
	}
	var restarts int
	for _, c := range children(t, s, "cmd") {
		restarts += c.Restarts
		if c.Restarts == 1 && !strings.Contains(c.LastExit, "killed") {
			t.Errorf("last exit = %q, want it to say killed", c.LastExit)
		}
	}
	if restarts != 1 {
		t.Errorf("restarts = %d, want 1", restarts)
	}
}

// A command child that exits before ReadyAfter failed to start: it never
// runs, backs off, and FatalAfter gives up on it. One that exits after
// ReadyAfter ran.
func TestCommandExitBeforeReadyAfter(t *testing.T) {
	t.Parallel()
	early := commandSpec("early", "command", envExitAfter+"=100ms")
	// Far beyond 100ms plus the slowest start of a -race helper on a
	// loaded machine: early must never count as started.
	early.ReadyAfter = time.Minute
	early.FatalAfter = 2
	late := commandSpec("late", "command", envExitAfter+"=500ms")
	late.ReadyAfter = 100 * time.Millisecond
	log, hook := hookLogger()
	s, _ := run(t, Options{Functions: []FunctionSpec{early, late}, Logger: log,
		Backoff: Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Jitter: -1}})
	waitFor(t, 20*time.Second, "early to be fatal", func() bool {
		c := children(t, s, "early")
		return len(c) == 1 && c[0].State == StateFatal
	})
	c := children(t, s, "early")[0]
	if c.Restarts != 3 || !strings.Contains(c.LastExit, "exit status 4") {
		t.Errorf("early: %d restarts, last exit %q; want 3 (fatal_after 2), exit status 4", c.Restarts, c.LastExit)
	}
	waitFor(t, 20*time.Second, "late to run, exit and restart", func() bool {
		c := children(t, s, "late")
		return len(c) == 1 && c[0].Restarts >= 1
	})
	ran := map[string]bool{}
	for _, e := range hook.AllEntries() {
		if e.Message == "child state" && e.Data["state"] == StateRunning.String() {
			ran[e.Data["function"].(string)] = true
		}
	}
	if ran["early"] {
		t.Error("early ran although it never stayed up for ReadyAfter")
	}
	if !ran["late"] {
		t.Error("late never ran although it stayed up longer than ReadyAfter")
	}
}

// A command that ignores SIGTERM and forks is killed with its
// grandchild after Grace, whether the grandchild shares its process
// group or has one of its own; nothing is left.
func TestCommandStopKillsForkingProgram(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
	}{{"same group", nil}, {"own group", []string{envOwnGroup + "=1"}}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := commandSpec("fork", "forker", tt.env...)
			f.Dir = dir
			f.ReadyAfter = 100 * time.Millisecond
			f.Grace = 400 * time.Millisecond
			s, _ := run(t, Options{Functions: []FunctionSpec{f}})
			waitFor(t, 10*time.Second, "a running child", func() bool { return len(running(t, s, "fork")) == 1 })
			pid := running(t, s, "fork")[0]
			gc := grandchildPid(t, dir, pid)
			if !alive(gc) {
				t.Fatalf("grandchild %d not alive", gc)
			}
			start := time.Now()
			if err := s.StopFunction(context.Background(), "fork"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the child gone", func() bool { return len(children(t, s, "fork")) == 0 })
			if el := time.Since(start); el < f.Grace {
				t.Errorf("child gone after %v, before the grace period %v: SIGTERM was not ignored?", el, f.Grace)
			}
			waitFor(t, 10*time.Second, "no process left", func() bool {
				return !alive(pid) && !alive(gc) && len(groupMembers(t, pid)) == 0
			})
		})
	}
}

// memory_limit recycles a command child whose process tree outgrows it,
// though the child's own RSS stays below.
func TestCommandMemoryLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const limit = 64 << 20
	f := commandSpec("mem", "forker", envAllocMB+"=64")
	f.Dir = dir
	f.ReadyAfter = 200 * time.Millisecond
	f.Grace = 200 * time.Millisecond
	f.MemoryLimit = limit
	log, hook := hookLogger()
	s, _ := run(t, Options{Functions: []FunctionSpec{f}, Logger: log, TickInterval: 100 * time.Millisecond})
	var first int
	waitFor(t, 10*time.Second, "a child", func() bool {
		c := children(t, s, "mem")
		if len(c) > 0 {
			first = c[0].Pid
		}
		return first != 0
	})
	gc := grandchildPid(t, dir, first)
	if own := RSS(first); own >= limit {
		t.Fatalf("the child alone has %d bytes resident, over the limit: the test proves nothing", own)
	}
	waitFor(t, 20*time.Second, "the first child recycled for memory_limit", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Message == "recycling child" && e.Data["pid"] == first {
				if e.Data["reason"] != "memory_limit" || e.Data["rss"].(int64) < limit {
					t.Fatalf("recycled: %v", e.Data)
				}
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "the first child and its grandchild gone", func() bool { return !alive(first) && !alive(gc) })
	waitFor(t, 10*time.Second, "a replacement", func() bool {
		c := children(t, s, "mem")
		return len(c) >= 1 && c[0].Pid != first && c[0].Pid != 0
	})
	for _, c := range children(t, s, "mem") {
		if c.Restarts != 0 {
			t.Errorf("child %d: %d restarts; recycling is not a failure", c.Pid, c.Restarts)
		}
	}
}

// TreeRSS counts the descendants of a process.
func TestTreeRSS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := commandSpec("tree", "forker", envAllocMB+"=32")
	f.Dir = dir
	s, _ := run(t, Options{Functions: []FunctionSpec{f}})
	var pid int
	waitFor(t, 10*time.Second, "a child", func() bool {
		c := children(t, s, "tree")
		if len(c) > 0 {
			pid = c[0].Pid
		}
		return pid != 0
	})
	gc := grandchildPid(t, dir, pid)
	waitFor(t, 10*time.Second, "the grandchild's 32 MiB resident", func() bool { return RSS(gc) >= 32<<20 })
	// Each RSS is read at its own instant and a process's own RSS moves
	// (the runtime returns memory): a 4 MiB margin keeps that out, while
	// a tree without the grandchild's 32 MiB still fails.
	const margin = 4 << 20
	if own, tree := RSS(pid), TreeRSS(pid); tree < own+32<<20-margin {
		t.Errorf("TreeRSS(child) = %d, want at least its own %d + 32 MiB", tree, own)
	}
	if own, tree := SelfRSS(), TreeRSS(os.Getpid()); tree < own+32<<20-margin {
		t.Errorf("TreeRSS(self) = %d, want at least SelfRSS %d + 32 MiB", tree, own)
	}
	if n := TreeRSS(1 << 30); n != 0 {
		t.Errorf("TreeRSS of no process = %d", n)
	}
}

// New and Reload reject a command without a path or with max_jobs.
func TestCommandSpecRejected(t *testing.T) {
	t.Parallel()
	ok := FunctionSpec{Name: "c", Count: 1, Command: true, Path: "/bin/true", MaxIdle: time.Minute}
	if _, err := New(Options{Functions: []FunctionSpec{ok}}); err != nil {
		t.Fatalf("New(%+v): %v", ok, err)
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		spec FunctionSpec
	}{
		{"max_jobs", FunctionSpec{Name: "c", Count: 1, Command: true, Path: "/bin/true", MaxJobs: 10}},
		{"no path", FunctionSpec{Name: "c", Count: 1, Command: true}},
	} {
		_, err := New(Options{Functions: []FunctionSpec{tt.spec}})
		var se *SpecError
		if !errors.As(err, &se) || se.Function != "c" || se.Op != "" {
			t.Errorf("%s: New: %v, want a SpecError", tt.name, err)
		}
		err = s.Reload(context.Background(), []FunctionSpec{tt.spec})
		if !errors.As(err, &se) || se.Op != "reload" {
			t.Errorf("%s: Reload: %v, want a SpecError", tt.name, err)
		}
	}
}

// The splay added to max_lifetime is 0..LifetimeSplay when set (else up
// to 10%), for command children as for any other.
func TestFakeLifetimeSplay(t *testing.T) {
	t.Parallel()
	const n = 6
	for _, tt := range []struct {
		name  string
		splay time.Duration
	}{{"1s", time.Second}, {"30s", 30 * time.Second}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := FunctionSpec{Name: "f", Count: n, Command: true, Path: "/fake", ReadyAfter: -1,
				MaxLifetime: 100 * time.Second, LifetimeSplay: tt.splay}
			s, fs, clk := fakeRun(t, f, Options{TickInterval: time.Second, Rand: rand.New(rand.NewPCG(1, 2))})
			for range n {
				if p := nextStart(t, fs); !p.spec.NoReportPipe {
					t.Fatalf("command child started with a report pipe: %+v", p.spec)
				}
			}
			waitFor(t, 5*time.Second, "all running at once (ReadyAfter < 0)", func() bool { return len(running(t, s, "f")) == n })
			clk.Advance(99 * time.Second)
			noStart(t, s, fs)
			// Each recycle starts a replacement: collect the times.
			const step = 500 * time.Millisecond
			var starts []time.Duration
			for el := 99 * time.Second; el < 140*time.Second && len(starts) < n; {
				clk.Advance(step)
				el += step
				status(t, s)
			collect:
				for {
					select {
					case <-fs.started:
						starts = append(starts, el)
					case <-time.After(20 * time.Millisecond):
						break collect
					}
				}
			}
			if len(starts) != n {
				t.Fatalf("%d recycles by 140s, want %d", len(starts), n)
			}
			latest := time.Duration(0)
			for _, at := range starts {
				// One tick and one step of lateness at most.
				if at < f.MaxLifetime || at > f.MaxLifetime+tt.splay+time.Second+step {
					t.Errorf("recycled at %v, want within %v + 0..%v", at, f.MaxLifetime, tt.splay)
				}
				latest = max(latest, at)
			}
			if tt.splay > f.MaxLifetime/10 && latest <= f.MaxLifetime*11/10+time.Second+step {
				t.Errorf("latest recycle at %v: the splay looks bounded by 10%%, not %v", latest, tt.splay)
			}
		})
	}
}

// sharedFDs lists the descriptors above 2 of pid that are pipes or
// sockets this process holds too (the same inode) with close-on-exec
// set: ones the supervisor leaked. A descriptor this process itself
// inherited without close-on-exec (from the shell that ran the tests)
// reaches every child whatever the supervisor does, and is left out.
func sharedFDs(t *testing.T, pid int) []string {
	t.Helper()
	ours := map[string]bool{}
	self, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range self {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && closeOnExecSet("/proc/self/fdinfo/"+e.Name()) {
			ours[l] = true
		}
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	theirs, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	for _, e := range theirs {
		if n, err := strconv.Atoi(e.Name()); err != nil || n <= 2 {
			continue
		}
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if (strings.HasPrefix(l, "pipe:") || strings.HasPrefix(l, "socket:")) && ours[l] {
			shared = append(shared, e.Name()+" -> "+l)
		}
	}
	return shared
}
