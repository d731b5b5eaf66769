package cgroup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Limit is a memory limit of a cgroup.
type Limit struct {
	// Bytes is the limit.
	Bytes int64
	// File is the control file it was read from.
	File string
}

// MemoryLimit returns the smallest memory limit set on the process's
// cgroup and its ancestors: cgroup v2's memory.max, or v1's
// memory.limit_in_bytes in the memory hierarchy, under the mounts of
// p.Root (the hybrid layout's v2 at unified). When the process sees its
// cgroup at a path that p.Root does not show (a container), only the
// mount's root is read. It returns false when no limit is set. A zero p
// means Host().
func MemoryLimit(p Paths) (Limit, bool) {
	if p == (Paths{}) {
		p = Host()
	}
	b, err := readBounded(p.Self)
	if err != nil {
		return Limit{}, false
	}
	best := Limit{}
	found := false
	for _, m := range parseSelf(b) {
		var mount, file string
		switch {
		case m.v2():
			mount, file = p.Root, "memory.max"
			if _, err := os.Stat(filepath.Join(p.Root, "cgroup.controllers")); err != nil {
				mount = filepath.Join(p.Root, "unified") // hybrid layout
			}
		case m.has("memory"):
			mount, file = filepath.Join(p.Root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		if l, ok := smallestLimit(mount, m.path, file); ok && (!found || l.Bytes < best.Bytes) {
			best, found = l, true
		}
	}
	return best, found
}

// smallestLimit reads file in the cgroup directory of path under mount
// and in each of its ancestors up to mount, and returns the smallest
// limit set. When the directory does not exist, only the mount's root
// is read.
func smallestLimit(mount, path, file string) (Limit, bool) {
	dir := filepath.Join(mount, filepath.Clean("/"+path))
	if _, err := os.Stat(dir); err != nil {
		dir = mount
	}
	best := Limit{}
	found := false
	for {
		f := filepath.Join(dir, file)
		if n, ok := readLimit(f); ok && (!found || n < best.Bytes) {
			best, found = Limit{Bytes: n, File: f}, true
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
	b, err := readBounded(file)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
