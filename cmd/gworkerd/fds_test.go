package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// lsFds parses `ls -l /proc/PID/fd/` into fd -> link target, leaving
// out the descriptor ls itself reads the directory through.
func lsFds(t *testing.T, out string) map[int]string {
	t.Helper()
	fds := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		before, target, ok := strings.Cut(line, " -> ")
		if !ok {
			continue
		}
		f := strings.Fields(before)
		fd, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			t.Fatalf("ls line %q", line)
		}
		if strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue // ls's own directory
		}
		fds[fd] = target
	}
	return fds
}

func fdNumbers(fds map[int]string) []int {
	var out []int
	for fd := range fds {
		out = append(out, fd)
	}
	slices.Sort(out)
	return out
}

// A job executable gets exactly fds 0-2 and the progress fd 3; a
// gworkerd child 0-2 and its report pipe 3. Neither gets the pid file
// (issue 10, item 12: a job rewrote it).
func TestInheritedDescriptors(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  fds: {}\n  reverse: {}\n", 5*time.Second)
	// The shell's exec passes on what the job got (its own descriptor of
	// the script is close-on-exec).
	e.script("fds", "exec ls -l /proc/self/fd/")
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 20*time.Second, "fds and reverse running", func() bool {
		return len(e.running("fds")) == 1 && len(e.running("reverse")) == 1
	})
	pidFile, err := filepath.EvalSymlinks(e.pidFile)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := submit(ctx, gd.Addr, "fds", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if fds := lsFds(t, got); !slices.Equal(fdNumbers(fds), []int{0, 1, 2, 3}) || !strings.HasPrefix(fds[3], "pipe:") {
		t.Errorf("job executable's descriptors %v, want exactly 0 1 2 and the progress pipe 3:\n%s", fds, got)
	}

	// A gworkerd child: 0-2 and the report pipe; whatever else it has it
	// opened itself, and neither the pid file nor the job table (mapped
	// and closed at the start) is among them.
	for _, fn := range []string{"fds", "reverse"} {
		child := e.running(fn)[0]
		dir := "/proc/" + strconv.Itoa(child) + "/fd/"
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var have []int
		for _, ent := range ents {
			fd, _ := strconv.Atoi(ent.Name())
			target, _ := os.Readlink(dir + ent.Name())
			if target == pidFile {
				t.Errorf("%s child %d has the pid file open as fd %d", fn, child, fd)
			}
			if strings.Contains(target, "gworkerd-jobs") {
				t.Errorf("%s child %d keeps the job table's descriptor as fd %d after mapping it", fn, child, fd)
			}
			if fd == 3 && !strings.HasPrefix(target, "pipe:") {
				t.Errorf("%s child %d: fd 3 is %s, want the report pipe", fn, child, target)
			}
			have = append(have, fd)
		}
		for _, fd := range []int{0, 1, 2, 3} {
			if !slices.Contains(have, fd) {
				t.Errorf("%s child %d lacks fd %d (has %v)", fn, child, fd, have)
			}
		}
	}
}

// A command (a worker program gworkerd only supervises) gets exactly
// fds 0-2.
func TestCommandInheritsStdioOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "127.0.0.1:1", "", 5*time.Second)
	out := filepath.Join(e.dir, "cmdfds")
	// ls runs as a fork of the shell: it has what the command got, its
	// redirected stdout and its own descriptor of the directory.
	fns := fmt.Sprintf("  cmd:\n    command: [sh, -c, 'ls -l /proc/self/fd/ 2>&1 >%[1]s.tmp; mv %[1]s.tmp %[1]s; exec sleep 600']\n", out)
	cfg, _ := os.ReadFile(e.cfg)
	if err := os.WriteFile(e.cfg, append(cfg, fns...), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 20*time.Second, "the command's listing", func() bool {
		_, err := os.Stat(out)
		return err == nil
	})
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fds := lsFds(t, string(b)); !slices.Equal(fdNumbers(fds), []int{0, 1, 2}) {
		t.Errorf("command's descriptors %v, want exactly 0 1 2:\n%s", fds, b)
	}
}

// stop signals the master that holds the pid file's lock, never the
// process the file's text names: a pid file rewritten to the pid of an
// unrelated process leaves that process alone, and stop still stops the
// master (issue 10, item 12).
func TestStopIgnoresRewrittenPidFile(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  reverse: {}\n", time.Second)
	e.must("start")
	master := e.masterPid()
	defer reap(master)
	waitFor(t, 20*time.Second, "reverse running", func() bool { return len(e.running("reverse")) == 1 })

	victim := exec.Command("sleep", "600")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- victim.Wait() }()
	defer func() {
		_ = victim.Process.Kill()
		<-exited
	}()
	// Rewritten in place, as a job holding the descriptor would: the
	// master keeps its lock on the file.
	if err := os.WriteFile(e.pidFile, []byte(strconv.Itoa(victim.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e.must("stop")
	if !strings.Contains(out, "stopped (pid "+strconv.Itoa(master)+")") {
		t.Errorf("stop said %q, want it to name the master, pid %d", out, master)
	}
	select {
	case err := <-exited:
		t.Errorf("stop killed the unrelated process %d named in the pid file: %v", victim.Process.Pid, err)
	default:
	}
	if sysproc.Alive(master) {
		t.Errorf("master %d still runs after stop", master)
	}
}
