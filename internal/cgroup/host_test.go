package cgroup_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/internal/cgroup/cgrouptest"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// On the real kernel: a process started from a thread moved into a
// child's cgroup is born there (the thread goes back after the fork),
// and a process it detaches (setsid, double fork) stays there: the
// cgroup's working set counts the memory it holds. The cgroups are
// removed at the end.
func TestTreeOnHost(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "python3")
	root := cgrouptest.Root(t)
	tr, err := cgroup.Open(cgroup.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr.NewChild()
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild touches 96 MiB and waits for its stdin to close.
	cmd := exec.Command("sh", "-c", `setsid python3 -c '
import sys, os
b = bytearray(96 << 20)
for i in range(0, len(b), 4096): b[i] = 1
print(os.getpid(), flush=True)
sys.stdin.read()' &`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := syscall.Gettid()
		if err := c.AddThread(tid); err != nil {
			t.Fatal(err)
		}
		err = cmd.Start()
		if err := tr.Home().AddThread(tid); err != nil {
			t.Fatal(err)
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("grandchild: %v", err)
	}
	_ = cmd.Wait() // sh exits at once; the grandchild stays
	procs, err := c.Procs()
	if err != nil || len(procs) != 1 || strings.TrimSpace(line) != strconv.Itoa(procs[0]) {
		t.Fatalf("processes in the child's cgroup %v (%v), want the grandchild %s", procs, err, strings.TrimSpace(line))
	}
	ws, err := c.WorkingSet()
	if err != nil || ws < 96<<20 {
		t.Errorf("working set %d, %v; want at least the 96 MiB the grandchild holds", ws, err)
	}
	if home, _ := tr.Home().Procs(); !slices.Contains(home, os.Getpid()) {
		t.Errorf("the test process is no longer in its cgroup %s", tr.Home().Dir)
	}
	if err := c.Remove(); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("remove with a process in it: %v, want EBUSY", err)
	}
	stdin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Remove() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("child cgroup not removed: %v", c.Remove())
		}
		time.Sleep(10 * time.Millisecond) // the grandchild to exit
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if left := cgrouptest.Dirs(root); len(left) != 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// Without a given root, Open uses the process's own cgroup: cgroup v2
// when its memory controller is available and writable, else v1, saying
// why not v2. (Here, a hybrid host, v2 has no memory controller: v1.)
func TestOpenHost(t *testing.T) {
	cgrouptest.Root(t) // skips where no v1 memory cgroup is writable
	tr, err := cgroup.Open(cgroup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	}()
	t.Logf("%s; v2 skipped: %s", tr, tr.Skipped())
	if tr.Version() == cgroup.V1 && !strings.HasPrefix(tr.Skipped(), "cgroup v2: ") {
		t.Errorf("v1 chosen, skipped %q: want why v2 was not used", tr.Skipped())
	}
	if tr.Version() == cgroup.V2 && tr.Skipped() != "" {
		t.Errorf("v2 chosen, skipped %q", tr.Skipped())
	}
}
