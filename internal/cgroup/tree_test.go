package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fakeKernel plays the kernel for the file logic of Tree on a temporary
// directory: mkdir makes a cgroup's files (the memory files when the
// parent's cgroup.subtree_control was given +memory, or under the v1
// mount), rmdir refuses a cgroup with processes or sub-cgroups, a write
// to cgroup.procs moves the pid, and writes can be made to fail. It
// records the writes. This is file logic only: no kernel enforces
// anything here.
type fakeKernel struct {
	t      *testing.T
	v1     string           // the v1 mount point; dirs under it are v1
	fail   map[string]error // "path=value" -> the error of that write
	writes []string         // "path=value", paths relative to base
	base   string
}

func (f *fakeKernel) kernel() kernel {
	return kernel{mkdir: f.mkdir, rmdir: f.rmdir, write: f.write}
}

func (f *fakeKernel) rel(p string) string {
	r, err := filepath.Rel(f.base, p)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fakeKernel) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{"cgroup.procs": ""}
	if strings.HasPrefix(dir, f.v1+"/") {
		files["tasks"] = ""
		files["memory.usage_in_bytes"] = "0\n"
		files["memory.stat"] = "total_inactive_file 0\n"
	} else {
		files["cgroup.subtree_control"] = ""
		files["cgroup.controllers"] = ""
		if sub, _ := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control")); strings.Contains(string(sub), "+memory") {
			files["cgroup.controllers"] = "memory\n"
			files["memory.current"] = "0\n"
			files["memory.stat"] = "inactive_file 0\n"
		}
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeKernel) rmdir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return syscall.ENOTEMPTY
		}
	}
	if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(procs))) > 0 {
		return syscall.EBUSY
	}
	return os.RemoveAll(dir)
}

func (f *fakeKernel) write(path, value string) error {
	key := f.rel(path) + "=" + value
	f.writes = append(f.writes, key)
	if err := f.fail[key]; err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", value, path, err)
	}
	if filepath.Base(path) == "cgroup.procs" { // a move: out of every other cgroup
		_ = filepath.WalkDir(f.base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == "cgroup.procs" && p != path {
				if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) == value {
					_ = os.WriteFile(p, nil, 0o644)
				}
			}
			return nil
		})
	}
	if _, err := os.Stat(path); err != nil {
		return err // the kernel's files exist; others cannot be made
	}
	return os.WriteFile(path, []byte(value), 0o644)
}

// fakeHost is a hybrid host in a temporary directory: cgroup2 at
// <base>/unified, cgroup v1 memory at <base>/memory. The process (pid
// 42) is in /svc of both.
type fakeHost struct {
	base  string
	paths Paths
	k     *fakeKernel
}

func newFakeHost(t *testing.T, v2Controllers string) *fakeHost {
	base := t.TempDir()
	h := &fakeHost{base: base, paths: Paths{Self: filepath.Join(base, "self-cgroup"), MountInfo: filepath.Join(base, "mountinfo")}}
	h.k = &fakeKernel{t: t, v1: filepath.Join(base, "memory"), base: base, fail: map[string]error{}}
	write(t, h.paths.Self, "4:memory:/svc\n0::/svc\n")
	write(t, h.paths.MountInfo, fmt.Sprintf("34 30 0:31 / %s/memory rw - cgroup cgroup rw,memory\n40 30 0:37 / %s/unified rw - cgroup2 cgroup2 rw\n", base, base))
	for dir, files := range map[string]map[string]string{
		"unified/svc": {"cgroup.controllers": v2Controllers, "cgroup.subtree_control": "", "cgroup.procs": "42"},
		"memory/svc":  {"cgroup.procs": "42", "tasks": "42", "memory.usage_in_bytes": "0", "memory.stat": ""},
	} {
		for name, text := range files {
			write(t, filepath.Join(base, dir, name), text)
		}
	}
	return h
}

func (h *fakeHost) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.base, rel))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (h *fakeHost) gone(t *testing.T, rel string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(h.base, rel)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there (%v)", rel, err)
	}
}

