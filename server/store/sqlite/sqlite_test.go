package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openT(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	var mu sync.Mutex
	files := map[string]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		mu.Lock()
		path, ok := files[t.Name()]
		if !ok {
			path = filepath.Join(t.TempDir(), "queue.sqlite")
			files[t.Name()] = path
		}
		mu.Unlock()
		s, err := Open(context.Background(), Options{Path: path})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// sqlite3 runs the sqlite3 program on path with script and returns its
// output; the test is skipped where the program is missing.
func sqlite3(t *testing.T, path, script string) string {
	t.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("SKIP: sqlite3 (the program) is not installed; apt-get install sqlite3")
	}
	cmd := exec.Command(bin, path)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	return string(out)
}

// TestGearmandLayout: a table made and filled the way gearmand 1.1.20's
// libsqlite3 plugin does (its CREATE TABLE and INSERT OR REPLACE, with the
// sqlite3 program) is replayed; the rows the store writes have the column
// types gearmand's replay insists on (TEXT keys, a BLOB payload even when
// empty, INTEGER priority and when_to_run), and gearmand's INSERT still
// works on the table after Open added the reducer column.
func TestGearmandLayout(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gearmand.sqlite")
	sqlite3(t, path, `CREATE TABLE jobs ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name));
INSERT OR REPLACE INTO jobs (priority, unique_key, function_name, data, when_to_run) VALUES (0, 'u1', 'resize', X'696D6700', 0);
INSERT OR REPLACE INTO jobs (priority, unique_key, function_name, data, when_to_run) VALUES (2, 'later', 'mail', X'', 1900000000);
`)
	s := openT(t, Options{Path: path, Table: "jobs"})
	got := storetest.ReplayAll(t, s)
	want := []store.Job{
		{Function: "resize", Key: "u1", Priority: 0, Data: []byte("img\x00")},
		{Function: "mail", Key: "later", Priority: 2, When: 1900000000},
	}
	if len(got) != len(want) {
		t.Fatalf("replayed %d jobs, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if g, w := got[i], want[i]; g.Function != w.Function || g.Key != w.Key || g.Priority != w.Priority ||
			string(g.Data) != string(w.Data) || g.When != w.When || g.Reducer != "" {
			t.Errorf("job %d = %+v, want %+v", i, g, w)
		}
	}
	ctx := context.Background()
	if err := s.Add(ctx,
		store.Job{Function: "f", Key: "empty", Priority: 1},
		store.Job{Function: "f", Key: store.NewKey(time.Now(), 1), Priority: 1, Data: []byte("x"), Reducer: "r"},
	); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, store.Ref{Function: "resize", Key: "u1"}); err != nil {
		t.Fatal(err)
	}
	out := sqlite3(t, path, `INSERT OR REPLACE INTO jobs (priority, unique_key, function_name, data, when_to_run) VALUES (1, 'g', 'gf', X'41', 0);
SELECT typeof(unique_key), typeof(function_name), typeof(priority), typeof(data), typeof(when_to_run), function_name FROM jobs ORDER BY rowid;
`)
	wantOut := "text|text|integer|blob|integer|mail\ntext|text|integer|blob|integer|f\ntext|text|integer|blob|integer|f\ntext|text|integer|blob|integer|gf\n"
	if out != wantOut {
		t.Errorf("column types:\n%s\nwant:\n%s", out, wantOut)
	}
	if n := len(storetest.ReplayAll(t, s)); n != 4 {
		t.Errorf("replayed %d jobs after gearmand's INSERT, want 4", n)
	}
}

// TestCreatesGearmandTable: on a new file the table is gearmand's, so
// that gearmand can open the file afterwards.
func TestCreatesGearmandTable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new.sqlite")
	s := openT(t, Options{Path: path})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := sqlite3(t, path, "SELECT sql FROM sqlite_master WHERE name = 'gearman_queue';\n")
	want := "CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, reducer TEXT NOT NULL DEFAULT '', gserverd_version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (unique_key, function_name))\n"
	if got != want {
		t.Errorf("schema:\n%s\nwant:\n%s", got, want)
	}
}

