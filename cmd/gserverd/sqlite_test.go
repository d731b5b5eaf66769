package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite" // the test reads the queue file directly

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// These tests run gserverd on gearmand's own SQLite queue file (issue 11,
// item 2): -q libsqlite3 serves a queue gearmand wrote, in place, and
// gearmand reads back what gserverd leaves.

// sqliteRows returns "function/unique=payload" for every row of the queue
// table in the file at path, sorted.
func sqliteRows(t *testing.T, path, table string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), "SELECT function_name, unique_key, data FROM "+table)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var fn, unique string
		var data []byte
		if err := rows.Scan(&fn, &unique, &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, fn+"/"+unique+"="+string(data))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// submitBgPrio submits a background job with the submit type typ (its
// priority) and waits for JOB_CREATED.
func submitBgPrio(t *testing.T, addr string, typ protocol.Type, fn, unique, data string) {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(typ, fn, unique, data)
	c.expect(protocol.JobCreated)
	c.c.Close()
}

// workN grabs n jobs of fn on addr and completes them; it returns them as
// unique=payload, with the unique left out ("=payload") when keepUnique
// says so.
func workN(t *testing.T, addr, fn string, n int, keepUnique func(string) bool) []string {
	t.Helper()
	w := dialRaw(t, addr)
	w.send(protocol.CanDo, fn)
	var got []string
	for len(got) < n {
		a, ok := w.grabNow()
		if !ok {
			t.Fatalf("worker for %s got NO_JOB after %d jobs, want %d: %v", fn, len(got), n, got)
		}
		u := a.unique
		if !keepUnique(u) {
			u = ""
		}
		got = append(got, u+"="+a.data)
		w.send(protocol.WorkComplete, a.handle, "done")
	}
	w.c.Close()
	return got
}

// TestBinarySQLiteWithGearmand is issue 11's SQLite test: gearmand
// (-q libsqlite3) writes a queue, gserverd serves it in place with
// -q libsqlite3 on the same file (given as a relative path), completes
// half the jobs and takes two more, then gearmand reads the rest back and
// a worker on gearmand gets exactly those jobs, after which the table is
// empty.
func TestBinarySQLiteWithGearmand(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "gearmand")
	dir := t.TempDir()
	path := filepath.Join(dir, "gearmand-queue.sqlite")
	const fn, table = "sqlite_interop", "jobs"
	gflags := []string{"-q", "libsqlite3", "--libsqlite3-db", path, "--libsqlite3-table", table}

	// gearmand writes the queue: named uniques at all three priorities and
	// one empty unique (gearmand stores a UUID for it).
	g := testpeer.StartGearmand(t, gflags...)
	var want []string // unique=payload; "" for the unique gearmand made up
	types := []protocol.Type{protocol.SubmitJobHighBg, protocol.SubmitJobBg, protocol.SubmitJobLowBg}
	for i := range 9 {
		u, data := fmt.Sprintf("u%d", i), fmt.Sprintf("payload %d \x00\xff", i)
		submitBgPrio(t, g.Addr, types[i%3], fn, u, data)
		want = append(want, u+"="+data)
	}
	submitBgPrio(t, g.Addr, protocol.SubmitJobBg, fn, "", "no unique")
	want = append(want, "=no unique")
	g.Stop()
	if rows := sqliteRows(t, path, table); len(rows) != len(want) {
		t.Fatalf("gearmand left %d rows, want %d: %q", len(rows), len(want), rows)
	}

	// gserverd serves it in place; the path is relative to its working
	// directory.
	named := func(u string) bool { return strings.HasPrefix(u, "u") || strings.HasPrefix(u, "s") }
	p := startGserverdIn(t, dir, "-q", "libsqlite3", "--libsqlite3-db", filepath.Base(path), "--libsqlite3-table", table)
	if n := queueTotal(t, p.Addr, fn); n != len(want) {
		t.Fatalf("gserverd replayed %d jobs of %s, want %d", n, fn, len(want))
	}
	if got, want := queuedByPriority(t, p.Addr)[fn], "3 4 3"; got != want {
		t.Errorf("prioritystatus of %s on gserverd = %q, want %q (high normal low)", fn, got, want)
	}
	done := workN(t, p.Addr, fn, len(want)/2, named)
	submitBgPrio(t, p.Addr, protocol.SubmitJobLowBg, fn, "s1", "from gserverd")
	submitBgPrio(t, p.Addr, protocol.SubmitJobBg, fn, "", "from gserverd, no unique")
	rest := map[string]bool{"s1=from gserverd": true, "=from gserverd, no unique": true}
	for _, w := range want {
		rest[w] = true
	}
	for _, d := range done {
		if !rest[d] {
			t.Fatalf("gserverd gave the worker %q, which gearmand never queued (queued: %q)", d, want)
		}
		delete(rest, d)
	}
	eventually(t, "gserverd deletes the completed jobs' rows", func() bool {
		return len(sqliteRows(t, path, table)) == len(rest)
	})
	p.Stop()

	// gearmand reads the rest back.
	g2 := testpeer.StartGearmand(t, gflags...)
	if got, want := queueTotal(t, g2.Addr, fn), len(rest); got != want {
		t.Fatalf("gearmand replayed %d jobs of %s after gserverd, want %d\nrows: %q", got, fn, want, sqliteRows(t, path, table))
	}
	for _, d := range workN(t, g2.Addr, fn, len(rest), named) {
		if !rest[d] {
			t.Errorf("gearmand gave the worker %q, want one of %v", d, rest)
		}
		delete(rest, d)
	}
	if len(rest) > 0 {
		t.Errorf("gearmand never gave out %v", rest)
	}
	eventually(t, "gearmand deletes the rows of the jobs it completed", func() bool {
		return len(sqliteRows(t, path, table)) == 0
	})
}