// cgroup v2, the master in the cgroup it is given (systemd's
// delegation): it moves into a leaf before the memory controller is
// enabled below, and back at Close; every cgroup made is removed.
func TestTreeV2MovesTheMaster(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "cpu memory pids")
	tr, err := open(Options{Paths: h.paths, Pid: 42}, h.k.kernel())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Version() != V2 || tr.Dir() != filepath.Join(h.base, "unified/svc/gworkerd-42") || tr.Skipped() != "" {
		t.Fatalf("tree %v (skipped %q), want v2 in unified/svc/gworkerd-42", tr, tr.Skipped())
	}
	want := []string{"unified/svc/gworkerd-42/master/cgroup.procs=42", "unified/svc/cgroup.subtree_control=+memory", "unified/svc/gworkerd-42/cgroup.subtree_control=+memory"}
	if !reflect.DeepEqual(h.k.writes, want) {
		t.Errorf("writes %q, want %q: the master leaves the cgroup before its memory controller is enabled", h.k.writes, want)
	}
	if got := h.read(t, "unified/svc/cgroup.procs"); got != "" {
		t.Errorf("root cgroup.procs %q, want the master moved out", got)
	}
	c, err := tr.NewChild()
	if err != nil {
		t.Fatal(err)
	}
	if *c != (Group{Version: V2, Dir: filepath.Join(tr.Dir(), "child-1")}) {
		t.Errorf("child %v", c)
	}
	write(t, filepath.Join(c.Dir, "memory.current"), "10000000\n")
	write(t, filepath.Join(c.Dir, "memory.stat"), "anon 6000000\nfile 4000000\nactive_file 1000000\ninactive_file 3000000\n")
	if ws, err := c.WorkingSet(); err != nil || ws != 7000000 {
		t.Errorf("working set %d, %v; want memory.current - inactive_file = 7000000", ws, err)
	}
	h.k.writes = nil
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	want = []string{"unified/svc/gworkerd-42/cgroup.subtree_control=-memory", "unified/svc/cgroup.subtree_control=-memory", "unified/svc/cgroup.procs=42"}
	if !reflect.DeepEqual(h.k.writes, want) {
		t.Errorf("close writes %q, want %q", h.k.writes, want)
	}
	h.gone(t, "unified/svc/gworkerd-42")
	if got := h.read(t, "unified/svc/cgroup.procs"); got != "42" {
		t.Errorf("root cgroup.procs %q after Close, want the master back", got)
	}
}

// cgroup v2 given a root the master is not in: nothing moves.
func TestTreeV2GivenRoot(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "memory")
	for name, text := range map[string]string{"cgroup.controllers": "memory", "cgroup.subtree_control": "memory", "cgroup.procs": ""} {
		write(t, filepath.Join(h.base, "unified/delegated", name), text)
	}
	tr, err := open(Options{Paths: h.paths, Pid: 42, Root: filepath.Join(h.base, "unified/delegated")}, h.k.kernel())
	if err != nil {
		t.Fatal(err)
	}
	// memory was already on in the root's subtree_control: only the
	// master's cgroup is given it.
	if want := []string{"unified/delegated/gworkerd-42/cgroup.subtree_control=+memory"}; !reflect.DeepEqual(h.k.writes, want) {
		t.Errorf("writes %q, want %q", h.k.writes, want)
	}
	if _, err := tr.NewChild(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	h.gone(t, "unified/delegated/gworkerd-42")
	if got := h.read(t, "unified/delegated/cgroup.subtree_control"); got != "memory" {
		t.Errorf("the root's subtree_control %q: Close disabled what it had not enabled", got)
	}
}

// cgroup v2 whose root holds other processes (EBUSY on +memory): the
// master goes back, the cgroups go, and Open falls back to v1 saying why
// it did not use v2. Without v1 it says why neither.
func TestTreeV2Busy(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "memory")
	h.k.fail["unified/svc/cgroup.subtree_control=+memory"] = syscall.EBUSY
	tr, err := open(Options{Paths: h.paths, Pid: 42}, h.k.kernel())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Version() != V1 || tr.Dir() != filepath.Join(h.base, "memory/svc/gworkerd-42") {
		t.Errorf("tree %v, want v1 in memory/svc/gworkerd-42", tr)
	}
	if s := tr.Skipped(); !strings.Contains(s, "cgroup v2: enable the memory controller") || !strings.Contains(s, "device or resource busy") || !strings.Contains(s, "Delegate=yes") {
		t.Errorf("skipped %q, want why v2 was not used", s)
	}
	h.gone(t, "unified/svc/gworkerd-42")
	if got := h.read(t, "unified/svc/cgroup.procs"); got != "42" {
		t.Errorf("v2 root cgroup.procs %q, want the master moved back", got)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	h.gone(t, "memory/svc/gworkerd-42")

	write(t, h.paths.Self, "0::/svc\n")
	_, err = open(Options{Paths: h.paths, Pid: 42}, h.k.kernel())
	var ue *UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "cgroup v2: enable the memory controller") || !strings.Contains(ue.Reason, "cgroup v1: the process is in no cgroup v1 memory hierarchy") {
		t.Errorf("open without v1: %v, want an UnavailableError with both reasons", err)
	}
}