// TestRelativePath: a relative --libsqlite3-db is the file in the working
// directory (a file: URI with a relative path would be read as a host).
func TestRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := openT(t, Options{Path: filepath.Join("sub", "..", "rel.sqlite")})
	if err := s.Add(context.Background(), store.Job{Function: "f", Key: "k", Data: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rel.sqlite")); err != nil {
		t.Fatalf("the relative path's file: %v", err)
	}
}

// TestGroupCommit: Adds made at the same time share transactions.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := openT(t, Options{Path: filepath.Join(t.TempDir(), "q.sqlite")})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Add(context.Background(), store.Job{Function: "f", Key: string(rune('a'+i%26)) + strings.Repeat("x", i), Data: []byte("d")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Writes != n {
		t.Errorf("writes = %d, want %d", st.Writes, n)
	}
	if st.Commits >= n {
		t.Errorf("%d commits for %d concurrent Adds: no group commit", st.Commits, n)
	}
	t.Logf("%d Adds in %d commits", st.Writes, st.Commits)
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no path", Options{}, "no database file"},
		{"bad table", Options{Path: filepath.Join(dir, "a"), Table: "x;drop"}, "table name"},
		{"bad sync", Options{Path: filepath.Join(dir, "b"), Sync: "sometimes"}, "sync mode"},
		{"not a directory", Options{Path: filepath.Join(dir, "missing", "c")}, "sqlite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.opts)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%+v) = nil error, want %q", tc.opts, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestFullDisk: on a full filesystem (a small tmpfs) an Add fails with
// ErrNoSpace and is not stored, every acknowledged job stays intact,
// Deletes still work (in the headroom kept for them), and once jobs are
// deleted Adds succeed again.
func TestFullDisk(t *testing.T) {
	dir := testpeer.Tmpfs(t, 2<<20)
	path := filepath.Join(dir, "q.sqlite")
	ctx := context.Background()
	opts := Options{Path: path, Headroom: 256 << 10}
	s := openT(t, opts)
	data := make([]byte, 16<<10)
	var acked []store.Job
	refused := 0
	for i := 0; refused < 20; i++ {
		if i > 10000 {
			t.Fatal("10000 jobs of 16 KiB fit on a 2 MiB filesystem")
		}
		j := store.Job{Function: "f", Key: store.NewKey(time.Unix(0, 0), uint64(i+1)), Data: data}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.Add(actx, j)
		cancel()
		if err != nil {
			if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Add on a full disk: %v, want ErrNoSpace", err)
			}
			refused++
			continue
		}
		acked = append(acked, j)
	}
	t.Logf("%d jobs acknowledged before the disk was full", len(acked))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, opts)
	if got := storetest.ReplayAll(t, s); len(got) != len(acked) {
		t.Fatalf("replayed %d jobs after the disk was full, want the %d acknowledged", len(got), len(acked))
	}
	var refs []store.Ref
	for _, j := range acked[:len(acked)/2] {
		refs = append(refs, j.Ref())
	}
	if err := s.Delete(ctx, refs...); err != nil {
		t.Fatalf("Delete on a full disk: %v", err)
	}
	if err := s.Add(ctx, store.Job{Function: "f", Key: "after", Data: data}); err != nil {
		t.Fatalf("Add after deleting half the jobs: %v", err)
	}
}

// TestLockedByAnotherProcess: while another connection holds the file's
// write lock (gearmand, or the sqlite3 program, in a transaction), an Add
// ends at its ctx's deadline instead of hanging, and Adds succeed again
// once the lock is released.
func TestLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.sqlite")
	s := openT(t, Options{Path: path, BusyTimeout: 10 * time.Second})
	dsn, err := DSN(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	c, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = s.Add(actx, store.Job{Function: "f", Key: "locked", Data: []byte("1")})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add while the file is locked = %v, want context.DeadlineExceeded", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, store.Job{Function: "f", Key: "after", Data: []byte("2")}); err != nil {
		t.Fatalf("Add after the lock was released: %v", err)
	}
	keys := storetest.SortedKeys(storetest.ReplayAll(t, s))
	// The timed-out Add may or may not have been written after the lock
	// went away; the later one must be there.
	if !slices.Contains(keys, "f/after") {
		t.Errorf("stored keys %v, want f/after (and maybe f/locked)", keys)
	}
}
