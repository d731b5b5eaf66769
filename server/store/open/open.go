// Package open turns gserverd's queue flags (gearmand's names) into a
// store.Store: `-q embedded|builtin|postgres|mysql|redis|libsqlite3` and
// the flags of each backend.
//
//	st, err := open.Store(ctx, open.Config{QueueType: "embedded", DataDir: dir})
//
// Store returns a nil store.Store for `-q builtin` (jobs in memory only),
// which is what server.Options.Store expects for that case.
package open

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/embedded"
	"github.com/gworkerd/gworkerd/server/store/mysql"
	"github.com/gworkerd/gworkerd/server/store/postgres"
	"github.com/gworkerd/gworkerd/server/store/redis"
	"github.com/gworkerd/gworkerd/server/store/sqlite"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// Queue types, as given to -q/--queue-type (case-insensitive); the
// other names it accepts are storeconf.Aliases.
const (
	Embedded = storeconf.Embedded // the default
	Builtin  = storeconf.Builtin
	Postgres = storeconf.Postgres
	MySQL    = storeconf.MySQL
	Redis    = storeconf.Redis
	SQLite   = storeconf.SQLite
)

// Config holds the queue flags; it is defined in package storeconf, so
// that package config can hold one without linking the backends.
type Config = storeconf.Config

// Store opens the store cfg names. For builtin it returns (nil, nil).
// Errors name the flag and the bad value.
func Store(ctx context.Context, cfg Config) (store.Store, error) {
	qt := Embedded
	if strings.TrimSpace(cfg.QueueType) != "" {
		var err error
		if qt, _, err = storeconf.ParseQueueType(cfg.QueueType); err != nil {
			return nil, fmt.Errorf("-q/--queue-type %q: %w", cfg.QueueType, err)
		}
	}
	switch qt {
	case Embedded:
		dir := cfg.DataDir
		if dir == "" {
			return nil, errors.New("-q embedded: --data-dir is empty")
		}
		mode, err := embedded.ParseSyncMode(cfg.Sync)
		if err != nil {
			return nil, fmt.Errorf("--sync %q: want always, interval or none", cfg.Sync)
		}
		if cfg.SyncInterval < 0 {
			return nil, fmt.Errorf("--sync-interval %v: must not be negative", cfg.SyncInterval)
		}
		s, err := embedded.Open(ctx, embedded.Options{Dir: dir, Sync: mode, SyncInterval: cfg.SyncInterval, AcceptDamage: cfg.AcceptDamage, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("--data-dir %q: %w", dir, err)
		}
		return s, nil
	case Builtin:
		return nil, nil
	case Postgres:
		s, err := postgres.Open(ctx, postgres.Options{ConnInfo: cfg.LibpqConninfo, Table: cfg.LibpqTable, Logger: cfg.Logger,
			Member: cfg.MemberID, HeartbeatInterval: cfg.FleetHeartbeat, LeaseTimeout: cfg.FleetLease})
		if err != nil {
			return nil, fmt.Errorf("-q postgres (--libpq-table %q): %w", orDefault(cfg.LibpqTable, postgres.DefaultTable), err)
		}
		return s, nil
	case MySQL:
		if cfg.MySQLPort < 0 || cfg.MySQLPort > 65535 {
			return nil, fmt.Errorf("--mysql-port %d: out of range", cfg.MySQLPort)
		}
		if cfg.MySQLDB == "" {
			return nil, fmt.Errorf("--mysql-db %q: -q mysql needs a database", cfg.MySQLDB)
		}
		s, err := mysql.Open(ctx, mysql.Options{
			Host: cfg.MySQLHost, Port: cfg.MySQLPort, User: cfg.MySQLUser, Password: cfg.MySQLPassword,
			DB: cfg.MySQLDB, Table: cfg.MySQLTable, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("-q mysql (--mysql-host %q --mysql-db %q --mysql-table %q): %w",
				orDefault(cfg.MySQLHost, storeconf.DefaultMySQLHost), cfg.MySQLDB, orDefault(cfg.MySQLTable, mysql.DefaultTable), err)
		}
		return s, nil
	case Redis:
		if cfg.RedisPort < 0 || cfg.RedisPort > 65535 {
			return nil, fmt.Errorf("--redis-port %d: out of range", cfg.RedisPort)
		}
		s, err := redis.Open(ctx, redis.Options{
			Server: cfg.RedisServer, Port: cfg.RedisPort, Password: cfg.RedisPassword, Prefix: cfg.RedisPrefix,
			IOTimeout: cfg.StoreTimeout, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("-q redis (--redis-server %q): %w", orDefault(cfg.RedisServer, storeconf.DefaultRedisServer), err)
		}
		return s, nil
	case SQLite:
		if cfg.SQLiteDB == "" {
			return nil, fmt.Errorf("--libsqlite3-db %q: -q libsqlite3 needs the database file", cfg.SQLiteDB)
		}
		if _, err := sqlite.ParseSync(cfg.Sync); err != nil {
			return nil, fmt.Errorf("--sync %q: want always, interval or none", cfg.Sync)
		}
		s, err := sqlite.Open(ctx, sqlite.Options{Path: cfg.SQLiteDB, Table: cfg.SQLiteTable, Sync: cfg.Sync, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("-q libsqlite3 (--libsqlite3-db %q --libsqlite3-table %q): %w", cfg.SQLiteDB, orDefault(cfg.SQLiteTable, sqlite.DefaultTable), err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("-q/--queue-type %q: no backend", cfg.QueueType) // not reached: ParseQueueType knows only these
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
