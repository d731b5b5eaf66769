package supervise

import (
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/cgroup"
)

// Memory measures the memory of a child, from inside it: the working
// set of the cgroup its master put it in, else the RSS of its process
// tree.
type Memory struct {
	cg *cgroup.Group // nil: the process tree
}

// SelfMemory returns the Memory of this process: its cgroup's when the
// master made one for it (cgroup.Self), else its process tree's.
func SelfMemory() Memory {
	g, _ := cgroup.Self(cgroup.Host())
	return Memory{cg: g}
}

// Bytes returns the memory of the child in bytes: the working set of its
// cgroup (the child and every process it started, however detached), or
// the summed RSS of this process and its descendants (TreeRSS) without
// a cgroup, or when the cgroup cannot be read.
func (m Memory) Bytes() int64 {
	if m.cg != nil {
		if ws, err := m.cg.WorkingSet(); err == nil {
			return ws
		}
	}
	return TreeRSS(os.Getpid())
}

// String says what Bytes measures: "cgroup v1 <dir>", "cgroup v2
// <dir>" or "process tree".
func (m Memory) String() string {
	if m.cg != nil {
		return m.cg.String()
	}
	return "process tree"
}

// Subject names what Bytes measures in a sentence: "the child's cgroup"
// or "the job's process tree".
func (m Memory) Subject() string {
	if m.cg != nil {
		return "the child's cgroup"
	}
	return "the job's process tree"
}

// memoryAccounting is Status.Memory.
func (s *Supervisor) memoryAccounting() string {
	if s.opts.Cgroups != nil {
		return s.opts.Cgroups.String()
	}
	if s.opts.NoCgroups != "" {
		return "process tree (" + s.opts.NoCgroups + ")"
	}
	return "process tree"
}

// removeCgroup removes the cgroup of an ended child, or keeps it for
// later while processes the child left are still in it.
func (s *Supervisor) removeCgroup(g *cgroup.Group) {
	if g == nil {
		return
	}
	if err := g.Remove(); err != nil {
		s.log.WithError(err).WithField("cgroup", g.Dir).Debug("child cgroup not empty yet")
		s.cgLeft = append(s.cgLeft, g)
	}
}

// retryCgroups removes the cgroups of ended children that have emptied
// since.
func (s *Supervisor) retryCgroups() {
	left := s.cgLeft[:0]
	for _, g := range s.cgLeft {
		if g.Remove() != nil {
			left = append(left, g)
		}
	}
	clear(s.cgLeft[len(left):])
	s.cgLeft = left
}

// removeCgroups, when Run ends, kills the processes still in the
// cgroups of the children and removes them, trying again while the
// killed processes exit, for at most stopWait.
func (s *Supervisor) removeCgroups() {
	deadline := s.clk.Now().Add(stopWait)
	killed := map[int]bool{}
	for {
		s.retryCgroups()
		if len(s.cgLeft) == 0 {
			return
		}
		for _, g := range s.cgLeft {
			pids, _ := g.Procs()
			for _, pid := range pids {
				if !killed[pid] {
					s.log.WithFields(logrus.Fields{"pid": pid, "cmdline": cmdline(pid), "cgroup": g.Dir}).Warn("process left in a child's cgroup at stop: killing it")
					_ = syscall.Kill(pid, syscall.SIGKILL)
					killed[pid] = true
				}
			}
		}
		if s.clk.Now().After(deadline) {
			for _, g := range s.cgLeft {
				s.log.WithField("cgroup", g.Dir).Error("child cgroup not removed")
			}
			return
		}
		t := s.clk.NewTimer(10 * time.Millisecond) // the killed ones to exit
		<-t.C()
	}
}
