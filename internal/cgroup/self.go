package cgroup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Self returns the cgroup a gworkerd master made for this process: a
// child-<n> directly under a gworkerd-<pid> (see Tree), in cgroup v2
// when its memory files are there, else in cgroup v1's memory
// hierarchy. It returns false when the process is in no such cgroup (it
// was not started by a master with cgroups, or was moved out).
func Self(p Paths) (*Group, bool) {
	if p == (Paths{}) {
		p = Host()
	}
	v2, v1, _, _, err := placements(p)
	if err != nil {
		return nil, false
	}
	for _, pl := range []*placement{v2, v1} {
		if pl == nil || !childDir(pl.dir) {
			continue
		}
		g := &Group{Version: pl.version, Dir: pl.dir}
		if _, err := os.Stat(filepath.Join(g.Dir, g.usageFile())); err == nil {
			return g, true
		}
	}
	return nil, false
}

// childDir reports whether dir is named as a child's cgroup of a Tree.
func childDir(dir string) bool {
	return numbered(filepath.Base(dir), "child-") && numbered(filepath.Base(filepath.Dir(dir)), "gworkerd-")
}

func numbered(name, prefix string) bool {
	n, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(n)
	return err == nil && i > 0 && strconv.Itoa(i) == n
}
