package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Options configure Open.
type Options struct {
	// Root is the directory of the cgroup (in a cgroup2 mount, or in a
	// cgroup mount with the memory controller) under which Open makes
	// the master's cgroup. Default "": the process's own cgroup, in
	// cgroup v2 when the memory controller is available there and the
	// cgroup writable, else in cgroup v1's memory hierarchy.
	Root string
	// Paths locate the process's cgroups. Default Host().
	Paths Paths
	// Pid is the master: it names the master's cgroup and, in cgroup
	// v2, is the process moved out of Root (see Tree). Default
	// os.Getpid().
	Pid int
}

// UnavailableError says why no writable memory cgroup was found.
type UnavailableError struct {
	Reason string
}

func (e *UnavailableError) Error() string { return "cgroup: no writable memory cgroup: " + e.Reason }

// Tree is the cgroup of one master, <root>/gworkerd-<pid>, and the
// cgroups of its children under it, child-<n>.
//
// In cgroup v2 a cgroup whose children have a controller cannot hold
// processes itself (the no-internal-process rule), and a cgroup has the
// memory controller only when its parent enables it in
// cgroup.subtree_control. So, as systemd's delegation does, a master
// that sits in root itself first moves into a leaf of its own,
// <root>/gworkerd-<pid>/master, then enables memory in root's and in
// gworkerd-<pid>'s cgroup.subtree_control. That fails while other
// processes share root: then v2 is not used. In cgroup v1 nothing moves.
//
// NewChild is safe for concurrent use; Close is called once, when the
// children are gone.
type Tree struct {
	dir  Group // <root>/gworkerd-<pid>
	root Group
	home Group // the master's cgroup when Open ran
	pid  int
	k    kernel

	moved       bool   // v2: the master moved into dir/master
	rootEnabled bool   // v2: Open enabled memory in root's subtree_control
	skipped     string // why cgroup v2 was not used, when Root was not given

	mu  sync.Mutex
	seq int // children made
}

// kernel makes and removes cgroup directories; the tests of the file
// logic replace it by one that also makes the files the kernel would.
type kernel struct {
	mkdir func(dir string) error
	rmdir func(dir string) error
	write func(path, value string) error // to a control file
	// startInto says why processes cannot be started into a cgroup
	// (clone3's CLONE_INTO_CGROUP, which v2 children need); nil when
	// they can.
	startInto func() error
}

var hostKernel = kernel{
	mkdir:     func(dir string) error { return os.Mkdir(dir, 0o755) },
	rmdir:     func(dir string) error { return syscall.Rmdir(dir) },
	write:     writeFile,
	startInto: cloneIntoCgroup,
}

// cloneIntoCgroup checks that the kernel has CLONE_INTO_CGROUP (Linux
// 5.7): without it a child could only be moved into its cgroup after it
// started, and what it forks meanwhile would escape.
func cloneIntoCgroup() error {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return err
	}
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var major, minor int
	if _, err := fmt.Sscanf(string(rel), "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("kernel release %q: %w", rel, err)
	}
	if major < 5 || major == 5 && minor < 7 {
		return fmt.Errorf("the kernel, Linux %s, cannot start a process into a cgroup (CLONE_INTO_CGROUP came with 5.7)", rel)
	}
	return nil
}

// masterLeaf is the v2 leaf the master moves into.
const masterLeaf = "master"

// Open makes the master's cgroup, <root>/gworkerd-<pid>. Without a
// writable memory cgroup it returns an *UnavailableError saying why
// (the reasons for each version, when Root was not given).
func Open(opts Options) (*Tree, error) {
	return open(opts, hostKernel)
}

