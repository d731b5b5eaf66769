package embedded

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("GWORKERD_EMBEDDED_HOLD"); dir != "" {
		holdStore(dir)
		return
	}
	if dir := os.Getenv("GWORKERD_EMBEDDED_HELPER"); dir != "" {
		helperProcess(dir)
		return
	}
	if dir := os.Getenv(largeHelperEnv); dir != "" {
		largeHelper(dir)
		return
	}
	if os.Getenv(writeErrorChild) != "" {
		os.Exit(m.Run()) // a failed pebble is never closed: no leak check
	}
	goleak.VerifyTestMain(m)
}

// opener gives each test its own directory; a second open in the same test
// reopens it.
func opener(mode SyncMode) storetest.Opener { return openerWith(Options{Sync: mode}) }

// openerWith is opener with more options (Dir is set per test).
func openerWith(opts Options) storetest.Opener {
	var mu sync.Mutex
	dirs := map[string]string{}
	return func(t *testing.T) store.Store {
		mu.Lock()
		dir, ok := dirs[t.Name()]
		if !ok {
			dir = t.TempDir()
			dirs[t.Name()] = dir
		}
		mu.Unlock()
		o := opts
		o.Dir = dir
		s, err := Open(context.Background(), o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestStore(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			storetest.Run(t, opener(mode))
		})
		// Every job with a payload kept in its own file (blob.go).
		t.Run(string(mode)+"/files", func(t *testing.T) {
			storetest.Run(t, openerWith(Options{Sync: mode, BlobSize: 1}))
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no dir", Options{}, "Dir is empty"},
		{"bad sync", Options{Dir: t.TempDir(), Sync: "sometimes"}, `sync mode "sometimes"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseSyncMode(t *testing.T) {
	for in, want := range map[string]SyncMode{"": SyncAlways, "always": SyncAlways, "interval": SyncInterval, "none": SyncNone} {
		got, err := ParseSyncMode(in)
		if err != nil || got != want {
			t.Errorf("ParseSyncMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseSyncMode("Always!"); err == nil {
		t.Error("ParseSyncMode(Always!) = nil error")
	}
}

// TestGroupCommit checks that concurrent Adds share commits: far fewer
// fsynced batches than Adds.
func TestGroupCommit(t *testing.T) {
	s, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const workers, each = 32, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Add(context.Background(), store.Job{Function: "f", Key: fmt.Sprintf("%d-%d", w, i), Data: []byte("x")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n, _ := s.Count(context.Background())
	if n != workers*each {
		t.Fatalf("stored %d jobs, want %d", n, workers*each)
	}
	st := s.Stats()
	if st.Writes != workers*each {
		t.Errorf("Stats().Writes = %d, want %d", st.Writes, workers*each)
	}
	// 32 Adds waiting on each fsync: batches must be far fewer than Adds.
	if st.Commits == 0 || st.Commits > workers*each/2 {
		t.Errorf("%d Adds took %d commits, want at most %d (group commit)", workers*each, st.Commits, workers*each/2)
	}
	t.Logf("adds=%d commits=%d", workers*each, st.Commits)
}

// TestKilledMidBatch kills a helper process that is adding jobs with
// SIGKILL, reopens its store and checks that every job the helper reported
// as added (Add returned nil) is there, intact. Three rounds on the same
// directory, in each sync mode: none of them may lose an acknowledged job
// to a crash of the process (issue 10).
func TestKilledMidBatch(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(string(mode), func(t *testing.T) { killedMidBatch(t, mode) })
	}
}

func killedMidBatch(t *testing.T, mode SyncMode) {
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "GWORKERD_EMBEDDED_HELPER="+dir, fmt.Sprintf("GWORKERD_EMBEDDED_ROUND=%d", round),
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
		for sc.Scan() {
			key, ok := strings.CutPrefix(sc.Text(), "ack ")
			if !ok {
				continue
			}
			acked[key] = true
			if n++; n == 300+round*100 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		// Acks printed before the kill landed count too.
		for sc.Scan() {
			if key, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				acked[key] = true
			}
		}
		_ = cmd.Wait()
		if n < 300+round*100 {
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
		_ = s.Close()
		lost := 0
		for k := range acked {
			j, ok := got[k]
			if !ok {
				lost++
				continue
			}
			if string(j.Data) != helperData(k) {
				t.Errorf("round %d: job %s data %q, want %q", round, k, j.Data, helperData(k))
			}
		}
		t.Logf("round %d: acked=%d stored=%d lost=%d", round, len(acked), len(got), lost)
		if lost != 0 {
			t.Fatalf("round %d: %d acknowledged jobs lost", round, lost)
		}
	}
}

func helperData(key string) string { return strings.Repeat(key, 10) }

// helperProcess adds jobs from 8 goroutines forever, printing "ack KEY"
// once each Add has returned nil. The test kills it.
func helperProcess(dir string) {
	s, err := Open(context.Background(), Options{Dir: dir, Sync: SyncMode(os.Getenv("GWORKERD_EMBEDDED_SYNC"))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	round := os.Getenv("GWORKERD_EMBEDDED_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				k := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				k2 := k + "-b"
				err := s.Add(context.Background(),
					store.Job{Function: "crash", Key: k, Data: []byte(helperData(k))},
					store.Job{Function: "crash", Key: k2, Data: []byte(helperData(k2))})
				if err != nil {
					fmt.Fprintln(os.Stderr, "helper add:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s\nack %s\n", k, k2)
				_ = w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestLayoutSingleDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "queue")
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store directory not created: %v", err)
	}
}

// TestIntervalSyncRuns: with Sync: interval the syncer fsyncs the log
// after a write; with Sync: none nothing ever fsyncs it, not even Close.
func TestIntervalSyncRuns(t *testing.T) {
	s, err := Open(context.Background(), Options{Dir: t.TempDir(), Sync: SyncInterval, SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := s.wal.syncs.Load()
	if err := s.Add(context.Background(), store.Job{Function: "f", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.wal.syncs.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("interval syncer fsynced nothing in 10s")
		}
		time.Sleep(time.Millisecond) // the syncer's own ticker: poll its counter
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	n, err := Open(context.Background(), Options{Dir: t.TempDir(), Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := n.Add(context.Background(), store.Job{Function: "f", Key: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if got := n.wal.syncs.Load(); got != 0 {
		t.Errorf("Sync: none fsynced the log %d times, want 0", got)
	}
}

// Two servers must not share one directory: the second Open fails.
func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := Open(context.Background(), Options{Dir: dir})
	if err == nil {
		_ = s2.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
}

// TestOlderRecords: jobs written by a gserverd from before versioned
// deletes (record format 1, 8-byte index entries; the bytes are written
// out here) replay with Version 0 and are removed by a versioned Delete,
// as the server deletes them; a record added over one of them is
// versioned.
func TestOlderRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// format 1: fn "fn", key "a"/"b", reducer "", priority 1, when 0, data "d".
	b := s.db.NewBatch()
	for i, key := range []string{"a", "b"} {
		seq := uint64(i + 1)
		rec := []byte{1, 2, 'f', 'n', 1, key[0], 0, 2, 0, 'd'}
		_ = b.Set(jobKey(seq), rec, nil)
		_ = b.Set(indexKey(store.Ref{Function: "fn", Key: key}), binary.BigEndian.AppendUint64(nil, seq), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatalf("open a store with format-1 records: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	got := storetest.ReplayAll(t, s)
	if len(got) != 2 || got[0].Key != "a" || got[1].Key != "b" || got[0].Version != 0 || string(got[0].Data) != "d" || got[0].Priority != 1 {
		t.Fatalf("replay of format-1 records = %+v, want fn/a and fn/b, version 0, payload d", got)
	}
	if err := s.Delete(ctx, store.Ref{Function: "fn", Key: "a", Version: 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, store.Job{Function: "fn", Key: "b", Priority: 1, Data: []byte("new"), Version: 9}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, store.Ref{Function: "fn", Key: "b", Version: 8}); err != nil {
		t.Fatal(err)
	}
	got = storetest.ReplayAll(t, s)
	if len(got) != 1 || got[0].Key != "b" || got[0].Version != 9 || string(got[0].Data) != "new" {
		t.Fatalf("after deleting the old a and a stale delete of the re-added b: %+v, want only b (version 9, payload new)", got)
	}
}
