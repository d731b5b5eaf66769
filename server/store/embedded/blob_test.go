package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// payload returns n bytes that depend on key: a replayed payload that is
// not its own job's, or is cut or shifted, does not match. (A random
// block of a prime length, repeated: cheap to make under -race.)
func payload(key string, n int) []byte {
	h := fnv.New64a()
	h.Write([]byte(key))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(n)))
	block := make([]byte, min(n, 65521))
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	b := make([]byte, 0, n)
	for len(b) < n {
		b = append(b, block[:min(len(block), n-len(b))]...)
	}
	return b
}

// TestLargeJobMemory (issue 10, item 7): adding one 50 MiB job, and the
// flush of pebble's memtable after it, allocate less than half the
// payload's size in every sync mode (through pebble: its batch rounded
// up to 64 MiB, the log writer's blocks, and a flush copying the value
// into a table block and its compressed form, about 4 times the payload).
// The job replays byte for byte.
func TestLargeJobMemory(t *testing.T) {
	data := payload("big", 50<<20)
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, Options{Dir: t.TempDir(), Sync: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := s.Add(ctx, store.Job{Function: "f", Key: "big", Data: data}); err != nil {
				t.Fatal(err)
			}
			// What pebble does in the background once its memtable has
			// the job, done here so that it is counted.
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("Add and flush of a %d MiB job allocated %.1f MiB", len(data)>>20, float64(alloc)/(1<<20))
			if alloc > uint64(len(data)/2) {
				t.Errorf("Add and flush of a %d MiB job allocated %.1f MiB, want less than half the payload", len(data)>>20, float64(alloc)/(1<<20))
			}
			jobs := storetest.ReplayAll(t, s)
			if len(jobs) != 1 || !bytes.Equal(jobs[0].Data, data) {
				t.Fatalf("replayed %d jobs, want the 50 MiB job byte for byte", len(jobs))
			}
		})
	}
}

// blobFiles returns the payload files in the store at dir.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, blobDirName, "*.blob"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestLargeJobFiles: a large job's payload is in a file of its own, and
// the file goes with the job: deleted, replaced by a small job, replaced
// by another large one. With Sync: interval a deleted job's file stays
// until the log is fsynced (Close here). Small jobs have none.
func TestLargeJobFiles(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			// No syncer tick during the test: Close is the fsync.
			opts := Options{Dir: dir, Sync: mode, BlobSize: 1 << 10, SyncInterval: 1 << 62}
			s, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			add := func(key string, n int) {
				t.Helper()
				if err := s.Add(ctx, store.Job{Function: "f", Key: key, Data: payload(key, n)}); err != nil {
					t.Fatal(err)
				}
			}
			add("a", 4<<10)
			add("b", 4<<10)
			add("c", 4<<10)
			add("small", 100)
			if n := len(blobFiles(t, dir)); n != 3 {
				t.Fatalf("%d payload files for 3 large jobs", n)
			}
			if err := s.Delete(ctx, store.Ref{Function: "f", Key: "a"}); err != nil {
				t.Fatal(err)
			}
			add("b", 10)    // a large job replaced by a small one
			add("c", 5<<10) // by a large one
			want := 1
			if mode == SyncInterval {
				want = 4 // a's, b's and c's first file wait for the fsync
			}
			if n := len(blobFiles(t, dir)); n != want {
				t.Fatalf("%d payload files after deleting and replacing, want %d", n, want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(blobFiles(t, dir)); n != 1 {
				t.Fatalf("%d payload files after Close, want 1", n)
			}
			s, err = Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := map[string][]byte{}
			for _, j := range storetest.ReplayAll(t, s) {
				got[j.Key] = j.Data
			}
			for key, n := range map[string]int{"b": 10, "c": 5 << 10, "small": 100} {
				if !bytes.Equal(got[key], payload(key, n)) {
					t.Errorf("job %s: %d bytes, want its %d", key, len(got[key]), n)
				}
			}
			if len(got) != 3 {
				t.Errorf("replayed %d jobs, want 3", len(got))
			}
		})
	}
}

