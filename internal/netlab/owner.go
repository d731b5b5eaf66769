//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Ownership of a lab id. Every object of lab <id> is named gwl<id>...:
// the bridge gwl<id>, the root-side veths gwl<id>h<n>, the namespaces
// gwl<id>-<host> (and gwl<id>.probe for a moment in New). Whoever holds an
// flock on the file lockDir/gwl<id> (the one at that path, not an unlinked
// one) owns the id: a live lab, or a sweeper removing a dead lab's
// objects. The kernel drops the lock when its process dies, SIGKILL
// included, so a lab whose lock can be taken is dead. A lab takes the
// lock before it makes anything and gives it up (unlinking the file)
// after it removed everything.

const (
	prefix   = "gwl"
	netnsDir = "/run/netns" // where ip netns keeps its namespaces
	sysNet   = "/sys/class/net"
	// lockDir holds the lock files. Not under os.TempDir: two test
	// processes with different TMPDIRs must still see each other's locks.
	// /run is emptied at boot, as namespaces and links are.
	lockDir = "/run/gworkerd-netlab"
)

// labName is the common prefix of the names of lab id's objects.
func labName(id string) string { return prefix + id }

// idOf returns the lab id of one of our object names, and whether name is
// one: gwl, four hex digits, then nothing, '-', 'h' or '.'.
func idOf(name string) (string, bool) {
	if len(name) < len(prefix)+4 || !strings.HasPrefix(name, prefix) {
		return "", false
	}
	id := name[len(prefix) : len(prefix)+4]
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", false
		}
	}
	if rest := name[len(prefix)+4:]; rest != "" && !strings.ContainsRune("-h.", rune(rest[0])) {
		return "", false
	}
	return id, true
}

// owned lists the entries of dir that belong to lab id.
func owned(dir, id string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	var names []string
	for _, e := range ents {
		if got, ok := idOf(e.Name()); ok && got == id {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ids lists the lab ids that have a namespace, a link or a lock file.
func ids() (map[string]bool, error) {
	found := map[string]bool{}
	for _, dir := range []string{netnsDir, sysNet, lockDir} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlab: %w", err)
		}
		for _, e := range ents {
			if id, ok := idOf(e.Name()); ok {
				found[id] = true
			}
		}
	}
	return found, nil
}

// own takes the lock of id. fresh insists on creating its file (a new
// lab wants an id nobody uses); otherwise a missing file is created (a
// sweeper taking a dead lab's id whose file is gone). It returns nil, nil
// when someone else holds the id.
func own(id string, fresh bool) (*os.File, error) {
	path := filepath.Join(lockDir, labName(id))
	flags := os.O_RDWR | os.O_CREATE
	if fresh {
		flags |= os.O_EXCL
	}
	for range 10 {
		f, err := os.OpenFile(path, flags, 0o644)
		if fresh && errors.Is(err, os.ErrExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("netlab: lock %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			_ = f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("netlab: lock %s: %w", path, err)
		}
		// The holder before us may have unlinked the file after we opened
		// it: then we locked a file nobody else will look at.
		fi, ferr := f.Stat()
		pi, perr := os.Stat(path)
		if ferr == nil && perr == nil && os.SameFile(fi, pi) {
			return f, nil
		}
		_ = f.Close()
		if fresh {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("netlab: lock %s: its file keeps being replaced", path)
}

// release gives up the id held through f.
func release(f *os.File) {
	_ = os.Remove(f.Name())
	_ = f.Close()
}

// sweep removes the objects of every lab whose owner is dead, and reports
// which labs it removed.
func sweep(ctx context.Context, ip string) ([]string, error) {
	found, err := ids()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for id := range found {
		f, err := own(id, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f == nil {
			continue // a live lab
		}
		nss, err1 := owned(netnsDir, id)
		links, err2 := owned(sysNet, id)
		if len(nss)+len(links) > 0 || err1 != nil || err2 != nil {
			// (Else another sweeper removed them since ids looked.)
			if err := remove(ctx, ip, id); err != nil {
				errs = append(errs, err)
			}
			removed = append(removed, labName(id))
		}
		release(f)
	}
	return removed, errors.Join(errs...)
}

// remove deletes every object of lab id, killing the processes in its
// namespaces first. Objects already gone are no error.
func remove(ctx context.Context, ip, id string) error {
	var errs []error
	nss, err := owned(netnsDir, id)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nss {
		if err := killAll(ctx, ip, ns); err != nil {
			errs = append(errs, err)
		}
	}
	links, err := owned(sysNet, id)
	if err != nil {
		errs = append(errs, err)
	}
	// The veths first (each takes its peer in a host's namespace with
	// it), the bridge last.
	bridge := false
	for _, l := range links {
		if l == labName(id) {
			bridge = true
			continue
		}
		errs = append(errs, gone(filepath.Join(sysNet, l), run(ctx, ip, "", "link", "del", l)))
	}
	if bridge {
		errs = append(errs, gone(filepath.Join(sysNet, labName(id)), run(ctx, ip, "", "link", "del", labName(id))))
	}
	for _, ns := range nss {
		errs = append(errs, gone(filepath.Join(netnsDir, ns), run(ctx, ip, "", "netns", "del", ns)))
	}
	return errors.Join(errs...)
}

// gone is err unless path no longer exists: someone else removed the
// object.
func gone(path string, err error) error {
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		return nil
	}
	return err
}

// killAll SIGKILLs every process in namespace ns and waits until none is
// left in it (a dead process leaves its namespace as it becomes a
// zombie).
func killAll(ctx context.Context, ip, ns string) error {
	self := os.Getpid()
	for {
		out, err := output(ctx, ip, "netns", "pids", ns)
		if err != nil {
			return gone(filepath.Join(netnsDir, ns), err)
		}
		var left []int
		for _, f := range strings.Fields(out) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid == self {
				// Ourselves: a thread of ours in the namespace for a Dial
				// that outlived its test. Not ours to kill.
				continue
			}
			left = append(left, pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: processes %v still in namespace %s: %w", left, ns, ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling the kernel, which does not signal it
		}
	}
}