func open(opts Options, k kernel) (*Tree, error) {
	if opts.Paths == (Paths{}) {
		opts.Paths = Host()
	}
	if opts.Pid == 0 {
		opts.Pid = os.Getpid()
	}
	v2, v1, why2, why1, err := placements(opts.Paths)
	if err != nil {
		return nil, &UnavailableError{Reason: "read the process's cgroups: " + err.Error()}
	}
	if opts.Root != "" {
		root := filepath.Clean(opts.Root)
		m, err := mountOf(opts.Paths, root)
		if err != nil {
			return nil, &UnavailableError{Reason: err.Error()}
		}
		home, why := v1, why1
		if m.fstype == "cgroup2" {
			home, why = v2, why2
		}
		if home == nil {
			return nil, &UnavailableError{Reason: why}
		}
		t := newTree(home.version, root, home.dir, opts.Pid, k)
		if err := t.setup(); err != nil {
			return nil, &UnavailableError{Reason: fmt.Sprintf("%s %s: %v", home.version, root, err)}
		}
		return t, nil
	}
	if v2 != nil {
		t := newTree(V2, v2.dir, v2.dir, opts.Pid, k)
		err := t.setup()
		if err == nil {
			return t, nil
		}
		why2 = err.Error()
	}
	why2 = "cgroup v2: " + why2
	if v1 != nil {
		t := newTree(V1, v1.dir, v1.dir, opts.Pid, k)
		err := t.setup()
		if err == nil {
			t.skipped = why2
			return t, nil
		}
		why1 = err.Error()
	}
	return nil, &UnavailableError{Reason: why2 + "; cgroup v1: " + why1}
}

func newTree(v Version, root, home string, pid int, k kernel) *Tree {
	return &Tree{
		dir:  Group{Version: v, Dir: filepath.Join(root, "gworkerd-"+strconv.Itoa(pid))},
		root: Group{Version: v, Dir: root},
		home: Group{Version: v, Dir: home},
		pid:  pid,
		k:    k,
	}
}