// TestLargeJobStaleDelete: versioned deletes (store.Ref.Version) hold
// for jobs whose payload is in a file: a delete older than the stored
// record, judged in the batch that replaced the record and again after a
// reopen (from the stored index entry), removes neither the record nor
// its file; a newer one removes both. The old record's file goes.
func TestLargeJobStaleDelete(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			opts := Options{Dir: dir, Sync: mode, BlobSize: 1 << 10}
			s, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if s != nil {
					_ = s.Close()
				}
			}()
			const base = int64(1)<<62 + 1
			del := func(version int64) {
				t.Helper()
				if err := s.Delete(ctx, store.Ref{Function: "f", Key: "a", Version: version}); err != nil {
					t.Fatal(err)
				}
			}
			reopen := func() {
				t.Helper()
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = Open(ctx, opts); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Add(ctx, store.Job{Function: "f", Key: "a", Data: payload("old", 4<<10), Version: base}); err != nil {
				t.Fatal(err)
			}
			newer := store.Job{Function: "f", Key: "a", Data: payload("a", 4<<10), Version: base + 2}
			// The stale delete in the same batch as the newer record.
			if err := s.do(ctx, &request{jobs: []store.Job{newer}, refs: []store.Ref{{Function: "f", Key: "a", Version: base + 1}}}); err != nil {
				t.Fatal(err)
			}
			del(base + 1)
			del(base + 2) // equal: not older
			reopen()      // removes the old record's file (Sync: interval)
			del(base + 1) // judged from the stored index entry
			del(base + 2)
			reopen()
			jobs := storetest.ReplayAll(t, s)
			if len(jobs) != 1 || jobs[0].Version != base+2 || !bytes.Equal(jobs[0].Data, newer.Data) {
				t.Fatalf("after stale deletes: %d jobs (%+v), want the newer large job byte for byte", len(jobs), jobs)
			}
			if files := blobFiles(t, dir); len(files) != 1 {
				t.Fatalf("payload files after stale deletes: %q, want the newer job's only", files)
			}
			del(base + 3)
			reopen()
			if jobs := storetest.ReplayAll(t, s); len(jobs) != 0 {
				t.Fatalf("after a newer delete: %d jobs, want none", len(jobs))
			}
			if files := blobFiles(t, dir); len(files) != 0 {
				t.Fatalf("payload files after a newer delete: %q, want none", files)
			}
		})
	}
}

