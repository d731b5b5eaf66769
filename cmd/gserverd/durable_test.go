package main

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// These tests run the built gserverd with its embedded store (issue 5):
// the queue tools, SIGKILL during submits, and a worker killed mid-job.

// queueTotal returns the `status` total of fn on addr (0 when absent).
func queueTotal(t testing.TB, addr, fn string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute)) // a large replay delays the first answer
	if _, err := c.Write([]byte("status\n")); err != nil {
		t.Fatalf("status: %v", err)
	}
	lines, err := protocol.ReadAdminList(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	st, err := protocol.ParseStatus(lines)
	if err != nil {
		t.Fatalf("status %q: %v", lines, err)
	}
	for _, s := range st {
		if s.Function == fn {
			return s.Total
		}
	}
	return 0
}

// exportLines runs `gserverd queue export` on dir and returns the lines, sorted.
func exportLines(t *testing.T, dir string) []string {
	t.Helper()
	out, errOut, code := runBinary(t, nil, "queue", "export", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("queue export --data-dir %s: exit %d: %s", dir, code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if out == "" {
		lines = nil
	}
	slices.Sort(lines)
	return lines
}

// TestQueueExportImport: jobs submitted to a gserverd on one data dir are
// exported with `gserverd queue export`, imported into another with
// `gserverd queue import --file`, and a gserverd started there has them.
func TestQueueExportImport(t *testing.T) {
	t.Parallel()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	p := startGserverd(t, "--data-dir", a)
	rc := dialRaw(t, p.Addr)
	rc.send(protocol.SubmitJobBg, "resize", "u1", "img1")
	rc.expect(protocol.JobCreated)
	rc.send(protocol.SubmitJobHighBg, "resize", "u2", "img\x002")
	rc.expect(protocol.JobCreated)
	rc.send(protocol.SubmitJobEpoch, "mail", "", "1900000000", "later")
	rc.expect(protocol.JobCreated)
	p.Stop()

	exported := exportLines(t, a)
	if len(exported) != 3 {
		t.Fatalf("export of %s: %d lines, want 3:\n%s", a, len(exported), strings.Join(exported, "\n"))
	}
	for _, want := range []string{`"key":"u2","priority":0`, `"when":1900000000`, `"key":"u1","priority":1`} {
		if !strings.Contains(strings.Join(exported, "\n"), want) {
			t.Errorf("export lacks %s:\n%s", want, strings.Join(exported, "\n"))
		}
	}
	file := filepath.Join(t.TempDir(), "q.jsonl")
	if _, errOut, code := runBinary(t, nil, "queue", "export", "--data-dir", a, "--file", file); code != 0 {
		t.Fatalf("queue export --file: exit %d: %s", code, errOut)
	}
	_, errOut, code := runBinary(t, nil, "queue", "import", "--data-dir", b, "--file", file)
	if code != 0 || !strings.Contains(errOut, "3 jobs imported into embedded "+b) {
		t.Fatalf("queue import: exit %d: %s", code, errOut)
	}
	if got := exportLines(t, b); !slices.Equal(got, exported) {
		t.Fatalf("export after import:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(exported, "\n"))
	}
	q := startGserverd(t, "--data-dir", b)
	if n := queueTotal(t, q.Addr, "resize"); n != 2 {
		t.Errorf("gserverd on the imported dir: resize total %d, want 2", n)
	}
	if n := queueTotal(t, q.Addr, "mail"); n != 1 {
		t.Errorf("gserverd on the imported dir: mail total %d, want 1", n)
	}

	// Bad use is a usage error; an open store is locked.
	for _, args := range [][]string{
		{"queue"}, {"queue", "frob"}, {"queue", "export", "--from-gearmand-sqlite", file},
		{"queue", "import", "-q", "builtin", "--file", file}, {"queue", "import", "--table", "t"},
	} {
		if _, errOut, code := runBinary(t, nil, args...); code != 2 {
			t.Errorf("gserverd %q: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	if _, errOut, code := runBinary(t, nil, "queue", "export", "--data-dir", b); code != 1 || !strings.Contains(errOut, "in use") {
		t.Errorf("export of a dir a running gserverd holds: exit %d, want 1 and \"in use\" (%s)", code, errOut)
	}
	if _, errOut, code := runBinary(t, nil, "-L", "127.0.0.1", "-p", "0", "--data-dir", b); code != 1 || !strings.Contains(errOut, "is in use by process") {
		t.Errorf("a second gserverd on the same --data-dir: exit %d, want 1 and \"is in use by process\" (%s)", code, errOut)
	}
}

// TestQueueImportGearmandSQLite writes a queue file the way gearmand's
// libsqlite3 plugin does (with the sqlite3 program) and imports it with
// `gserverd queue import --from-gearmand-sqlite`.
func TestQueueImportGearmandSQLite(t *testing.T) {
	t.Parallel()
	bin := testpeer.Require(t, "sqlite3")
	path := filepath.Join(t.TempDir(), "gearmand.sqlite")
	script := `CREATE TABLE jobs ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name));
INSERT OR REPLACE INTO jobs (priority, unique_key, function_name, data, when_to_run) VALUES (0, 'u1', 'resize', X'696D67', 0);
INSERT OR REPLACE INTO jobs (priority, unique_key, function_name, data, when_to_run) VALUES (1, '', 'resize', X'', 0);
INSERT OR REPLACE INTO jobs (priority, unique_key, function_name, data, when_to_run) VALUES (2, 'later', 'mail', X'6C61746572', 1900000000);
`
	cmd := exec.Command(bin, path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "d")
	_, errOut, code := runBinary(t, nil, "queue", "import", "--data-dir", dir, "--from-gearmand-sqlite", path, "--table", "jobs")
	if code != 0 || !strings.Contains(errOut, "3 jobs imported") {
		t.Fatalf("import --from-gearmand-sqlite: exit %d: %s", code, errOut)
	}
	got := strings.Join(exportLines(t, dir), "\n")
	for _, want := range []string{
		`{"function":"mail","key":"later","priority":2,"when":1900000000,"data":"bGF0ZXI="}`,
		`{"function":"resize","key":"u1","priority":0,"when":0,"data":"aW1n"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("export after the import lacks %s:\n%s", want, got)
		}
	}
	if _, errOut, code := runBinary(t, nil, "queue", "import", "--data-dir", dir, "--from-gearmand-sqlite", path); code != 1 {
		t.Errorf("import of a missing table: exit %d, want 1 (%s)", code, errOut)
	}
}

// crashClient submits background jobs with unique ids one after another
// until its connection fails, and reports each unique whose JOB_CREATED it
// read.
func crashClient(addr, prefix string, acked func(string)) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r := protocol.NewReader(c, protocol.Limits{})
	buf := make([]byte, 0, 128)
	for i := 0; ; i++ {
		u := prefix + strconv.Itoa(i)
		buf = protocol.AppendPacketString(buf[:0], protocol.Req, protocol.SubmitJobBg, "crash", u, "payload-"+u)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return err
		}
		f, err := r.Next()
		if err != nil {
			return err
		}
		if f.Text || f.Packet.Type != protocol.JobCreated {
			return fmt.Errorf("got %v, want JOB_CREATED", f.Packet.Type)
		}
		acked(u)
	}
}

// drainWorker grabs fn's jobs with GRAB_JOB_UNIQ and completes them,
// reporting each unique, until stop is closed.
func drainWorker(addr, fn string, done func(string), stop <-chan struct{}) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	go func() { <-stop; c.Close() }()
	r := protocol.NewReader(c, protocol.Limits{})
	if err := protocol.WritePacket(c, protocol.Req, protocol.CanDo, []byte(fn)); err != nil {
		return err
	}
	for {
		if err := protocol.WritePacket(c, protocol.Req, protocol.GrabJobUniq); err != nil {
			return err
		}
		f, err := r.Next()
		if err != nil {
			return err
		}
		switch f.Packet.Type {
		case protocol.JobAssignUniq:
			a := f.Packet.Args
			done(string(a[2]))
			if err := protocol.WritePacket(c, protocol.Req, protocol.WorkComplete, a[0], nil); err != nil {
				return err
			}
		case protocol.NoJob:
			if err := protocol.WritePacket(c, protocol.Req, protocol.PreSleep); err != nil {
				return err
			}
			for f.Packet.Type != protocol.Noop {
				if f, err = r.Next(); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("worker got %v", f.Packet.Type)
		}
	}
}

// TestCrashSIGKILL is issue 5's crash test: 4 clients submit background
// jobs as fast as they can to gserverd (embedded store, --sync always);
// gserverd is killed with SIGKILL at a random moment, ten times, and
// restarted on the same data dir; then workers drain the queue. Every job
// whose JOB_CREATED reached a client must be completed at least once.
func TestCrashSIGKILL(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	args := []string{"-q", "embedded", "--sync", "always", "--data-dir", dir}
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	ack := func(u string) { mu.Lock(); acked[u] = true; mu.Unlock() }
	const rounds, clients = 10, 4
	for round := 0; round < rounds; round++ {
		p := startGserverd(t, args...)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- crashClient(p.Addr, fmt.Sprintf("r%d-c%d-", round, c), ack)
			}()
		}
		time.Sleep(time.Duration(50+rand.IntN(650)) * time.Millisecond) // the random moment of the crash
		p.Kill()
		wg.Wait()
		close(errs)
		for err := range errs {
			var ne net.Error
			if err != nil && !errors.As(err, &ne) && !strings.Contains(err.Error(), "EOF") &&
				!strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "refused") && !strings.Contains(err.Error(), "broken pipe") {
				t.Fatalf("round %d: client failed other than by the crash: %v", round, err)
			}
		}
		mu.Lock()
		t.Logf("round %d: %d jobs acknowledged so far", round, len(acked))
		mu.Unlock()
	}
	if len(acked) < rounds*clients {
		t.Fatalf("only %d jobs acknowledged in %d rounds: the clients did not run", len(acked), rounds)
	}

	p := startGserverd(t, args...)
	var (
		dmu       sync.Mutex
		completed = map[string]int{}
	)
	done := func(u string) { dmu.Lock(); completed[u]++; dmu.Unlock() }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = drainWorker(p.Addr, "crash", done, stop) }()
	}
	deadline := time.Now().Add(60 * time.Second)
	for queueTotal(t, p.Addr, "crash") > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // another process's queue: poll its status
	}
	close(stop)
	wg.Wait()
	left := queueTotal(t, p.Addr, "crash")

	lost, dups := 0, 0
	for u := range acked {
		if completed[u] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged job %s was never completed", u)
			}
		}
	}
	for _, n := range completed {
		dups += n - 1
	}
	msg := fmt.Sprintf("lost=%d duplicates=%d (acknowledged %d, completed %d distinct, %d never acknowledged but stored, %d left in the queue)",
		lost, dups, len(acked), len(completed), len(completed)-(len(acked)-lost), left)
	t.Log(msg)
	fmt.Println("TestCrashSIGKILL: " + msg)
	if lost > 0 || left > 0 {
		t.Fatalf("%s\ngserverd output:\n%s", msg, p.Output())
	}
}

// grabOne connects a raw worker for fn and returns it with the handle and
// unique of the job it was assigned, sleeping (PRE_SLEEP) until there is one.
func grabOne(t *testing.T, addr, fn string) (*rawConn, string, string) {
	t.Helper()
	w := dialRaw(t, addr)
	w.send(protocol.CanDo, fn)
	for {
		w.send(protocol.GrabJobUniq)
		_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := w.r.Next()
		if err != nil {
			t.Fatalf("waiting for a job: %v", err)
		}
		switch {
		case !f.Text && f.Packet.Type == protocol.JobAssignUniq:
			a := f.Packet.Args
			return w, string(a[0]), string(a[2])
		case !f.Text && f.Packet.Type == protocol.NoJob:
			// Not requeued yet: sleep until the server wakes us.
			w.send(protocol.PreSleep)
			w.expect(protocol.Noop)
		default:
			t.Fatalf("worker got %v (text %q), want JOB_ASSIGN_UNIQ or NO_JOB", f.Packet.Type, f.Line)
		}
	}
}

// TestWorkerKilledMidJob: a worker whose connection drops mid-job (as when
// it is SIGKILLed) gets its job redone under the default -j -1; with -j 1
// (at most one attempt) the job is dropped and leaves the store, so a
// gserverd restarted on the same data dir does not replay it, while a job
// nobody took is replayed. (A crash of gserverd itself before the
// background delete is committed replays the job: at least once.)
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	t.Run("redone", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "data")
		p := startGserverd(t, "--data-dir", dir)
		c := dialRaw(t, p.Addr)
		c.send(protocol.SubmitJobBg, "kill", "k1", "x")
		h := c.expect(protocol.JobCreated)[0]
		w1, h1, _ := grabOne(t, p.Addr, "kill")
		w1.c.Close() // the worker dies mid-job
		w2, h2, u2 := grabOne(t, p.Addr, "kill")
		if h1 != h || h2 != h || u2 != "k1" {
			t.Fatalf("handles %s, %s (unique %s); want %s twice (k1)", h1, h2, u2, h)
		}
		w2.send(protocol.WorkComplete, h2, "")
		eventually(t, "the completed job leaves the queue", func() bool { return queueTotal(t, p.Addr, "kill") == 0 })
		// A clean stop: the store delete of a finished job is written in
		// the background, so a SIGKILL right now could replay it (at least
		// once, by design; TestCrashSIGKILL covers crashes).
		p.Stop()
		q := startGserverd(t, "--data-dir", dir)
		if n := queueTotal(t, q.Addr, "kill"); n != 0 {
			t.Errorf("after restart: %d kill jobs replayed, want 0 (completed jobs leave the store)", n)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "data")
		p := startGserverd(t, "--data-dir", dir, "-j", "1")
		c := dialRaw(t, p.Addr)
		c.send(protocol.SubmitJobBg, "kill", "k1", "x")
		c.expect(protocol.JobCreated)
		c.send(protocol.SubmitJobBg, "keep", "k2", "y")
		c.expect(protocol.JobCreated)
		w1, _, u := grabOne(t, p.Addr, "kill")
		if u != "k1" {
			t.Fatalf("assigned unique %q, want k1", u)
		}
		w1.c.Close() // the worker dies mid-job: with -j 1 that was its only attempt
		eventually(t, "the job is dropped for retries", func() bool { return queueTotal(t, p.Addr, "kill") == 0 })
		p.Stop() // a clean stop, as in "redone"
		q := startGserverd(t, "--data-dir", dir, "-j", "1")
		if n := queueTotal(t, q.Addr, "kill"); n != 0 {
			t.Errorf("after restart: %d dropped jobs replayed, want 0 (a drop for retries deletes it from the store)", n)
		}
		if n := queueTotal(t, q.Addr, "keep"); n != 1 {
			t.Errorf("after restart: %d untouched jobs replayed, want 1", n)
		}
	})
}