// setup makes the master's cgroup and, in v2, gives it the memory
// controller. On failure it undoes what it did.
func (t *Tree) setup() (err error) {
	if t.dir.Version == V2 {
		ctl, err := readBounded(filepath.Join(t.root.Dir, "cgroup.controllers"))
		if err != nil {
			return err
		}
		if !hasWord(ctl, "memory") {
			return fmt.Errorf("the memory controller is not available in %s (cgroup.controllers: %q)", t.root.Dir, strings.TrimSpace(string(ctl)))
		}
		if t.k.startInto != nil {
			if err := t.k.startInto(); err != nil {
				return err
			}
		}
	}
	if err := t.mkdir(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			t.undo()
		}
	}()
	if t.dir.Version == V1 {
		if _, err := os.Stat(filepath.Join(t.dir.Dir, t.dir.usageFile())); err != nil {
			return fmt.Errorf("%s has no memory accounting: %w", t.dir.Dir, err)
		}
		return nil
	}
	if filepath.Clean(t.home.Dir) == filepath.Clean(t.root.Dir) {
		leaf := Group{Version: V2, Dir: filepath.Join(t.dir.Dir, masterLeaf)}
		if err := t.k.mkdir(leaf.Dir); err != nil {
			return fmt.Errorf("make %s: %w", leaf.Dir, err)
		}
		if err := t.k.write(filepath.Join(leaf.Dir, "cgroup.procs"), strconv.Itoa(t.pid)); err != nil {
			return fmt.Errorf("move the master out of %s: %w", t.root.Dir, err)
		}
		t.moved = true
	}
	sub, err := readBounded(filepath.Join(t.root.Dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	if !hasWord(sub, "memory") {
		if err := t.k.write(filepath.Join(t.root.Dir, "cgroup.subtree_control"), "+memory"); err != nil {
			return fmt.Errorf("enable the memory controller for the cgroups under %s (other processes in it? gworkerd needs a cgroup of its own, as systemd's Delegate=yes gives): %w", t.root.Dir, err)
		}
		t.rootEnabled = true
	}
	if err := t.k.write(filepath.Join(t.dir.Dir, "cgroup.subtree_control"), "+memory"); err != nil {
		return fmt.Errorf("enable the memory controller under %s: %w", t.dir.Dir, err)
	}
	return nil
}

// mkdir makes the master's cgroup. One left by an earlier process of
// the same pid (a container's pid 1, restarted) is removed first when it
// is empty.
func (t *Tree) mkdir() error {
	err := t.k.mkdir(t.dir.Dir)
	if errors.Is(err, fs.ErrExist) {
		t.removeAll()
		err = t.k.mkdir(t.dir.Dir)
	}
	if err != nil {
		return fmt.Errorf("make %s: %w", t.dir.Dir, err)
	}
	return nil
}

// removeAll removes the master's cgroup and the empty cgroups under it.
func (t *Tree) removeAll() {
	ents, _ := os.ReadDir(t.dir.Dir)
	for _, e := range ents {
		if e.IsDir() {
			_ = t.k.rmdir(filepath.Join(t.dir.Dir, e.Name()))
		}
	}
	_ = t.k.rmdir(t.dir.Dir)
}

// undo reverts a failed setup: the master goes back, the cgroups go.
func (t *Tree) undo() {
	if t.rootEnabled {
		_ = t.k.write(filepath.Join(t.root.Dir, "cgroup.subtree_control"), "-memory")
		t.rootEnabled = false
	}
	if t.moved {
		if t.addHome() == nil {
			t.moved = false
		}
	}
	t.removeAll()
}

// addHome moves the master back to the cgroup it came from.
func (t *Tree) addHome() error {
	return t.k.write(filepath.Join(t.home.Dir, "cgroup.procs"), strconv.Itoa(t.pid))
}

// Version is the hierarchy's cgroup version.
func (t *Tree) Version() Version { return t.dir.Version }

// Dir is the master's cgroup, <root>/gworkerd-<pid>.
func (t *Tree) Dir() string { return t.dir.Dir }

// Home is the cgroup the master was in when Open ran (v1: where it
// stays).
func (t *Tree) Home() *Group {
	g := t.home
	return &g
}

// Skipped says why cgroup v2 was not used when Open chose v1 by itself;
// empty otherwise.
func (t *Tree) Skipped() string { return t.skipped }

func (t *Tree) String() string { return t.dir.String() }

// NewChild makes the cgroup of a new child, <dir>/child-<n>.
func (t *Tree) NewChild() (*Group, error) {
	t.mu.Lock()
	t.seq++
	n := t.seq
	t.mu.Unlock()
	g := &Group{Version: t.dir.Version, Dir: filepath.Join(t.dir.Dir, "child-"+strconv.Itoa(n))}
	if err := t.k.mkdir(g.Dir); err != nil {
		return nil, fmt.Errorf("cgroup: make %s: %w", g.Dir, err)
	}
	return g, nil
}

// Close removes the master's cgroup and the children's cgroups left
// (which must be empty by then). In v2 a master that moved goes back to
// the cgroup it came from, which root's memory controller forbids unless
// Open enabled it and no other cgroup under root uses it: otherwise the
// master's leaf is left, and the error says so (it is empty once the
// master exits; systemd removes a service's cgroups when it stops).
func (t *Tree) Close() error {
	var errs []error
	ents, err := os.ReadDir(t.dir.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if e.IsDir() && !(t.moved && e.Name() == masterLeaf) {
			if err := t.k.rmdir(filepath.Join(t.dir.Dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", filepath.Join(t.dir.Dir, e.Name()), err))
			}
		}
	}
	rmdir := func(dir string) {
		if err := t.k.rmdir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", dir, err))
		}
	}
	if t.moved {
		_ = t.k.write(filepath.Join(t.dir.Dir, "cgroup.subtree_control"), "-memory")
	} else {
		rmdir(t.dir.Dir)
	}
	if t.rootEnabled {
		// Fails, harmlessly, while another cgroup under root uses it.
		if t.k.write(filepath.Join(t.root.Dir, "cgroup.subtree_control"), "-memory") == nil {
			t.rootEnabled = false
		}
	}
	if t.moved {
		if err := t.addHome(); err != nil {
			errs = append(errs, fmt.Errorf("cgroup: %s kept, the master in it: %w", t.dir.Dir, err))
			return errors.Join(errs...)
		}
		t.moved = false
		rmdir(filepath.Join(t.dir.Dir, masterLeaf))
		rmdir(t.dir.Dir)
	}
	return errors.Join(errs...)
}
