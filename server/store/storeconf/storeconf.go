// Package storeconf holds the settings that choose and configure
// gserverd's job store: -q/--queue-type with the one table of the names
// it accepts, the options of each backend (gearmand's flags), and the one
// copy of each of their defaults.
//
// It imports no backend, so that package config can hold a Config
// without linking every database driver into gworkerd and gclient;
// open.Store turns a Config into a store.Store, and the backends take
// their defaults from here.
package storeconf

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Queue types: the canonical -q names.
const (
	Embedded = "embedded" // the default
	Builtin  = "builtin"
	Postgres = "postgres"
	MySQL    = "mysql"
	Redis    = "redis"
	SQLite   = "libsqlite3"
)

// Defaults of the backends' settings (gearmand's, for gearmand's flags).
const (
	DefaultQueueType      = Embedded
	DefaultSync           = "always"
	DefaultLibpqTable     = "queue"
	DefaultFleetHeartbeat = time.Second
	DefaultFleetLease     = 10 * time.Second
	DefaultMySQLHost      = "localhost"
	DefaultMySQLPort      = 3306
	DefaultMySQLTable     = "gearman_queue"
	DefaultRedisServer    = "127.0.0.1"
	DefaultRedisPort      = 6379
	DefaultRedisPrefix    = "_gear_"
	DefaultSQLiteTable    = "gearman_queue"
)

// QueueTypes returns the canonical -q names, in --help order.
func QueueTypes() []string {
	return []string{Builtin, Embedded, Postgres, MySQL, Redis, SQLite}
}

// queueName is one accepted -q name other than a canonical one.
type queueName struct {
	canonical string
	// standIn: a gearmand module gserverd has no backend for, which,
	// like the embedded store, keeps the queue across a restart; the
	// embedded store stands in for it.
	standIn bool
}

// queueNames is the alias table: gearmand's spellings and common ones.
func queueNames() map[string]queueName {
	return map[string]queueName{
		"postgresql":      {canonical: Postgres},
		"libpq":           {canonical: Postgres},
		"pgsql":           {canonical: Postgres},
		"mariadb":         {canonical: MySQL},
		"memory":          {canonical: Builtin},
		"sqlite":          {canonical: SQLite},
		"sqlite3":         {canonical: SQLite},
		"libmemcached":    {canonical: Embedded, standIn: true},
		"libtokyocabinet": {canonical: Embedded, standIn: true},
	}
}

// Aliases returns every accepted -q name that is not canonical, with
// the canonical name it stands for.
func Aliases() map[string]string {
	out := map[string]string{}
	for n, q := range queueNames() {
		out[n] = q.canonical
	}
	return out
}

// ParseQueueType returns the canonical name of the -q value s
// (case-insensitive, blanks trimmed). standIn reports a gearmand module
// gserverd does not have, for which the embedded store stands in; the
// caller says so. "" is not a name: a zero Config means DefaultQueueType.
func ParseQueueType(s string) (name string, standIn bool, err error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, n := range QueueTypes() {
		if l == n {
			return n, false, nil
		}
	}
	if q, ok := queueNames()[l]; ok {
		return q.canonical, q.standIn, nil
	}
	if l == "libdrizzle" {
		return "", false, fmt.Errorf("queue type %q is not supported by gserverd; use -q mysql", s)
	}
	return "", false, fmt.Errorf("want one of %s, got %q", strings.Join(QueueTypes(), ", "), s)
}

// StandIns returns the gearmand modules the embedded store stands in
// for, sorted.
func StandIns() []string {
	var out []string
	for n, q := range queueNames() {
		if q.standIn {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Config holds the queue flags. Zero values take the defaults written on
// each field (gearmand's defaults for gearmand's flags).
type Config struct {
	// QueueType is -q/--queue-type: a name ParseQueueType accepts.
	// Default DefaultQueueType ("" too).
	QueueType string

	// DataDir is --data-dir, the embedded store's directory; required
	// with -q embedded (config.DefaultDataDir is gserverd's default).
	DataDir string
	// Sync is --sync: always, interval or none. Default DefaultSync. See
	// embedded.SyncMode for what each risks; -q libsqlite3 maps them to
	// SQLite's synchronous pragma (see package sqlite).
	Sync string
	// AcceptDamage is --accept-store-damage: open an embedded store whose
	// write-ahead log is damaged, without the jobs stored from the damage
	// on (or whose large jobs' payload files are missing or short, without
	// those jobs). Default false: Store fails with the *embedded.DamageError.
	AcceptDamage bool
	// SyncInterval is the fsync period of --sync interval. Default 100ms.
	SyncInterval time.Duration

	// LibpqConninfo is --libpq-conninfo. Default "": libpq's defaults.
	LibpqConninfo string
	// LibpqTable is --libpq-table. Default DefaultLibpqTable.
	LibpqTable string
	// MemberID, FleetHeartbeat and FleetLease make a -q postgres store a
	// fleet member (--member-id, --fleet-heartbeat, --fleet-lease;
	// postgres.Options). MemberID "" opens it as a non-member (tools).
	// Defaults DefaultFleetHeartbeat and DefaultFleetLease.
	MemberID                   string
	FleetHeartbeat, FleetLease time.Duration

	// MySQLHost is --mysql-host. Default DefaultMySQLHost (over TCP).
	MySQLHost string
	// MySQLPort is --mysql-port. Default DefaultMySQLPort.
	MySQLPort int
	// MySQLUser is --mysql-user. Default: the current OS user.
	MySQLUser string
	// MySQLPassword is --mysql-password. Default "".
	MySQLPassword string
	// MySQLDB is --mysql-db. Required with -q mysql.
	MySQLDB string
	// MySQLTable is --mysql-table. Default DefaultMySQLTable.
	MySQLTable string

	// RedisServer is --redis-server. Default DefaultRedisServer.
	RedisServer string
	// RedisPort is --redis-port. Default DefaultRedisPort.
	RedisPort int
	// RedisPassword is --redis-password. Default "".
	RedisPassword string
	// RedisPrefix is --redis-prefix. Default DefaultRedisPrefix.
	RedisPrefix string

	// SQLiteDB is --libsqlite3-db, the database file. Required with -q
	// libsqlite3; a relative path is from the working directory.
	SQLiteDB string
	// SQLiteTable is --libsqlite3-table. Default DefaultSQLiteTable.
	SQLiteTable string

	// StoreTimeout is --store-timeout. The server puts it on every call
	// (store.WithTimeout); here it also bounds each round trip of the
	// redis store. Default 0: the backends' own defaults.
	StoreTimeout time.Duration

	// Logger receives the store's messages. Default: discard.
	Logger logrus.FieldLogger
}
