package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const addr = "127.0.0.1:3306"

func require(t *testing.T) {
	t.Helper()
	storetest.RequireTCP(t, "MariaDB/MySQL", addr)
}

func optsFor(hostport, table string) Options {
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	return Options{Host: host, Port: p, User: "root", DB: "test", Table: table}
}

func rawDB(t *testing.T) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", addr, "test"
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// tableFor returns a table name of the test's own, dropped at its end.
func tableFor(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "gserverd_test_" + hex.EncodeToString(b)
	db := rawDB(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name
}

func TestStore(t *testing.T) {
	require(t)
	var mu sync.Mutex
	tables := map[string]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		mu.Lock()
		table, ok := tables[t.Name()]
		if !ok {
			table = tableFor(t)
			tables[t.Name()] = table
		}
		mu.Unlock()
		s, err := Open(context.Background(), optsFor(addr, table))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestOutage(t *testing.T) {
	require(t)
	table := tableFor(t)
	storetest.RunOutage(t, addr, func(t *testing.T, a string) store.Store {
		s, err := Open(context.Background(), optsFor(a, table))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestStall: with a short deadline on each call, a database that stops
// answering (packets dropped, not reset) fails Add, Delete and Replay
// instead of hanging them, and Close still returns.
func TestStall(t *testing.T) {
	require(t)
	table := tableFor(t)
	storetest.RunStall(t, addr, func(t *testing.T, a string) store.Store {
		s, err := Open(context.Background(), optsFor(a, table))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestReplaysGearmandTable makes the table exactly as gearmand 1.1.20's
// MySQL plugin does and inserts rows with its prepared INSERT, then checks
// that Replay returns them and that gearmand's INSERT still works after
// Open added our columns.
func TestReplaysGearmandTable(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	db := rawDB(t)
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+"(unique_key VARCHAR(64),function_name VARCHAR(255),priority INT,data LONGBLOB,when_to_run INT,unique key (unique_key, function_name))"); err != nil {
		t.Fatal(err)
	}
	ins, err := db.PrepareContext(ctx, "INSERT INTO "+table+" (unique_key, function_name, priority, data, when_to_run) VALUES(?, ?, ?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	want := []store.Job{
		{Function: "resize", Key: "u1", Priority: 0, Data: []byte("img\x00data")},
		{Function: "resize", Key: "", Priority: 1, Data: []byte("empty unique")},
		{Function: "mail", Key: "u1", Priority: 2, Data: []byte("later"), When: 1900000000},
	}
	for _, j := range want {
		if _, err := ins.ExecContext(ctx, j.Key, j.Function, j.Priority, j.Data, j.When); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, optsFor(addr, table))
	if err != nil {
		t.Fatal(err)
	}
	// A second Open finds our columns there (the migration is idempotent).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, optsFor(addr, table))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got := storetest.ReplayAll(t, s)
	if fmt.Sprint(storetest.SortedKeys(got)) != fmt.Sprint(storetest.SortedKeys(want)) {
		t.Fatalf("replayed %v, want %v", storetest.SortedKeys(got), storetest.SortedKeys(want))
	}
	for _, g := range got {
		if g.Version != 0 {
			t.Errorf("gearmand's row %s/%q replayed with version %d, want 0", g.Function, g.Key, g.Version)
		}
	}
	gm := map[store.Ref]store.Job{}
	for _, g := range got {
		gm[g.Ref()] = g
	}
	for _, w := range want {
		g := gm[w.Ref()]
		if g.Priority != w.Priority || string(g.Data) != string(w.Data) || g.When != w.When {
			t.Errorf("row %+v, want %+v", g, w)
		}
	}
	if _, err := ins.ExecContext(ctx, "u2", "resize", 1, []byte("after"), 0); err != nil {
		t.Fatalf("gearmand's INSERT after our columns were added: %v", err)
	}
	if err := s.Add(ctx, store.Job{Function: "resize", Key: "u1", Priority: 1, Data: []byte("replaced")}); err != nil {
		t.Fatalf("REPLACE over a gearmand row: %v", err)
	}
	// Rows without a version (gearmand's, an older gserverd's) are
	// older than any versioned delete, as the server deletes them.
	if err := s.Delete(ctx, store.Ref{Function: "resize", Key: "", Version: 42}); err != nil {
		t.Fatal(err)
	}
	got = storetest.ReplayAll(t, s)
	if len(got) != 3 || got[len(got)-1].Key != "u1" || string(got[len(got)-1].Data) != "replaced" {
		t.Fatalf("after replace/delete: %v (the replaced row should be last)", storetest.SortedKeys(got))
	}
}

func TestOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"bad table", Options{DB: "test", Table: "a b"}},
		{"no db", Options{}},
		{"bad port", Options{DB: "test", Port: 70000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Open(context.Background(), tc.opts); err == nil {
				t.Fatal("Open accepted bad options")
			}
		})
	}
}
