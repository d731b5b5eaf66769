// Package cgroup measures the memory of a group of processes through a
// memory cgroup: cgroup v2 where the memory controller is available and
// writable, else cgroup v1's memory hierarchy. A process stays in its
// cgroup whatever it does (setsid, a double fork, being reparented), and
// its children are born in it, so the cgroup's memory is that of
// everything the group started.
//
// Tree is the part a gworkerd master owns: a cgroup of its own,
// <root>/gworkerd-<pid>, with one sub-cgroup per child (see tree.go).
// Self finds, in a child, the cgroup its master put it in (self.go).
//
// The memory of a cgroup is its working set, as kubelet computes it: the
// memory charged to the cgroup (anonymous memory, page cache, kernel
// memory) minus the file pages on the inactive list, which the kernel
// reclaims first.
package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Version is a cgroup version.
type Version int

// The cgroup versions.
const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string { return "cgroup v" + strconv.Itoa(int(v)) }

// Group is one cgroup of a memory hierarchy.
type Group struct {
	// Version is the hierarchy's.
	Version Version
	// Dir is the cgroup's directory.
	Dir string
}

func (g *Group) String() string { return g.Version.String() + " " + g.Dir }

// The files of a cgroup, by version.
func (g *Group) usageFile() string {
	if g.Version == V2 {
		return "memory.current"
	}
	return "memory.usage_in_bytes"
}

// inactiveFileKeys are the memory.stat keys of the inactive file pages,
// in order of preference: v1's hierarchical total first (the same as the
// cgroup's own for a cgroup without children).
func (g *Group) inactiveFileKeys() []string {
	if g.Version == V2 {
		return []string{"inactive_file"}
	}
	return []string{"total_inactive_file", "inactive_file"}
}

// WorkingSet returns the cgroup's working set in bytes: its usage
// (v2 memory.current, v1 memory.usage_in_bytes) minus its inactive file
// pages (memory.stat inactive_file, v1 total_inactive_file), at least 0.
func (g *Group) WorkingSet() (int64, error) {
	b, err := readBounded(filepath.Join(g.Dir, g.usageFile()))
	if err != nil {
		return 0, fmt.Errorf("cgroup: memory of %s: %w", g.Dir, err)
	}
	usage, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup: memory of %s: %s: %w", g.Dir, g.usageFile(), err)
	}
	stat, err := readBounded(filepath.Join(g.Dir, "memory.stat"))
	if err != nil {
		return 0, fmt.Errorf("cgroup: memory of %s: %w", g.Dir, err)
	}
	for _, k := range g.inactiveFileKeys() {
		if v, ok := statValue(stat, k); ok {
			return max(usage-v, 0), nil
		}
	}
	return 0, fmt.Errorf("cgroup: memory of %s: no inactive_file in memory.stat", g.Dir)
}

// statValue returns the value of key in a memory.stat file ("key value"
// lines).
func statValue(stat []byte, key string) (int64, bool) {
	for _, line := range bytes.Split(stat, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// AddProc moves the process pid (all its threads) into the cgroup.
func (g *Group) AddProc(pid int) error {
	return writeFile(filepath.Join(g.Dir, "cgroup.procs"), strconv.Itoa(pid))
}

// AddThread moves one thread into the cgroup: v1 only, where the threads
// of a process may sit in different cgroups; the processes it forks are
// born in its cgroup.
func (g *Group) AddThread(tid int) error {
	if g.Version != V1 {
		return fmt.Errorf("cgroup: move thread %d into %s: only cgroup v1 places threads alone", tid, g.Dir)
	}
	return writeFile(filepath.Join(g.Dir, "tasks"), strconv.Itoa(tid))
}

// Procs returns the processes in the cgroup (not in its sub-cgroups).
func (g *Group) Procs() ([]int, error) {
	b, err := readBounded(filepath.Join(g.Dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("cgroup: processes of %s: %w", g.Dir, err)
	}
	var pids []int
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Remove removes the cgroup, which must be empty: no process and no
// sub-cgroup (EBUSY, ENOTEMPTY otherwise). A cgroup already gone is no
// error.
func (g *Group) Remove() error {
	err := syscall.Rmdir(g.Dir)
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("cgroup: remove %s: %w", g.Dir, err)
}

// writeFile writes one value to a cgroup control file, which exists:
// the kernel makes them with the cgroup.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", value, path, err)
	}
	return nil
}

// hasWord reports whether a space-separated list file (cgroup.controllers,
// cgroup.subtree_control) holds word.
func hasWord(list []byte, word string) bool {
	for _, w := range strings.Fields(string(list)) {
		if w == word {
			return true
		}
	}
	return false
}
