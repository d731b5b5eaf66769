package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/server/store"
)

// fillDisk writes a file in dir until the filesystem is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			return path
		}
	}
}

// TestFullDisk fills a small filesystem with jobs: the Adds that do not
// fit fail with ErrNoSpace (pebble never sees the full disk, so the
// process survives), deletes still work and free the space, Adds work
// again after them, and every job acknowledged and not deleted is there
// after a reopen.
func TestFullDisk(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) { testFullDisk(t, mode) })
	}
}

func testFullDisk(t *testing.T, mode SyncMode) {
	dir := filepath.Join(testpeer.Tmpfs(t, 48<<20), "store")
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, Sync: mode})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()

	data := make([]byte, 16<<10)
	var seq uint64
	add := func() (store.Job, error) {
		seq++
		j := store.Job{Function: "f", Key: store.NewKey(time.Unix(0, 0), seq), Data: data}
		actx, cancel := context.WithTimeout(ctx, time.Minute) // a stalled store fails the test
		defer cancel()
		return j, s.Add(actx, j)
	}
	// Fill: every Add is acknowledged or refused with ErrNoSpace.
	var acked []store.Job
	refused := 0
	for refused < 50 {
		j, err := add()
		switch {
		case err == nil:
			acked = append(acked, j)
		case errors.Is(err, ErrNoSpace) && errors.Is(err, syscall.ENOSPC):
			refused++
		default:
			t.Fatalf("Add of job %d: %v, want nil or ErrNoSpace", seq, err)
		}
		if len(acked) > 10000 {
			t.Fatal("10,000 jobs of 16 KiB fit in a 48 MiB filesystem")
		}
	}
	if len(acked) < 100 {
		t.Fatalf("only %d jobs of 16 KiB were stored in 48 MiB", len(acked))
	}
	t.Logf("%d jobs stored before the disk was full", len(acked))

	// Drain: deleting every job works, and frees the space.
	for i := 0; i < len(acked); i += 100 {
		var refs []store.Ref
		for _, j := range acked[i:min(i+100, len(acked))] {
			refs = append(refs, j.Ref())
		}
		if err := s.Delete(ctx, refs...); err != nil {
			t.Fatalf("Delete on a full disk: %v", err)
		}
	}
	// New Adds succeed once the space is back: the store has pebble
	// flush the log of deleted jobs in the background; poll until then.
	var again []store.Job
	refused = 0
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	full := 0 // refusals once the disk is full again
	for full < 50 {
		j, err := add()
		switch {
		case err == nil:
			again = append(again, j)
		case errors.Is(err, ErrNoSpace) && len(again) >= len(acked)/2:
			full++
		case errors.Is(err, ErrNoSpace) && time.Now().Before(deadline):
			refused++
			<-tick.C
		default:
			t.Fatalf("Add after the drain (%d stored, %d refused): %v", len(again), refused, err)
		}
	}
	t.Logf("%d jobs stored after the drain (%d refused while the space came back)", len(again), refused)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Options{Dir: dir, Sync: mode})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx); err != nil || n != len(again) {
		t.Fatalf("after a reopen: %d jobs (%v), want the %d acknowledged and not deleted", n, err, len(again))
	}
}

