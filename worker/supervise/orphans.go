package supervise

import (
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/clock"
)

// orphans ends what the children leave behind. When this process is a
// child subreaper (Options.ReapOrphans), a process that outlives its
// parent inside a child's tree (a job's `setsid cmd &`, a double fork)
// is reparented to it instead of to init. The children's process groups
// are killed when they exit, but such a process has usually left them:
// orphans finds it among this process's children in /proc (the children
// the supervisor started excepted), logs it, sends it SIGTERM, then
// SIGKILL after the grace period, and reaps it with wait4(pid): never
// wait4(-1), which would steal the exit statuses of the supervisor's own
// children from their cmd.Wait.
//
// Concurrency: seen is owned by the supervisor's ticker goroutine while
// Run runs, then by Run once the ticker has exited (stop).
type orphans struct {
	log   logrus.FieldLogger
	clk   clock.Clock
	self  int
	grace time.Duration
	seen  map[int]orphan // live orphans signalled, by pid
}

type orphan struct {
	since  time.Time // of the SIGTERM
	killed bool      // SIGKILL sent
}

func newOrphans(log logrus.FieldLogger, clk clock.Clock, grace time.Duration) *orphans {
	return &orphans{log: log, clk: clk, self: os.Getpid(), grace: grace, seen: map[int]orphan{}}
}

// signalOrphan sends sig to the orphan pid and, when it leads a process group
// (setsid made it a session leader), to that group: what it started
// goes with it.
func signalOrphan(pid int, p procInfo, sig syscall.Signal) {
	if p.pgid == pid {
		_ = syscall.Kill(-pid, sig)
	}
	_ = syscall.Kill(pid, sig)
}

// reap collects the zombie pid, one of this process's orphans.
func (o *orphans) reap(pid int) bool {
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	if err != nil || got != pid {
		return false
	}
	o.log.WithFields(logrus.Fields{"pid": pid, "exit": ws.ExitStatus(), "signal": signalName(ws)}).Info("orphan reaped")
	return true
}

func signalName(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return ws.Signal().String()
	}
	return ""
}

// sweep handles the orphans in t, a /proc snapshot read before known
// (the pids of the supervisor's live children) was taken: a child
// started after the snapshot is not in it, and one in it is known.
func (o *orphans) sweep(t procTable, known map[int]bool) {
	now := o.clk.Now()
	for pid, p := range t {
		if p.ppid != o.self || known[pid] {
			continue
		}
		if p.state == 'Z' {
			if o.reap(pid) {
				delete(o.seen, pid)
			}
			continue
		}
		seen, ok := o.seen[pid]
		switch {
		case !ok:
			o.log.WithFields(logrus.Fields{"pid": pid, "pgid": p.pgid, "cmdline": cmdline(pid), "grace": o.grace.String()}).
				Warn("orphan left by a child: ending it")
			signalOrphan(pid, p, syscall.SIGTERM)
			o.seen[pid] = orphan{since: now}
		case !seen.killed && now.Sub(seen.since) >= o.grace:
			o.log.WithFields(logrus.Fields{"pid": pid, "cmdline": cmdline(pid)}).Warn("orphan did not exit in time: killing it")
			signalOrphan(pid, p, syscall.SIGKILL)
			seen.killed = true
			o.seen[pid] = seen
		}
	}
	for pid := range o.seen {
		if _, ok := t[pid]; !ok {
			delete(o.seen, pid) // reaped, or gone before the scan saw it
		}
	}
}

// stopWait bounds how long stop waits for the orphans it killed.
const stopWait = 10 * time.Second

// stop kills every process still a child of this process, once the
// supervisor's children are all gone, and reaps them. A killed orphan's
// own children are reparented here in turn: stop scans again until none
// is left (or stopWait is over).
func (o *orphans) stop() {
	deadline := o.clk.Now().Add(stopWait)
	killed := map[int]bool{}
	for {
		left := 0
		for pid, p := range scanTree(o.self) {
			if p.ppid != o.self {
				continue
			}
			if p.state == 'Z' {
				if !o.reap(pid) {
					left++
				}
				continue
			}
			left++
			if !killed[pid] {
				o.log.WithFields(logrus.Fields{"pid": pid, "pgid": p.pgid, "cmdline": cmdline(pid)}).Warn("orphan left at stop: killing it")
				signalOrphan(pid, p, syscall.SIGKILL)
				killed[pid] = true
			}
		}
		if left == 0 {
			return
		}
		if o.clk.Now().After(deadline) {
			o.log.WithField("left", left).Error("orphans still alive after SIGKILL")
			return
		}
		t := o.clk.NewTimer(10 * time.Millisecond) // the killed ones to exit
		<-t.C()
	}
}
