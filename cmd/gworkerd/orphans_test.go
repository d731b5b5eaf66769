package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// orphanScript is shell text that leaves two processes marked with
// marker behind, each detached with a double fork and setsid: `sleep
// 1000`, and `sleep 1001`, which ignores SIGTERM. Each writes its pid
// to pidFile+".term" and pidFile+".stubborn" once in its own session,
// and the script waits for both: a job's process group is killed when
// the job ends, and must not take one of them before it has left.
func orphanScript(marker, pidFile string) string {
	return fmt.Sprintf(`export %s=%q
(setsid sh -c 'echo $$ >%[3]s.term; exec sleep 1000' </dev/null >/dev/null 2>&1 &)
(setsid sh -c 'trap "" TERM; echo $$ >%[3]s.stubborn; exec sleep 1001' </dev/null >/dev/null 2>&1 &)
until [ -s %[3]s.term ] && [ -s %[3]s.stubborn ]; do sleep 0.01; done
`, markerVar, marker, pidFile)
}

// parentOf returns the parent pid of pid, from /proc (0 when gone).
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// checkOrphans checks what becomes of the two orphans of orphanScript,
// once pidFile names them: both are reparented to the master, which logs
// them and ends the one that obeys SIGTERM; the other lives until stop
// (its grace, stop_timeout, is long), which kills it. Nothing marked is
// left after stop.
func checkOrphans(t *testing.T, e *env, marker, pidFile string) {
	t.Helper()
	master := e.masterPid()
	var term, stubborn int
	waitFor(t, 30*time.Second, "the orphans' pids", func() bool {
		b1, _ := os.ReadFile(pidFile + ".term")
		b2, _ := os.ReadFile(pidFile + ".stubborn")
		term, _ = strconv.Atoi(strings.TrimSpace(string(b1)))
		stubborn, _ = strconv.Atoi(strings.TrimSpace(string(b2)))
		return term > 0 && stubborn > 0
	})
	alive := func(pid int) bool { v, _ := procEnv(pid, markerVar); return v == marker }

	waitFor(t, 30*time.Second, "the stubborn orphan reparented to the master", func() bool {
		return parentOf(stubborn) == master
	})
	waitFor(t, 30*time.Second, "the orphan that obeys SIGTERM ended", func() bool { return !alive(term) })
	waitFor(t, 30*time.Second, "both orphans logged", func() bool {
		entries := e.logEntries()
		// The command line is the sleep's, or the sh's just before its
		// exec: both hold the number.
		le1, ok1 := find(entries, "orphan left by a child: ending it", "pid="+strconv.Itoa(term))
		le2, ok2 := find(entries, "orphan left by a child: ending it", "pid="+strconv.Itoa(stubborn))
		return ok1 && ok2 && strings.Contains(le1.fields["cmdline"], "1000") && strings.Contains(le2.fields["cmdline"], "1001")
	})
	if !alive(stubborn) {
		t.Fatalf("orphan %d, which ignores SIGTERM, ended before its grace (stop_timeout)\nlog:\n%s", stubborn, e.logTail())
	}

	e.must("stop")
	reap(master)
	if left := markedProcesses(marker); len(left) != 0 {
		t.Errorf("processes left after stop: %v\nlog:\n%s", left, e.logTail())
	}
	if _, ok := find(e.logEntries(), "orphan left at stop: killing it", "pid="+strconv.Itoa(stubborn)); !ok {
		t.Errorf("no log of orphan %d killed at stop\nlog:\n%s", stubborn, e.logTail())
	}
}

// A job that leaves processes running after it (setsid, double fork):
// they are reparented to the master, which ends them.
func TestJobOrphansEnded(t *testing.T) {
	t.Parallel()
	gs := testpeer.StartGserverd(t)
	marker := newMarker(t)
	e := newEnv(t, gs.Addr, "  orphans:\n    count: 1\n", 60*time.Second)
	pidFile := filepath.Join(e.dir, "orphans.pids")
	e.script("orphans", orphanScript(marker, pidFile)+"echo done")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	waitFor(t, 30*time.Second, "the orphans child", func() bool { return len(e.running("orphans")) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := submit(ctx, gs.Addr, "orphans", "", false)
	if err != nil || strings.TrimSpace(got) != "done" {
		t.Fatalf("job: %q, %v\nlog:\n%s", got, err, e.logTail())
	}
	checkOrphans(t, e, marker, pidFile)
}

// A command function that leaves processes running (setsid, double
// fork) while it runs: the master ends them too.
func TestCommandOrphansEnded(t *testing.T) {
	t.Parallel()
	gs := testpeer.StartGserverd(t)
	marker := newMarker(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "orphans.pids")
	argv := []string{"/bin/sh", "-c", orphanScript(marker, pidFile) + "exec sleep 2000"}
	e := newEnv(t, gs.Addr, commandEntry("orphans", 1, argv, marker, ""), 60*time.Second)
	e.appendConfig("http_listen: \"\"\n")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	checkOrphans(t, e, marker, pidFile)
}
