package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const addr = "127.0.0.1:5432"

// conninfo reaches the test database; GWORKERD_TEST_PG_CONNINFO overrides.
func conninfo(hostport string) string {
	if c := os.Getenv("GWORKERD_TEST_PG_CONNINFO"); c != "" && hostport == addr {
		return c
	}
	host, port := hostport, "5432"
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			host, port = hostport[:i], hostport[i+1:]
			break
		}
	}
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=test sslmode=disable connect_timeout=5", host, port)
}

func require(t *testing.T) {
	t.Helper()
	storetest.RequireTCP(t, "PostgreSQL", addr)
}

// tableFor returns a table name of the test's own, dropped at its end.
func tableFor(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "gserverd_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, conninfo(addr))
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+name+", "+name+"_members"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name
}

// TestStore runs the conformance suite on a store that is not a fleet
// member and on a member alone in its fleet: both must behave as any
// store.
func TestStore(t *testing.T) {
	require(t)
	for _, member := range []string{"", "m1"} {
		t.Run("member="+member, func(t *testing.T) {
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
				s, err := Open(context.Background(), Options{ConnInfo: conninfo(addr), Table: table, Member: member})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			})
		})
	}
}

func TestOutage(t *testing.T) {
	require(t)
	table := tableFor(t)
	storetest.RunOutage(t, addr, func(t *testing.T, a string) store.Store {
		s, err := Open(context.Background(), Options{ConnInfo: conninfo(a), Table: table})
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
		s, err := Open(context.Background(), Options{ConnInfo: conninfo(a), Table: table})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestReplaysGearmandTable makes the table exactly as gearmand 1.1.20's
// libpq plugin does, inserts rows with its INSERT (text parameters, data
// as binary), then checks that Replay returns them and that gearmand's
// INSERT still works after Open added our columns.
func TestReplaysGearmandTable(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	c, err := pgx.Connect(ctx, conninfo(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))"); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO " + table + " (priority, unique_key, function_name, data, when_to_run) VALUES($1,$2,$3,$4::BYTEA,$5)"
	gearmandInsert := func(prio int, unique, fn string, data []byte, when int64) {
		t.Helper()
		// libpq PQexecParams with formats {text, text, text, binary, text}.
		_, err := c.Exec(ctx, insert, pgx.QueryExecModeExec,
			strconv.Itoa(prio), unique, fn, data, strconv.FormatInt(when, 10))
		if err != nil {
			t.Fatalf("gearmand-style INSERT: %v", err)
		}
	}
	want := []store.Job{
		{Function: "resize", Key: "u1", Priority: 0, Data: []byte("img\x00data")},
		{Function: "resize", Key: "", Priority: 1, Data: []byte("empty unique")},
		{Function: "mail", Key: "u1", Priority: 2, Data: []byte("later"), When: 1900000000},
	}
	for _, j := range want {
		gearmandInsert(j.Priority, j.Key, j.Function, j.Data, j.When)
	}
	s, err := Open(ctx, Options{ConnInfo: conninfo(addr), Table: table})
	if err != nil {
		t.Fatal(err)
	}
	// A second Open finds our columns there (the migration is idempotent).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Options{ConnInfo: conninfo(addr), Table: table})
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
	for i, g := range got { // gearmand's rows keep their insert order
		w := want[i]
		if g.Function != w.Function || g.Key != w.Key || g.Priority != w.Priority || string(g.Data) != string(w.Data) || g.When != w.When {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	// gearmand can still insert into the table we altered, and we replace
	// its row with an upsert instead of failing on the duplicate.
	gearmandInsert(1, "u2", "resize", []byte("after"), 0)
	if err := s.Add(ctx, store.Job{Function: "resize", Key: "u1", Priority: 1, Data: []byte("replaced")}); err != nil {
		t.Fatalf("upsert over a gearmand row: %v", err)
	}
	// Rows without a version (gearmand's, an older gserverd's) are
	// older than any versioned delete, as the server deletes them.
	if err := s.Delete(ctx, store.Ref{Function: "resize", Key: "", Version: 42}); err != nil {
		t.Fatal(err)
	}
	got = storetest.ReplayAll(t, s)
	if len(got) != 3 {
		t.Fatalf("after upsert/delete: %d rows, want 3: %v", len(got), storetest.SortedKeys(got))
	}
}

func TestBadTable(t *testing.T) {
	_, err := Open(context.Background(), Options{Table: "queue; DROP TABLE x"})
	if err == nil {
		t.Fatal("Open accepted a table name with SQL in it")
	}
}