// TestOpenOnFullDisk opens a store with jobs in its log on a filesystem
// that another file filled. Opening writes the log to a table, which
// needs space: the store opens read-only instead, with every job; Adds
// fail with ErrNoSpace, Deletes are taken; once space is back the store
// becomes writable, Adds succeed and the deletes are written.
func TestOpenOnFullDisk(t *testing.T) {
	root := testpeer.Tmpfs(t, 16<<20)
	dir := filepath.Join(root, "store")
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return store.NewKey(time.Unix(0, 0), uint64(i+1)) }
	for i := range 100 {
		if err := s.Add(ctx, store.Job{Function: "f", Key: key(i), Data: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ballast := fillDisk(t, root)
	s, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	defer func() { _ = s.Close() }()
	if n, err := s.Count(ctx); err != nil || n != 100 {
		t.Fatalf("Count on a full disk = %d, %v; want 100", n, err)
	}
	if err := s.Add(ctx, store.Job{Function: "f", Key: "new", Data: []byte("x")}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Add on a full disk: %v, want ErrNoSpace", err)
	}
	for i := range 50 {
		if err := s.Delete(ctx, store.Ref{Function: "f", Key: key(i)}); err != nil {
			t.Fatalf("Delete on a full disk: %v", err)
		}
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.Add(ctx, store.Job{Function: "f", Key: "new", Data: []byte("x")})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNoSpace) || time.Now().After(deadline) {
			t.Fatalf("Add once space is back: %v", err)
		}
		<-tick.C // the store retries opening writable once a second
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.Replay(ctx, func(j store.Job) error { keys = append(keys, j.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 51 || keys[0] != key(50) || keys[50] != "new" {
		t.Fatalf("after a reopen: %d jobs (first %q), want the 50 not deleted and the new one", len(keys), keys[:min(len(keys), 1)])
	}
}

// writeErrorChild is set in the environment of the test binary that
// TestWriteErrorFailsWrites runs to do the work.
const writeErrorChild = "GWORKERD_EMBEDDED_WRITE_ERROR"

// TestWriteErrorFailsWrites makes pebble fail a write that the free-space
// check cannot foresee: the filesystem runs out of inodes, so the new log
// of a memtable switch cannot be created. Pebble panics inside the
// commit; the store recovers it, fails that Add and every later write
// with ErrFailed, and the process lives on with its jobs readable. The
// failed database cannot be closed (pebble panicked holding its lock),
// so the test runs in a child process.
func TestWriteErrorFailsWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: mounting a small tmpfs needs root (CI runs as root)")
	}
	if os.Getenv(writeErrorChild) == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWriteErrorFailsWrites$", "-test.v")
		cmd.Env = append(os.Environ(), writeErrorChild+"=1")
		out, err := cmd.CombinedOutput()
		switch {
		case strings.Contains(string(out), "--- SKIP: TestWriteErrorFailsWrites"):
			t.Skipf("child skipped:\n%s", out)
		case err != nil || !strings.Contains(string(out), "--- PASS: TestWriteErrorFailsWrites"):
			t.Fatalf("child: %v\n%s", err, out)
		}
		t.Logf("child:\n%s", out)
		return
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64m,nr_inodes=64"); err != nil {
		t.Skipf("SKIP: cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		// Detached: the failed database keeps its files open.
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: filepath.Join(root, "store")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for i := 0; ; i++ { // use up the inodes
		f, err := os.Create(filepath.Join(root, fmt.Sprint("inode", i)))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		f.Close()
	}
	data := make([]byte, 4<<10)
	acked := 0
	for i := 0; ; i++ {
		err := s.Add(ctx, store.Job{Function: "f", Key: store.NewKey(time.Unix(0, 0), uint64(i+1)), Data: data})
		if err == nil {
			acked++
			if acked > 20000 {
				t.Fatal("80 MB of jobs stored without a new log file")
			}
			continue
		}
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("Add when the log cannot be switched: %v, want ErrFailed", err)
		}
		t.Logf("%d jobs stored, then: %v", acked, err)
		break
	}
	if err := s.Add(ctx, store.Job{Function: "f", Key: "later", Data: data}); !errors.Is(err, ErrFailed) {
		t.Fatalf("Add after the failure: %v, want ErrFailed", err)
	}
	if err := s.Delete(ctx, store.Ref{Function: "f", Key: "later"}); !errors.Is(err, ErrFailed) {
		t.Fatalf("Delete after the failure: %v, want ErrFailed", err)
	}
	if n, err := s.Count(ctx); err != nil || n < acked {
		t.Fatalf("Count after the failure = %d, %v; want at least the %d acknowledged", n, err, acked)
	}
}