// TestCrashSIGKILLSQLite: clients pipeline background submits to gserverd
// -q libsqlite3, with each --sync mode; gserverd is killed with SIGKILL
// once a random number of them has been acknowledged, three times,
// restarted on the same file each time; then a worker drains the queue.
// Every job whose JOB_CREATED a client read must run at least once
// (SQLite has written the commit to the file before Add returns, fsynced
// or not).
func TestCrashSIGKILLSQLite(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"always", "interval", "none"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			crashSQLite(t, mode)
		})
	}
}

func crashSQLite(t *testing.T, mode string) {
	path := filepath.Join(t.TempDir(), "queue.sqlite")
	args := []string{"-q", "libsqlite3", "--libsqlite3-db", path, "--sync", mode, "--http-listen", ""}
	const (
		rounds  = 3
		clients = 2
		fn      = "crashsqlite"
	)
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	for round := range rounds {
		p := startGserverd(t, args...)
		killAt := 300 + rand.IntN(700)
		n := 0
		reached := make(chan struct{})
		ack := func(data string) {
			mu.Lock()
			defer mu.Unlock()
			acked[data] = true
			if n++; n == killAt {
				close(reached)
			}
		}
		errs := make(chan error, clients)
		for c := range clients {
			go func() {
				errs <- pipelineClient(p.Addr, fn, fmt.Sprintf("r%d-c%d-", round, c), 64, ack, nil)
			}()
		}
		select {
		case <-reached:
		case err := <-errs:
			t.Fatalf("round %d: a client stopped before the crash: %v\n%s", round, err, p.Output())
		}
		p.Kill()
		for range clients {
			if err := <-errs; !crashError(err) {
				t.Fatalf("round %d: client failed other than by the crash: %v", round, err)
			}
		}
	}
	p := startGserverd(t, args...)
	ran := drainAll(t, p.Addr, fn)
	lost := 0
	var missing []string
	for data := range acked {
		if ran[data] == 0 {
			lost++
			if len(missing) < 10 {
				missing = append(missing, data)
			}
		}
	}
	msg := fmt.Sprintf("-q libsqlite3 --sync %s, %d SIGKILLs: acknowledged %d, lost %d, stored but never acknowledged %d",
		mode, rounds, len(acked), lost, len(ran)-(len(acked)-lost))
	t.Log(msg)
	if lost > 0 {
		t.Fatalf("%s; never came back, for example: %s", msg, strings.Join(missing, " "))
	}
}

// TestQueueImportGearmandSQLiteRelative: `gserverd queue import
// --from-gearmand-sqlite` takes a path relative to the working directory
// (it failed with "invalid uri authority").
func TestQueueImportGearmandSQLiteRelative(t *testing.T) {
	t.Parallel()
	bin := testpeer.Require(t, "sqlite3")
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	sq := exec.Command(bin, filepath.Join(work, "old", "gearmand.sqlite"))
	sq.Stdin = strings.NewReader(`CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name));
INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, 'u1', 'resize', X'696D67', 0);
`)
	if out, err := sq.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	cmd := exec.Command(testpeer.Binary(t, "gserverd"), "queue", "import", "--data-dir", "data", "--from-gearmand-sqlite", "old/gearmand.sqlite")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "1 jobs imported") {
		t.Fatalf("import of a relative path: %v: %s", err, out)
	}
	// Importing the file that -q libsqlite3 serves is refused.
	same := exec.Command(testpeer.Binary(t, "gserverd"), "queue", "import", "-q", "libsqlite3", "--libsqlite3-db", "old/gearmand.sqlite",
		"--from-gearmand-sqlite", filepath.Join(work, "old", "gearmand.sqlite"))
	same.Dir = work
	if out, err := same.CombinedOutput(); exitCode(err) != 2 || !strings.Contains(string(out), "nothing to import") {
		t.Errorf("import of the served file into itself: %v, want exit 2 and \"nothing to import\": %s", err, out)
	}
	got := strings.Join(exportLines(t, filepath.Join(work, "data")), "\n")
	if want := `{"function":"resize","key":"u1","priority":1,"when":0,"data":"aW1n"}`; !strings.Contains(got, want) {
		t.Errorf("export after the import lacks %s:\n%s", want, got)
	}
}
