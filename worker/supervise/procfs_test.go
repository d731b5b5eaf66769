package supervise

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// scanTree finds a process's descendants, grandchildren included, and
// nothing else.
func TestScanTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make([]byte, 32)
	n, err := out.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", line[:n], err)
	}
	t.Cleanup(func() { _ = exec.Command("kill", strconv.Itoa(gc)).Run() })

	self := os.Getpid()
	var tree procTable
	waitFor(t, 10*time.Second, "the grandchild in the tree", func() bool {
		tree = scanTree(self)
		_, ok := tree[gc]
		return ok
	})
	if _, ok := tree[cmd.Process.Pid]; !ok {
		t.Errorf("child %d missing from scanTree: %v", cmd.Process.Pid, tree)
	}
	if _, ok := tree[1]; ok {
		t.Error("scanTree(self) holds pid 1")
	}
	for pid := range tree {
		// Every process in the tree descends from self.
		p, hops := pid, 0
		for p != self && hops < len(tree) {
			p, hops = tree[p].ppid, hops+1
		}
		if p != self {
			t.Errorf("pid %d in scanTree(self) does not descend from %d", pid, self)
		}
	}
	if len(scanTree(1<<30)) != 0 {
		t.Error("scanTree of no process is not empty")
	}
}

// cmdline names a process by its arguments, and by its command name in
// brackets when its command line reads empty (a zombie here; a process
// inside execve has the same moment).
func TestCmdline(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "1234")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Start returns once execve has begun, so "[sleep]" may come first.
	deadline := time.Now().Add(30 * time.Second)
	for got := cmdline(pid); got != "sleep 1234"; got = cmdline(pid) {
		if got != "[sleep]" || time.Now().After(deadline) {
			t.Fatalf("live: %q, want %q (or [sleep] inside its execve)", got, "sleep 1234")
		}
		time.Sleep(time.Millisecond)
	}
	_ = cmd.Process.Kill()
	// Not reaped yet: wait for the zombie, without reaping it.
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, 1 /* P_PID */, uintptr(pid), uintptr(unsafe.Pointer(&info)), syscall.WEXITED|0x01000000 /* WNOWAIT */, 0, 0)
		if e != syscall.EINTR {
			break
		}
	}
	if got := cmdline(pid); got != "[sleep]" {
		t.Errorf("zombie: %q, want [sleep]", got)
	}
	_ = cmd.Wait()
	if got := cmdline(pid); got != "" {
		t.Errorf("gone: %q, want empty", got)
	}
}
