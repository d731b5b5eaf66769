package supervise

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/internal/cgroup/cgrouptest"
)

// memoryCgroupOf returns the cgroup v1 memory path of a /proc cgroup
// file (a process's or a thread's).
func memoryCgroupOf(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,") {
			return parts[2]
		}
	}
	t.Fatalf("no memory cgroup in %s: %q", file, b)
	return ""
}

// A child given a cgroup is born in it: the first thing it runs already
// reads that cgroup (cgroup v1: the starter's thread moves into it for
// the fork). The starter's thread goes back: every thread of this
// process stays in its cgroup.
func TestExecStarterCgroup(t *testing.T) {
	t.Parallel()
	root := cgrouptest.Root(t)
	tr, err := cgroup.Open(cgroup.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	}()
	home := memoryCgroupOf(t, "/proc/self/cgroup")
	s := &ExecStarter{}
	defer s.Close()
	for i := 0; i < 5; i++ {
		g, err := tr.NewChild()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		p, err := s.Start(ChildSpec{Function: "cg", Path: "/bin/sh", Args: []string{"-c", "cat /proc/self/cgroup"},
			Stdout: &out, Stderr: &out, NoReportPipe: true, Cgroup: g})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("child: %v: %s", err, out.String())
		}
		want := home + strings.TrimPrefix(g.Dir, filepath.Dir(filepath.Dir(filepath.Dir(g.Dir))))
		if !strings.Contains(out.String(), ":memory:"+want+"\n") {
			t.Errorf("start %d: the child's first process reads %q, want memory cgroup %s", i, out.String(), want)
		}
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if got := memoryCgroupOf(t, "/proc/self/task/"+task.Name()+"/cgroup"); got != home {
			t.Errorf("thread %s in memory cgroup %s, want %s", task.Name(), got, home)
		}
	}
}

// At the end of Run, what a child left in its cgroup is killed (here no
// subreaper adopts it: the orphans logic does not see it) and the
// children's cgroups are removed; a command child's memory is its
// cgroup's, which holds what it detached.
func TestCgroupsRemovedAtStop(t *testing.T) {
	t.Parallel()
	root := cgrouptest.Root(t)
	tr, err := cgroup.Open(cgroup.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "left.pid")
	// The helper's grandchild (it ignores SIGTERM and holds 64 MiB) in
	// a session of its own, out of the child's process group and, once
	// the subshell has exited, out of its tree.
	f := commandSpec("cmd", "grandchild", envAllocMB+"=64")
	f.ReadyAfter = -1
	f.Path = "/bin/sh"
	f.Args = []string{"-c", `(setsid "$0" -test.run='^$' </dev/null >/dev/null 2>&1 & echo $! >` + pidFile + `.tmp; mv ` + pidFile + `.tmp ` + pidFile + `)
exec sleep 1000`, os.Args[0]}
	log, hook := hookLogger()
	s, stop := run(t, Options{Functions: []FunctionSpec{f}, Logger: log, Cgroups: tr, TickInterval: 100 * time.Millisecond})
	var left int
	waitFor(t, 10*time.Second, "the detached process", func() bool {
		b, _ := os.ReadFile(pidFile)
		left, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return left > 0
	})
	defer syscall.Kill(left, syscall.SIGKILL)
	if got := memoryCgroupOf(t, "/proc/"+strconv.Itoa(left)+"/cgroup"); !strings.Contains(got, "/gworkerd-"+strconv.Itoa(os.Getpid())+"/child-") {
		t.Fatalf("the detached process is in %s, want its child's cgroup", got)
	}
	waitFor(t, 10*time.Second, "the command's memory: its cgroup's, the detached 64 MiB included", func() bool {
		c := children(t, s, "cmd")
		return len(c) == 1 && c[0].RSS >= 64<<20
	})
	if st, err := s.Status(t.Context()); err != nil || st.Memory != tr.String() {
		t.Errorf("status memory %q (%v), want %q", st.Memory, err, tr.String())
	}
	stop()
	if alive(left) {
		t.Errorf("the detached process %d outlived Run", left)
	}
	if dirs := cgrouptest.Dirs(tr.Dir()); len(dirs) != 0 {
		t.Errorf("cgroups left after Run: %v", dirs)
	}
	killed := false
	for _, e := range hook.AllEntries() {
		killed = killed || e.Message == "process left in a child's cgroup at stop: killing it" && e.Data["pid"] == left
	}
	if !killed {
		t.Errorf("no log of the process killed at stop")
	}
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
}
