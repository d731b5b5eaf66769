package cgroup

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Paths are the files a process's cgroups are read from; tests point
// them at files of their own.
type Paths struct {
	// Self lists the process's cgroups: /proc/self/cgroup.
	Self string
	// MountInfo lists its mounts: /proc/self/mountinfo.
	MountInfo string
	// Root is where the hierarchies are mounted: /sys/fs/cgroup
	// (MemoryLimit looks there).
	Root string
}

// Host are the paths of the running process.
func Host() Paths {
	return Paths{Self: "/proc/self/cgroup", MountInfo: "/proc/self/mountinfo", Root: "/sys/fs/cgroup"}
}

// maxProcFile bounds the read of /proc/self/cgroup and
// /proc/self/mountinfo (a few KiB on a busy host).
const maxProcFile = 1 << 20

// membership is one line of /proc/<pid>/cgroup:
// hierarchy-ID:controller-list:cgroup-path.
type membership struct {
	id          int
	controllers []string // empty for cgroup v2 (and v1 named hierarchies have "name=x")
	path        string   // from the hierarchy's root, beginning with "/"
}

// v2 reports whether m is the cgroup v2 line ("0::/path").
func (m membership) v2() bool { return m.id == 0 && len(m.controllers) == 0 }

func (m membership) has(controller string) bool {
	for _, c := range m.controllers {
		if c == controller {
			return true
		}
	}
	return false
}

// parseSelf parses /proc/<pid>/cgroup; malformed lines are skipped.
func parseSelf(b []byte) []membership {
	var out []membership
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			continue
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil || id < 0 {
			continue
		}
		m := membership{id: id, path: parts[2]}
		if parts[1] != "" {
			m.controllers = strings.Split(parts[1], ",")
		}
		out = append(out, m)
	}
	return out
}

// mount is one cgroup or cgroup2 line of /proc/<pid>/mountinfo.
type mount struct {
	root   string   // the directory of the hierarchy mounted here
	point  string   // where
	fstype string   // "cgroup" or "cgroup2"
	super  []string // super options: v1 names its controllers there
}

func (m mount) has(option string) bool {
	for _, o := range m.super {
		if o == option {
			return true
		}
	}
	return false
}

// parseMountInfo returns the cgroup and cgroup2 mounts of a mountinfo
// file (proc(5)): "36 35 98:0 /root /point opts [optional...] - fstype
// source superopts". Malformed lines are skipped.
func parseMountInfo(b []byte) []mount {
	var out []mount
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		f := strings.Fields(string(line))
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		fstype := f[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		m := mount{root: unescapeMount(f[3]), point: unescapeMount(f[4]), fstype: fstype}
		if sep+3 < len(f) {
			m.super = strings.Split(f[sep+3], ",")
		}
		if !strings.HasPrefix(m.root, "/") || !strings.HasPrefix(m.point, "/") {
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes the octal escapes of mountinfo paths (\040 for a
// space, \011, \012, \134).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dirOf returns the directory of cgroup path (from the hierarchy's root)
// under the mount m, or false when m does not show it (a mount of
// another part of the hierarchy).
func dirOf(m mount, path string) (string, bool) {
	path = filepath.Clean(path)
	root := filepath.Clean(m.root)
	switch {
	case root == "/":
	case path == root:
		path = "/"
	case strings.HasPrefix(path, root+"/"):
		path = path[len(root):]
	default:
		return "", false
	}
	return filepath.Join(m.point, path), true
}

// placement is where a process sits in one memory hierarchy.
type placement struct {
	version Version
	mount   mount
	dir     string // its cgroup's directory
}

// placements returns, from the files of p, the v2 placement of the
// process (when it has one) and its v1 memory placement (when it has
// one), with why each is missing.
func placements(p Paths) (v2, v1 *placement, why2, why1 string, err error) {
	self, err := readBounded(p.Self)
	if err != nil {
		return nil, nil, "", "", err
	}
	info, err := readBounded(p.MountInfo)
	if err != nil {
		return nil, nil, "", "", err
	}
	mounts := parseMountInfo(info)
	why2, why1 = "the process is in no cgroup v2 hierarchy", "the process is in no cgroup v1 memory hierarchy"
	for _, m := range parseSelf(self) {
		switch {
		case m.v2() && v2 == nil:
			why2 = "no cgroup2 mount shows the process's cgroup " + m.path
			for _, mt := range mounts {
				if mt.fstype != "cgroup2" {
					continue
				}
				if dir, ok := dirOf(mt, m.path); ok {
					v2 = &placement{version: V2, mount: mt, dir: dir}
					break
				}
			}
		case m.has("memory") && v1 == nil:
			why1 = "no cgroup mount with the memory controller shows the process's cgroup " + m.path
			for _, mt := range mounts {
				if mt.fstype != "cgroup" || !mt.has("memory") {
					continue
				}
				if dir, ok := dirOf(mt, m.path); ok {
					v1 = &placement{version: V1, mount: mt, dir: dir}
					break
				}
			}
		}
	}
	return v2, v1, why2, why1, nil
}

// Current returns the process's cgroup in the memory hierarchy of
// version v (for v2, the unified hierarchy, whether or not its memory
// controller is available).
func Current(p Paths, v Version) (*Group, error) {
	if p == (Paths{}) {
		p = Host()
	}
	v2, v1, why2, why1, err := placements(p)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	pl, why := v1, why1
	if v == V2 {
		pl, why = v2, why2
	}
	if pl == nil {
		return nil, fmt.Errorf("cgroup: %s", why)
	}
	return &Group{Version: v, Dir: pl.dir}, nil
}

// mountOf returns the memory hierarchy mount holding dir: the cgroup2
// mount or the cgroup mount with the memory controller whose mount point
// is the longest prefix of dir.
func mountOf(p Paths, dir string) (mount, error) {
	info, err := readBounded(p.MountInfo)
	if err != nil {
		return mount{}, err
	}
	dir = filepath.Clean(dir)
	var best mount
	found := false
	for _, m := range parseMountInfo(info) {
		if m.fstype == "cgroup" && !m.has("memory") {
			continue
		}
		if dir != m.point && !strings.HasPrefix(dir, strings.TrimSuffix(m.point, "/")+"/") {
			continue
		}
		if !found || len(m.point) > len(best.point) {
			best, found = m, true
		}
	}
	if !found {
		return mount{}, fmt.Errorf("%s is in no cgroup2 mount nor cgroup mount with the memory controller", dir)
	}
	return best, nil
}

// readBounded reads a small file (procfs, cgroupfs), at most
// maxProcFile bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxProcFile))
}
