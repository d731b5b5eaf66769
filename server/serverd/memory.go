package serverd

import (
	"fmt"
	"runtime/debug"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/cgroup"
)

// memLimit is the memory gserverd may use: the cgroup memory limit of
// the process when it has one, else the physical memory.
type memLimit struct {
	bytes  int64
	source string // where it comes from, for the log: a file, or "physical memory"
}

// queueMemoryShare is the part of memLimit that --max-queue-memory auto
// gives the jobs (1/queueMemoryShare): the rest is for the connections'
// read and write buffers (up to --max-payload each), the store's own
// buffers and the garbage collector's headroom.
const queueMemoryShare = 4

// systemMemoryLimit returns the smaller of the process's cgroup memory
// limit (cgroup.MemoryLimit: its cgroup and every ancestor) and the
// physical memory; ok is false when neither is known.
func systemMemoryLimit(p cgroup.Paths) (memLimit, bool) {
	cl, ok := cgroup.MemoryLimit(p)
	lim := memLimit{bytes: cl.Bytes, source: cl.File}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil && si.Totalram > 0 {
		phys := int64(si.Totalram) * int64(si.Unit)
		if !ok || phys < lim.bytes {
			return memLimit{bytes: phys, source: "physical memory"}, true
		}
	}
	return lim, ok
}

// maxQueueMemory resolves --max-queue-memory: -1 (auto) is
// 1/queueMemoryShare of the memory limit (0, unlimited, when no limit is
// known); others are kept.
func maxQueueMemory(n int64, lim memLimit, ok bool) int64 {
	if n >= 0 {
		return n
	}
	if !ok {
		return 0
	}
	return max(lim.bytes/queueMemoryShare, 1)
}

// goMemoryShare is the part of memLimit given to the Go runtime as its
// soft memory limit (runtime/debug.SetMemoryLimit), numerator over 4:
// near it the garbage collector runs more often, so that the garbage of
// large payloads is reclaimed before the cgroup's OOM killer acts.
const goMemoryShare = 3

// setGoMemoryLimit sets the Go runtime's soft memory limit to
// goMemoryShare/4 of the cgroup memory limit, unless GOMEMLIMIT is set
// (the runtime reads it itself) or the process has no cgroup limit.
func setGoMemoryLimit(lim memLimit, ok bool, lookupEnv func(string) (string, bool), log logrus.FieldLogger) {
	if v, set := lookupEnv("GOMEMLIMIT"); set && v != "" {
		return
	}
	if !ok || lim.source == "physical memory" {
		return
	}
	n := lim.bytes / 4 * goMemoryShare
	debug.SetMemoryLimit(n)
	log.WithFields(logrus.Fields{"limit": n, "from": lim.source}).Info("Go soft memory limit set")
}

// describeQueueMemory is the log line's text for the resolved bound.
func describeQueueMemory(set bool, lim memLimit, ok bool) string {
	switch {
	case set:
		return "set by --max-queue-memory"
	case !ok:
		return "unlimited: no memory limit known"
	default:
		return fmt.Sprintf("1/%d of %d bytes (%s)", queueMemoryShare, lim.bytes, lim.source)
	}
}
