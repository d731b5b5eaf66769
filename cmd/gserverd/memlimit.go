package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
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

// cgroupPaths are where systemMemoryLimit looks; tests point them at a
// tree of their own.
type cgroupPaths struct {
	self string // /proc/self/cgroup
	root string // where the hierarchies are mounted: /sys/fs/cgroup
}

// hostCgroup are the paths of the running system.
func hostCgroup() cgroupPaths {
	return cgroupPaths{self: "/proc/self/cgroup", root: "/sys/fs/cgroup"}
}

// systemMemoryLimit returns the smaller of the process's cgroup memory
// limit (cgroup v2 memory.max, or v1 memory.limit_in_bytes, of its cgroup
// and every ancestor) and the physical memory; ok is false when neither
// is known.
func systemMemoryLimit(p cgroupPaths) (memLimit, bool) {
	lim, ok := cgroupMemoryLimit(p)
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil && si.Totalram > 0 {
		phys := int64(si.Totalram) * int64(si.Unit)
		if !ok || phys < lim.bytes {
			return memLimit{bytes: phys, source: "physical memory"}, true
		}
	}
	return lim, ok
}

// cgroupMemoryLimit returns the smallest memory limit of the process's
// cgroup and its ancestors, in cgroup v2 or v1 (the one that has the
// memory controller).
func cgroupMemoryLimit(p cgroupPaths) (memLimit, bool) {
	b, err := os.ReadFile(p.self)
	if err != nil {
		return memLimit{}, false
	}
	best := memLimit{}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var mount, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			mount, file = p.root, "memory.max"
			if _, err := os.Stat(filepath.Join(p.root, "cgroup.controllers")); err != nil {
				mount = filepath.Join(p.root, "unified") // hybrid layout
			}
		case hasController(parts[1], "memory"):
			mount, file = filepath.Join(p.root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		if l, ok := smallestLimit(mount, parts[2], file); ok && (!found || l.bytes < best.bytes) {
			best, found = l, true
		}
	}
	return best, found
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// smallestLimit reads file in the cgroup directory of path under mount
// and in each of its ancestors up to mount, and returns the smallest
// limit set. When the process sees its cgroup at a path its mount
// namespace does not show (a container), only the mount's root is read.
func smallestLimit(mount, path, file string) (memLimit, bool) {
	dir := filepath.Join(mount, filepath.Clean("/"+path))
	if _, err := os.Stat(dir); err != nil {
		dir = mount
	}
	best := memLimit{}
	found := false
	for {
		f := filepath.Join(dir, file)
		if n, ok := readLimit(f); ok && (!found || n < best.bytes) {
			best, found = memLimit{bytes: n, source: f}, true
		}
		if dir == mount || len(dir) <= len(mount) {
			return best, found
		}
		dir = filepath.Dir(dir)
	}
}

// readLimit reads a cgroup memory limit: a byte count; "max" (v2) and
// the v1 values near 2^63 mean none.
func readLimit(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
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
