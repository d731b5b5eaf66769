package queuefile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/embedded"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openStore(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), embedded.Options{Dir: t.TempDir(), Sync: embedded.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func sameJob(a, b store.Job) bool {
	return a.Function == b.Function && a.Key == b.Key && a.Priority == b.Priority &&
		bytes.Equal(a.Data, b.Data) && a.When == b.When && a.Reducer == b.Reducer
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	want := []store.Job{
		{Function: "resize", Key: "u1", Priority: 0, Data: []byte("hello")},
		{Function: "bin", Key: store.NewKey(time.Unix(1700000000, 0), 1), Priority: 1, Data: []byte{0, 1, 2, 0xff, '\n'}},
		{Function: "epoch", Key: "e", Priority: 2, When: 1900000000},
		{Function: "reduce", Key: "r", Priority: 1, Reducer: "sum", Data: []byte("[1,2]")},
		{Function: "bad\xffutf8", Key: "k\xfe", Priority: 1, Reducer: "r\x80", Data: []byte("x")},
	}
	if err := src.Add(ctx, want...); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := Export(ctx, src, &buf)
	if err != nil || n != len(want) {
		t.Fatalf("Export = %d, %v; want %d", n, err, len(want))
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	if wantLine := `{"function":"resize","key":"u1","priority":0,"when":0,"data":"aGVsbG8="}`; first != wantLine {
		t.Errorf("first line = %s, want %s", first, wantLine)
	}
	dst := openStore(t)
	n, err = Import(ctx, &buf, dst)
	if err != nil || n != len(want) {
		t.Fatalf("Import = %d, %v; want %d", n, err, len(want))
	}
	got := storetest.ReplayAll(t, dst)
	if len(got) != len(want) {
		t.Fatalf("imported %d jobs, want %d", len(got), len(want))
	}
	for i := range want { // embedded keeps add order
		if !sameJob(got[i], want[i]) {
			t.Errorf("job %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestImportErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"bad json", "{\"function\":\"f\",\"key\":\"k\",\"priority\":1,\"when\":0,\"data\":\"\"}\n{oops\n", "line 2"},
		{"unknown field", `{"function":"f","key":"k","colour":"red"}`, `unknown field "colour"`},
		{"no function", `{"key":"k","priority":1}`, "empty function"},
		{"bad priority", `{"function":"f","key":"k","priority":7}`, "priority 7"},
		{"bad base64", `{"function":"f","key":"k","data":"!!"}`, "line 1"},
		{"trailing", `{"function":"f","key":"k"} {"function":"g"}`, "trailing data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(context.Background(), strings.NewReader(tc.in), openStore(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestImportBlankLinesAndCRLF(t *testing.T) {
	in := "\n{\"function\":\"f\",\"key\":\"a\",\"priority\":1,\"when\":0,\"data\":\"eA==\"}\r\n\n{\"function\":\"f\",\"key\":\"b\",\"priority\":1,\"when\":0,\"data\":\"\"}"
	s := openStore(t)
	n, err := Import(context.Background(), strings.NewReader(in), s)
	if err != nil || n != 2 {
		t.Fatalf("Import = %d, %v; want 2 jobs", n, err)
	}
}

func TestReadLineBounded(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 100)+"\nok\n"), 16)
	if _, err := readLine(br, 50); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("readLine of a 100-byte line with max 50 = %v, want ErrLineTooLong", err)
	}
	br = bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", 40)+"\n"), 16)
	if b, err := readLine(br, 50); err != nil || len(b) != 40 {
		t.Fatalf("readLine of a 40-byte line = %d bytes, %v", len(b), err)
	}
}

func FuzzUnmarshalJob(f *testing.F) {
	for _, j := range []store.Job{
		{Function: "f", Key: "k", Priority: 1, Data: []byte("d")},
		{Function: "bad\xff", Key: "\x00", Priority: 2, When: -5, Reducer: "r"},
	} {
		b, _ := MarshalJob(j)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := UnmarshalJob(b)
		if err != nil {
			return
		}
		again, err := MarshalJob(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := UnmarshalJob(again)
		if err != nil || !sameJob(j, j2) {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", j, again, j2, err)
		}
	})
}

