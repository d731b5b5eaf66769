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
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/embedded"
	"github.com/gworkerd/gworkerd/server/store/mysql"
	"github.com/gworkerd/gworkerd/server/store/postgres"
	"github.com/gworkerd/gworkerd/server/store/redis"
	"github.com/gworkerd/gworkerd/server/store/sqlite"
)

// Queue types, as given to -q/--queue-type (case-insensitive).
const (
	Embedded = "embedded" // the default
	Builtin  = "builtin"
	Postgres = "postgres"
	MySQL    = "mysql"
	Redis    = "redis"
	SQLite   = "libsqlite3"
)

// Config holds the queue flags. Zero values take the defaults written on
// each field (gearmand's defaults for gearmand's flags).
type Config struct {
	// QueueType is -q/--queue-type: embedded, builtin, postgres, mysql,
	// redis or libsqlite3 (also "sqlite"). Default "embedded". gearmand's
	// spelling "Postgres" and "MySQL" are accepted (the match is
	// case-insensitive).
	QueueType string

	// DataDir is --data-dir, the embedded store's directory; required
	// with -q embedded (config.DefaultDataDir is gserverd's default).
	DataDir string
	// Sync is --sync: always, interval or none. Default "always". See
	// embedded.SyncMode for what each risks; -q libsqlite3 maps them to
	// SQLite's synchronous pragma (see package sqlite).
	Sync string
	// AcceptDamage is --accept-store-damage: open an embedded store whose
	// write-ahead log is damaged, without the jobs stored from the damage
	// on (or whose large jobs' payload files are missing or short, without
	// those jobs). Default false: Store fails with the *embedded.DamageError.
	AcceptDamage bool
	// SyncInterval is --sync-interval, the fsync period of --sync
	// interval. Default 100ms.
	SyncInterval time.Duration

	// LibpqConninfo is --libpq-conninfo. Default "": libpq's defaults.
	LibpqConninfo string
	// MemberID, FleetHeartbeat and FleetLease make a -q postgres store a
	// fleet member (--member-id, --fleet-heartbeat, --fleet-lease;
	// postgres.Options). MemberID "" opens it as a non-member (tools).
	MemberID                   string
	FleetHeartbeat, FleetLease time.Duration
	// LibpqTable is --libpq-table. Default "queue".
	LibpqTable string

	// MySQLHost is --mysql-host. Default "localhost" (over TCP).
	MySQLHost string
	// MySQLPort is --mysql-port. Default 3306.
	MySQLPort int
	// MySQLUser is --mysql-user. Default: the current OS user.
	MySQLUser string
	// MySQLPassword is --mysql-password. Default "".
	MySQLPassword string
	// MySQLDB is --mysql-db. Required with -q mysql.
	MySQLDB string
	// MySQLTable is --mysql-table. Default "gearman_queue".
	MySQLTable string

	// RedisServer is --redis-server. Default "127.0.0.1".
	RedisServer string
	// RedisPort is --redis-port. Default 6379.
	RedisPort int
	// RedisPassword is --redis-password. Default "".
	RedisPassword string
	// RedisPrefix is --redis-prefix. Default "_gear_".
	RedisPrefix string

	// SQLiteDB is --libsqlite3-db, the database file. Required with -q
	// libsqlite3; a relative path is from the working directory.
	SQLiteDB string
	// SQLiteTable is --libsqlite3-table. Default "gearman_queue".
	SQLiteTable string

	// StoreTimeout is --store-timeout. The server puts it on every call
	// (store.WithTimeout); here it also bounds each round trip of the
	// redis store. Default 0: the backends' own defaults.
	StoreTimeout time.Duration

	// Logger receives the store's messages. Default: discard.
	Logger logrus.FieldLogger
}

// Store opens the store cfg names. For builtin it returns (nil, nil).
// Errors name the flag and the bad value.
func Store(ctx context.Context, cfg Config) (store.Store, error) {
	qt := strings.ToLower(strings.TrimSpace(cfg.QueueType))
	switch qt {
	case "", Embedded:
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
	case Postgres, "libpq", "postgresql":
		s, err := postgres.Open(ctx, postgres.Options{ConnInfo: cfg.LibpqConninfo, Table: cfg.LibpqTable, Logger: cfg.Logger,
			Member: cfg.MemberID, HeartbeatInterval: cfg.FleetHeartbeat, LeaseTimeout: cfg.FleetLease})
		if err != nil {
			return nil, fmt.Errorf("-q postgres (--libpq-table %q): %w", orDefault(cfg.LibpqTable, postgres.DefaultTable), err)
		}
		return s, nil
	case MySQL, "mariadb":
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
				orDefault(cfg.MySQLHost, "localhost"), cfg.MySQLDB, orDefault(cfg.MySQLTable, mysql.DefaultTable), err)
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
			return nil, fmt.Errorf("-q redis (--redis-server %q): %w", orDefault(cfg.RedisServer, "127.0.0.1"), err)
		}
		return s, nil
	case SQLite, "sqlite", "sqlite3":
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
	return nil, fmt.Errorf("-q/--queue-type %q: want embedded, builtin, postgres, mysql, redis or libsqlite3", cfg.QueueType)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
