// Package cgrouptest gives tests a memory cgroup of their own.
package cgrouptest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/cgroup"
)

var seq atomic.Int64 // roots made by this process

// Root returns a fresh cgroup directory under the test process's own
// cgroup v1 memory cgroup, for cgroup.Options.Root (see New). It skips
// the test, saying why, where the kernel offers no writable one: cgroup
// v2 alone cannot give one to a test (its cgroup holds the test
// process, and a cgroup with processes cannot give its sub-cgroups the
// memory controller).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := New(t)
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	return dir
}

// New is Root without the skip: it says why there is no cgroup. At the
// end of the test every process still in the cgroup or under it is
// killed and the directories are removed (the test fails when they
// cannot be).
func New(t testing.TB) (string, error) {
	t.Helper()
	own, err := cgroup.Current(cgroup.Host(), cgroup.V1)
	if err != nil {
		return "", fmt.Errorf("no cgroup v1 memory hierarchy to test in: %w", err)
	}
	dir := filepath.Join(own.Dir, "gworkerd-test-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(seq.Add(1), 10))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("the memory cgroup %s is not writable: %w", own.Dir, err)
	}
	t.Cleanup(func() {
		if err := RemoveAll(dir, 10*time.Second); err != nil {
			t.Errorf("test cgroup left: %v", err)
		}
	})
	return dir, nil
}

// Dirs lists the cgroup directories under dir, deepest first.
func Dirs(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// RemoveAll kills the processes in dir and under it and removes the
// cgroups, deepest first, trying again until timeout while the killed
// processes exit.
func RemoveAll(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var last error
		for _, d := range append(Dirs(dir), dir) {
			g := cgroup.Group{Version: cgroup.V1, Dir: d}
			pids, _ := g.Procs()
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if err := g.Remove(); err != nil {
				last = err
			}
		}
		if last == nil || errors.Is(last, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(10 * time.Millisecond) // the killed processes to exit
	}
}
