package open

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/embedded"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestErrorsNameTheBadValue(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"queue type", Config{QueueType: "carrier-pigeon"}, `-q/--queue-type "carrier-pigeon"`},
		{"sqlite db", Config{QueueType: "libsqlite3"}, `--libsqlite3-db ""`},
		{"sqlite table", Config{QueueType: "sqlite", SQLiteDB: filepath.Join(t.TempDir(), "q"), SQLiteTable: "a b"}, `--libsqlite3-table "a b"`},
		{"sqlite sync", Config{QueueType: "libsqlite3", SQLiteDB: filepath.Join(t.TempDir(), "q"), Sync: "sometimes"}, `--sync "sometimes"`},
		{"sync", Config{DataDir: t.TempDir(), Sync: "sometimes"}, `--sync "sometimes"`},
		{"sync interval", Config{DataDir: t.TempDir(), Sync: "interval", SyncInterval: -1}, "--sync-interval"},
		{"mysql port", Config{QueueType: "mysql", MySQLDB: "test", MySQLPort: 99999}, "--mysql-port 99999"},
		{"mysql db", Config{QueueType: "MySQL"}, `--mysql-db ""`},
		{"mysql table", Config{QueueType: "mysql", MySQLDB: "test", MySQLTable: "a;b"}, `"a;b"`},
		{"redis port", Config{QueueType: "redis", RedisPort: -2}, "--redis-port -2"},
		{"libpq table", Config{QueueType: "Postgres", LibpqTable: "x y"}, `--libpq-table "x y"`},
		{"data dir", Config{DataDir: "/dev/null/sub"}, `--data-dir "/dev/null/sub"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Store(context.Background(), tc.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Store(%+v) = nil error, want one containing %q", tc.cfg, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Store error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestStoreAliases: Store opens every name storeconf accepts (the names
// config takes for -q: config.TestQueueTypeAliases) as the store of its
// canonical name. Each case stops at that store's first check, without
// I/O, so the error tells which store it is.
func TestStoreAliases(t *testing.T) {
	names := storeconf.Aliases()
	for _, n := range storeconf.QueueTypes() {
		names[n], names[strings.ToUpper(n)] = n, n
	}
	mark := map[string]string{
		Embedded: "-q embedded: --data-dir is empty",
		Postgres: `-q postgres (--libpq-table "x y")`,
		MySQL:    `--mysql-db "": -q mysql needs a database`,
		Redis:    "--redis-port -1: out of range",
		SQLite:   `--libsqlite3-db "": -q libsqlite3 needs the database file`,
	}
	for name, canonical := range names {
		s, err := Store(context.Background(), Config{QueueType: name, LibpqTable: "x y", RedisPort: -1})
		if s != nil {
			_ = s.Close()
		}
		switch {
		case canonical == Builtin && (s != nil || err != nil):
			t.Errorf("-q %s: %v, %v; want the builtin queue (nil, nil)", name, s, err)
		case canonical != Builtin && (err == nil || !strings.Contains(err.Error(), mark[canonical])):
			t.Errorf("-q %s: error %v, want the %s store's %q", name, err, canonical, mark[canonical])
		}
	}
}

func TestBuiltinIsNil(t *testing.T) {
	s, err := Store(context.Background(), Config{QueueType: "BUILTIN"})
	if err != nil || s != nil {
		t.Fatalf("Store(builtin) = %v, %v; want nil, nil", s, err)
	}
}

func TestEmbedded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	s, err := Store(context.Background(), Config{DataDir: dir, Sync: "interval"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*embedded.Store); !ok {
		t.Fatalf("default queue type opened %T, want *embedded.Store", s)
	}
	if err := s.Add(context.Background(), store.Job{Function: "f", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedNeedsDir(t *testing.T) {
	t.Parallel()
	if _, err := Store(context.Background(), Config{QueueType: Embedded}); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("Store(embedded, no dir) = %v, want an error naming --data-dir", err)
	}
}

func suffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// The external queue types open and work with gearmand's flag values.
func TestExternal(t *testing.T) {
	ctx := context.Background()
	t.Run("postgres", func(t *testing.T) {
		storetest.RequireTCP(t, "PostgreSQL", "127.0.0.1:5432")
		conn := "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
		table := "gserverd_opentest_" + suffix()
		t.Cleanup(func() {
			c, err := pgx.Connect(ctx, conn)
			if err == nil {
				_, _ = c.Exec(ctx, "DROP TABLE IF EXISTS "+table)
				_ = c.Close(ctx)
			}
		})
		roundTrip(t, Config{QueueType: "Postgres", LibpqConninfo: conn, LibpqTable: table})
	})
	t.Run("mysql", func(t *testing.T) {
		storetest.RequireTCP(t, "MariaDB/MySQL", "127.0.0.1:3306")
		table := "gserverd_opentest_" + suffix()
		t.Cleanup(func() {
			cfg := gomysql.NewConfig()
			cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", "127.0.0.1:3306", "test"
			if c, err := gomysql.NewConnector(cfg); err == nil {
				db := sql.OpenDB(c)
				_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table)
				_ = db.Close()
			}
		})
		roundTrip(t, Config{QueueType: "mysql", MySQLHost: "127.0.0.1", MySQLUser: "root", MySQLDB: "test", MySQLTable: table})
	})
	t.Run("redis", func(t *testing.T) {
		storetest.RequireTCP(t, "Redis", "127.0.0.1:6379")
		prefix := "_gsopentest_" + suffix()
		t.Cleanup(func() {
			c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", Protocol: 2})
			defer c.Close()
			iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
		})
		roundTrip(t, Config{QueueType: "redis", RedisPrefix: prefix})
	})
	t.Run("libsqlite3", func(t *testing.T) {
		roundTrip(t, Config{QueueType: "libsqlite3", SQLiteDB: filepath.Join(t.TempDir(), "q.db"), Sync: "none"})
	})
}

func roundTrip(t *testing.T, cfg Config) {
	t.Helper()
	ctx := context.Background()
	s, err := Store(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	j := store.Job{Function: "open-test", Key: "k", Priority: 1, Data: []byte("d")}
	if err := s.Add(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got := storetest.ReplayAll(t, s); len(got) != 1 || got[0].Key != "k" {
		t.Fatalf("replay = %v", storetest.SortedKeys(got))
	}
	if err := s.Delete(ctx, j.Ref()); err != nil {
		t.Fatal(err)
	}
}