// largeStore makes a stopped store of three large jobs (a, b, c) and
// returns its directory and their payload files by key.
func largeStore(t *testing.T) (string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Dir: dir, BlobSize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, key := range []string{"a", "b", "c"} {
		before := blobFiles(t, dir)
		if err := s.Add(ctx, store.Job{Function: "f", Key: key, Data: payload(key, 8<<10)}); err != nil {
			t.Fatal(err)
		}
		for _, f := range blobFiles(t, dir) {
			if !slices.Contains(before, f) {
				files[key] = f
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func replayKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	for _, j := range storetest.ReplayAll(t, s) {
		if !bytes.Equal(j.Data, payload(j.Key, 8<<10)) {
			t.Errorf("job %s: payload not its own", j.Key)
		}
		keys = append(keys, j.Key)
	}
	return keys
}

// TestLargeJobDamage: a payload file no record names (a crash between
// writing it and the record) is removed at Open; a record whose file is
// missing or short is damage, refused with a *DamageError naming the
// file unless AcceptDamage, which drops that job for good; a file whose
// bytes changed fails Replay.
func TestLargeJobDamage(t *testing.T) {
	ctx := context.Background()
	t.Run("orphan", func(t *testing.T) {
		dir, _ := largeStore(t)
		orphan := filepath.Join(dir, blobDirName, "00000000000000ff.blob")
		if err := os.WriteFile(orphan, []byte("half a payload"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, Options{Dir: dir, BlobSize: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan payload file still there after Open: %v", err)
		}
		if keys := replayKeys(t, s); len(keys) != 3 {
			t.Errorf("replayed %v, want a b c", keys)
		}
		// A new job's file does not reuse a live one's id.
		if err := s.Add(ctx, store.Job{Function: "f", Key: "d", Data: payload("d", 8<<10)}); err != nil {
			t.Fatal(err)
		}
		if keys := replayKeys(t, s); len(keys) != 4 {
			t.Errorf("replayed %v, want a b c d", keys)
		}
		if n := len(blobFiles(t, dir)); n != 4 {
			t.Errorf("%d payload files for 4 large jobs", n)
		}
	})
	for _, tc := range []struct {
		name   string
		damage func(path string) error
	}{
		{"missing", os.Remove},
		{"short", func(path string) error { return os.Truncate(path, 100) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, files := largeStore(t)
			if err := tc.damage(files["b"]); err != nil {
				t.Fatal(err)
			}
			_, err := Open(ctx, Options{Dir: dir})
			var de *DamageError
			if !errors.As(err, &de) || de.File != files["b"] || de.LostJobs != 1 || !strings.Contains(err.Error(), files["b"]) {
				t.Fatalf("Open = %v, want a *DamageError naming %s and 1 lost job", err, files["b"])
			}
			s, err := Open(ctx, Options{Dir: dir, AcceptDamage: true})
			if err != nil {
				t.Fatalf("Open with AcceptDamage: %v", err)
			}
			if keys := replayKeys(t, s); !slices.Equal(keys, []string{"a", "c"}) {
				t.Errorf("replayed %v, want [a c]", keys)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(ctx, Options{Dir: dir})
			if err != nil {
				t.Fatalf("Open after the damage was accepted: %v", err)
			}
			defer s.Close()
			if keys := replayKeys(t, s); !slices.Equal(keys, []string{"a", "c"}) {
				t.Errorf("replayed %v, want [a c]", keys)
			}
		})
	}
	t.Run("changed", func(t *testing.T) {
		dir, files := largeStore(t)
		f, err := os.OpenFile(files["c"], os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{'X'}, 4000); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		s, err := Open(ctx, Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.Replay(ctx, func(store.Job) error { return nil })
		if !errors.Is(err, errBlobDamaged) || !strings.Contains(err.Error(), files["c"]) {
			t.Fatalf("Replay = %v, want the damaged payload file %s", err, files["c"])
		}
	})
}

// largeHelperEnv names the store directory of largeHelper.
const largeHelperEnv = "GWORKERD_EMBEDDED_LARGE_HELPER"

// TestKilledLargeJobs: a process adding and deleting large jobs (their
// payloads in files) is killed with SIGKILL, three times on the same
// directory, in each sync mode. Every job whose Add returned nil replays
// byte for byte, the first round's 50 MiB one too; every job whose
// Delete returned nil is gone; and no payload file is left that no job
// refers to (those written or deleted when the kill came are removed at
// Open).
func TestKilledLargeJobs(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) { killedLargeJobs(t, mode) })
	}
}

func killedLargeJobs(t *testing.T, mode SyncMode) {
	dir := t.TempDir()
	acked := map[string]bool{}
	deleted := map[string]bool{}
	deleting := map[string]bool{} // a Delete was sent: stored or not
	const kill = 40
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), largeHelperEnv+"="+dir, fmt.Sprintf("GWORKERD_EMBEDDED_ROUND=%d", round),
			"GWORKERD_EMBEDDED_SYNC="+string(mode))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		record := func(line string) {
			if key, ok := strings.CutPrefix(line, "ack "); ok {
				acked[key] = true
				n++
			}
			if key, ok := strings.CutPrefix(line, "del "); ok {
				deleted[key] = true
			}
			if key, ok := strings.CutPrefix(line, "deleting "); ok {
				deleting[key] = true
			}
		}
		for sc.Scan() {
			if record(sc.Text()); n >= kill {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for sc.Scan() { // what was printed before the kill landed counts too
			record(sc.Text())
		}
		_ = cmd.Wait()
		if n < kill {
			t.Fatalf("round %d: helper exited after %d acks", round, n)
		}
		s, err := Open(context.Background(), Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		got := map[string]store.Job{}
		for _, j := range storetest.ReplayAll(t, s) {
			got[j.Key] = j
		}
		files := len(blobFiles(t, dir))
		_ = s.Close()
		for k := range acked {
			j, ok := got[k]
			switch {
			case deleted[k] && ok:
				t.Errorf("round %d: job %s stored after its Delete returned nil", round, k)
			case deleted[k], deleting[k] && !ok:
			case !ok:
				t.Errorf("round %d: acknowledged job %s lost", round, k)
			case !bytes.Equal(j.Data, largeHelperData(k)):
				t.Errorf("round %d: job %s: %d bytes, not its %d", round, k, len(j.Data), len(largeHelperData(k)))
			}
		}
		if files != len(got) {
			t.Errorf("round %d: %d payload files for %d stored large jobs", round, files, len(got))
		}
		t.Logf("round %d: acked=%d deleted=%d stored=%d files=%d", round, len(acked), len(deleted), len(got), files)
		if t.Failed() {
			t.FailNow()
		}
	}
}

var bigPayload = sync.OnceValue(func() []byte { return payload("big", 50<<20) })

// largeHelperData is the payload of largeHelper's job key: 64-72 KiB,
// or 50 MiB for the job "big".
func largeHelperData(key string) []byte {
	if key == "big" {
		return bigPayload()
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return payload(key, 64<<10+int(h.Sum32()%(8<<10)))
}

// largeHelper adds (and deletes every other one of) large jobs from 4
// goroutines forever, printing "ack KEY" once an Add returned nil,
// "deleting KEY" before a Delete and "del KEY" once it returned nil; in round 0 it adds a 50 MiB job first.
// The test kills it.
func largeHelper(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, Sync: SyncMode(os.Getenv("GWORKERD_EMBEDDED_SYNC")), BlobSize: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	round := os.Getenv("GWORKERD_EMBEDDED_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	say := func(what, key string) {
		mu.Lock()
		fmt.Fprintf(w, "%s %s\n", what, key)
		_ = w.Flush()
		mu.Unlock()
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	if round == "0" {
		if err := s.Add(ctx, store.Job{Function: "large", Key: "big", Data: largeHelperData("big")}); err != nil {
			fail(err)
		}
		say("ack", "big")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := ""
			for i := 0; ; i++ {
				k := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if err := s.Add(ctx, store.Job{Function: "large", Key: k, Data: largeHelperData(k)}); err != nil {
					fail(err)
				}
				say("ack", k)
				if i%2 == 1 {
					say("deleting", prev)
					if err := s.Delete(ctx, store.Ref{Function: "large", Key: prev}); err != nil {
						fail(err)
					}
					say("del", prev)
				}
				prev = k
			}
		}()
	}
	wg.Wait()
}