// TestImportGearmandSQLiteCLI makes a queue file the way gearmand's
// libsqlite3 plugin does (its CREATE TABLE and INSERT OR REPLACE), with the
// sqlite3 program, and imports it.
func TestImportGearmandSQLiteCLI(t *testing.T) {
	bin := testpeer.Require(t, "sqlite3")
	path := filepath.Join(t.TempDir(), "gearmand.sqlite")
	script := `CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name));
INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (0, 'u1', 'resize', X'696D670064617461', 0);
INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, '', 'resize', X'', 0);
INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (2, 'later', 'mail', X'6C61746572', 1900000000);
INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, 'u1', 'resize', X'7265706C61636564', 0);
`
	cmd := exec.Command(bin, path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	s := openStore(t)
	n, err := ImportGearmandSQLite(context.Background(), path, "", s)
	if err != nil || n != 3 {
		t.Fatalf("ImportGearmandSQLite = %d, %v; want 3", n, err)
	}
	got := map[string]store.Job{}
	for _, j := range storetest.ReplayAll(t, s) {
		got[j.Function+"/"+j.Unique()] = j
	}
	checks := []struct {
		ref       string
		prio      int
		data      string
		when      int64
		emptyUniq bool
	}{
		{"resize/u1", 1, "replaced", 0, false},
		{"resize/", 1, "", 0, true},
		{"mail/later", 2, "later", 1900000000, false},
	}
	for _, c := range checks {
		j, ok := got[c.ref]
		if !ok {
			t.Errorf("job %s missing; have %v", c.ref, got)
			continue
		}
		if j.Priority != c.prio || string(j.Data) != c.data || j.When != c.when {
			t.Errorf("job %s = %+v", c.ref, j)
		}
		if c.emptyUniq && !strings.HasPrefix(j.Key, "~") {
			t.Errorf("empty-unique row got key %q, want one from store.NewKey", j.Key)
		}
	}
	if _, err := ImportGearmandSQLite(context.Background(), path, "nope", s); err == nil || !strings.Contains(err.Error(), "no column") {
		t.Errorf("import of a missing table = %v, want an error naming the column", err)
	}
	if _, err := ImportGearmandSQLite(context.Background(), path, "x;drop", s); err == nil {
		t.Error("import accepted a table name with SQL in it")
	}
}

// TestImportFromRealGearmand runs gearmand 1.1.20 with its SQLite queue,
// submits background jobs with the gearman CLI, stops gearmand (no worker
// ever takes them) and imports the file it left.
func TestImportFromRealGearmand(t *testing.T) {
	gearman := testpeer.Require(t, "gearman")
	path := filepath.Join(t.TempDir(), "q.sqlite")
	g := testpeer.StartGearmand(t, "-q", "libsqlite3", "--libsqlite3-db", path)
	host, port, _ := net.SplitHostPort(g.Addr)
	submit := func(args ...string) {
		t.Helper()
		a := append([]string{"-h", host, "-p", port, "-b", "-s"}, args...)
		cmd := exec.Command(gearman, a...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gearman %v: %v: %s", a, err, out)
		}
	}
	submit("-f", "resize", "-u", "img1", "-I")
	submit("-f", "resize", "-u", "img2", "-L")
	submit("-f", "mail", "-u", "m1")
	g.Stop()
	s := openStore(t)
	n, err := ImportGearmandSQLite(context.Background(), path, "", s)
	if err != nil {
		t.Fatalf("ImportGearmandSQLite: %v (gearmand said: %s)", err, g.Output())
	}
	got := map[string]int{}
	for _, j := range storetest.ReplayAll(t, s) {
		got[j.Function+"/"+j.Key] = j.Priority
	}
	want := map[string]int{"resize/img1": 0, "resize/img2": 2, "mail/m1": 1}
	if n != len(want) || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("imported %d jobs %v, want %v", n, got, want)
	}
}
