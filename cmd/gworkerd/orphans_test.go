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
// 1000`, and `sleep 1001`, which ignores SIGTERM from birth. The
// subshell that starts each writes its pid to pidFile+".term" or
// pidFile+".stubborn" (the orphan itself may be ended by the master as
// soon as that subshell exits), and the script waits until each is in
// its own session, or gone: a job's process group is killed when the
// job ends, and must not take one of them before it has left.
func orphanScript(marker, pidFile string) string {
	return fmt.Sprintf(`export %s=%q
(setsid sh -c 'exec sleep 1000' </dev/null >/dev/null 2>&1 & echo $! >%[3]s.term)
(trap "" TERM; setsid sh -c 'exec sleep 1001' </dev/null >/dev/null 2>&1 & echo $! >%[3]s.stubborn)
for f in %[3]s.term %[3]s.stubborn; do
	p=$(cat "$f")
	until [ ! -e /proc/$p ] || [ "$(cut -d' ' -f6 /proc/$p/stat 2>/dev/null)" = "$p" ]; do sleep 0.01; done
done
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
		// The command line is the sleep's, or the sh's or setsid's
		// before their exec: each holds the number; read inside an
		// execve it is the command name in brackets.
		named := func(le logEntry, n string) bool {
			c := le.fields["cmdline"]
			return strings.Contains(c, n) || (strings.HasPrefix(c, "[") && strings.HasSuffix(c, "]"))
		}
		le1, ok1 := find(entries, "orphan left by a child: ending it", "pid="+strconv.Itoa(term))
		le2, ok2 := find(entries, "orphan left by a child: ending it", "pid="+strconv.Itoa(stubborn))
		return ok1 && ok2 && named(le1, "1000") && named(le2, "1001")
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