// This host's layout: cgroup2 without the memory controller (held by
// v1). Open uses v1 and says why not v2; a v1 master does not move.
func TestTreeHybridChoosesV1(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "")
	tr, err := open(Options{Paths: h.paths, Pid: 42}, h.k.kernel())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Version() != V1 || !strings.Contains(tr.Skipped(), "memory controller is not available in "+filepath.Join(h.base, "unified/svc")) {
		t.Errorf("tree %v, skipped %q", tr, tr.Skipped())
	}
	if len(h.k.writes) != 0 {
		t.Errorf("writes %q, want none: a v1 master stays where it is", h.k.writes)
	}
	c, err := tr.NewChild()
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(c.Dir, "memory.usage_in_bytes"), "5000000\n")
	write(t, filepath.Join(c.Dir, "memory.stat"), "inactive_file 1\ntotal_inactive_file 1000000\n")
	if ws, err := c.WorkingSet(); err != nil || ws != 4000000 {
		t.Errorf("v1 working set %d, %v; want usage - total_inactive_file = 4000000", ws, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	h.gone(t, "memory/svc/gworkerd-42")
}

// A master's cgroup left by an earlier process of the same pid is
// replaced when empty.
func TestTreeStale(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "")
	k := h.k.kernel()
	for _, d := range []string{"memory/svc/gworkerd-42", "memory/svc/gworkerd-42/child-3"} {
		if err := k.mkdir(filepath.Join(h.base, d)); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := open(Options{Paths: h.paths, Pid: 42}, k)
	if err != nil {
		t.Fatal(err)
	}
	h.gone(t, "memory/svc/gworkerd-42/child-3")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

// v2 Close when the master cannot go back (another master's cgroup
// under the same root keeps its memory controller): the master's cgroup
// is kept and the error says so.
func TestTreeV2CloseKept(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "memory")
	tr, err := open(Options{Paths: h.paths, Pid: 42}, h.k.kernel())
	if err != nil {
		t.Fatal(err)
	}
	h.k.fail["unified/svc/cgroup.subtree_control=-memory"] = syscall.EBUSY
	h.k.fail["unified/svc/cgroup.procs=42"] = syscall.EBUSY
	if err := tr.Close(); err == nil || !strings.Contains(err.Error(), "gworkerd-42 kept, the master in it") {
		t.Errorf("Close: %v, want it to say the master's cgroup is kept", err)
	}
}

// Self finds a child's cgroup by its name under a master's, in v2 when
// it has the memory files there, else in v1.
func TestSelf(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t, "")
	k := h.k.kernel()
	for _, d := range []string{"memory/svc/gworkerd-7", "memory/svc/gworkerd-7/child-2", "unified/svc/gworkerd-7", "unified/svc/gworkerd-7/child-2"} {
		if err := k.mkdir(filepath.Join(h.base, d)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		self string
		want *Group
	}{
		{"4:memory:/svc/gworkerd-7/child-2\n0::/svc/gworkerd-7/child-2\n", &Group{Version: V1, Dir: filepath.Join(h.base, "memory/svc/gworkerd-7/child-2")}},
		{"4:memory:/svc/gworkerd-7\n0::/svc\n", nil},
		{"4:memory:/svc/gworkerd-x/child-2\n", nil},
		{"4:memory:/svc/gworkerd-7/child-02\n", nil},
		{"4:memory:/svc/gworkerd-7/child-9\n", nil}, // no such directory
		{"0::/svc/gworkerd-7/child-2\n", nil},       // v2 without memory files
	}
	for _, tt := range tests {
		write(t, h.paths.Self, tt.self)
		g, ok := Self(h.paths)
		if ok != (tt.want != nil) || ok && *g != *tt.want {
			t.Errorf("Self with %q = %v, %v; want %v", tt.self, g, ok, tt.want)
		}
	}
	// With the memory files (memory enabled above it), v2 first.
	write(t, filepath.Join(h.base, "unified/svc/gworkerd-7/child-2/memory.current"), "1\n")
	write(t, h.paths.Self, "4:memory:/svc/gworkerd-7/child-2\n0::/svc/gworkerd-7/child-2\n")
	if g, ok := Self(h.paths); !ok || *g != (Group{Version: V2, Dir: filepath.Join(h.base, "unified/svc/gworkerd-7/child-2")}) {
		t.Errorf("Self = %v, %v; want the v2 cgroup", g, ok)
	}
}
