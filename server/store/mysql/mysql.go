// Package mysql keeps gserverd's background jobs in a MySQL or MariaDB
// table (`-q mysql --mysql-host --mysql-port --mysql-user --mysql-password
// --mysql-db --mysql-table`), through go-sql-driver/mysql.
//
// The table has gearmand's columns (unique_key, function_name, priority,
// data, when_to_run, with a unique key on (unique_key, function_name)), so
// a queue left behind by gearmand's MySQL plugin is replayed, and gearmand
// can read ours. Three columns are added when missing (to gearmand's
// tables too, with defaults that keep gearmand's INSERTs working):
// reducer, gserverd_seq, an AUTO_INCREMENT that orders replay by add
// order, and gserverd_version, the record's store.Job.Version (0 for rows
// gearmand or an older gserverd wrote), which a delete compares
// (store.Ref.Version).
//
// Writes use REPLACE, so a duplicate (unique, function) replaces the row
// (and moves it to the end) instead of failing as gearmand's INSERT does;
// jobs with an empty unique come with keys from store.NewKey and never
// collide. Tables we create use the utf8mb4_bin collation so that uniques
// differing only in case stay apart; a table gearmand created keeps the
// server's default collation, where they collide.
//
// database/sql reconnects by itself; a transaction that fails on a broken
// connection is retried once. While the server is unreachable Add returns
// an error (the server answers QUEUE_ERROR), and work resumes when it is
// back. A call ends at its ctx's deadline even while the server does not
// answer at all (the driver closes the connection); the server gives
// every call one (store.WithTimeout).
//
// Unlike libmysqlclient, host "localhost" is reached over TCP, not the
// Unix socket.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os/user"
	"regexp"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// DefaultTable is gearmand's default --mysql-table.
const DefaultTable = storeconf.DefaultMySQLTable

// Options configure a Store; the names follow gearmand's flags.
type Options struct {
	// Host is the server's host. Default storeconf.DefaultMySQLHost.
	Host string
	// Port is the server's port. Default storeconf.DefaultMySQLPort.
	Port int
	// User to log in as. Default: the current OS user, as libmysqlclient.
	User string
	// Password of User. Default "".
	Password string
	// DB is the database. Required.
	DB string
	// Table is the queue table. Default "gearman_queue". Letters, digits
	// and '_' only.
	Table string
	// MaxConns bounds open connections. Default 4.
	MaxConns int
	// Logger receives connection errors. Default: discard.
	Logger logrus.FieldLogger
}

var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (o Options) withDefaults() Options {
	if o.Host == "" {
		o.Host = storeconf.DefaultMySQLHost
	}
	if o.Port == 0 {
		o.Port = storeconf.DefaultMySQLPort
	}
	if o.User == "" {
		if u, err := user.Current(); err == nil {
			o.User = u.Username
		}
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		o.Logger = l
	}
	return o
}

func (o Options) validate() error {
	if !tableRE.MatchString(o.Table) {
		return fmt.Errorf("mysql: table name %q: want letters, digits and _", o.Table)
	}
	if o.DB == "" {
		return errors.New("mysql: database (--mysql-db) is empty")
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("mysql: port %d out of range", o.Port)
	}
	return nil
}

// Store is a MySQL/MariaDB-backed store.Store.
type Store struct {
	db  *sql.DB
	log logrus.FieldLogger

	table string // quoted

	qReplace, qDelete, qSelect string

	gate store.Gate
}

// Open connects, creates the table if needed and adds the columns gserverd
// uses to a table gearmand made.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	cfg.User = opts.User
	cfg.Passwd = opts.Password
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
	cfg.DBName = opts.DB
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 60 * time.Second
	cfg.WriteTimeout = 60 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: config: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, log: opts.Logger.WithField("store", "mysql"), table: "`" + opts.Table + "`"}
	s.qReplace = "REPLACE INTO " + s.table + " (unique_key, function_name, priority, data, when_to_run, reducer, gserverd_version) VALUES (?, ?, ?, ?, ?, ?, ?)"
	s.qDelete = "DELETE FROM " + s.table + " WHERE unique_key = ? AND function_name = ? AND (? = 0 OR gserverd_version < ?)"
	s.qSelect = "SELECT COALESCE(unique_key, ''), COALESCE(function_name, ''), COALESCE(priority, 1), COALESCE(data, ''), " +
		"COALESCE(when_to_run, 0), COALESCE(reducer, ''), COALESCE(gserverd_version, 0) FROM " + s.table + " ORDER BY gserverd_seq"
	if err := s.migrate(ctx, opts.Table); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context, name string) error {
	// gearmand's table (GEARMAN_UNIQUE_SIZE = 64) plus our three columns.
	create := "CREATE TABLE IF NOT EXISTS " + s.table + ` (unique_key VARCHAR(64), function_name VARCHAR(255),
 priority INT, data LONGBLOB, when_to_run INT, reducer VARCHAR(255) NOT NULL DEFAULT '',
 gserverd_seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, gserverd_version BIGINT NOT NULL DEFAULT 0, UNIQUE KEY (unique_key, function_name), UNIQUE KEY gserverd_seq (gserverd_seq))
 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`
	if _, err := s.db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("mysql: create table %s: %w", name, err)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?", name)
	if err != nil {
		return fmt.Errorf("mysql: columns of %s: %w", name, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("mysql: columns of %s: %w", name, err)
		}
		have[c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: columns of %s: %w", name, err)
	}
	var alters []string
	if !have["reducer"] {
		alters = append(alters, "ALTER TABLE "+s.table+" ADD COLUMN reducer VARCHAR(255) NOT NULL DEFAULT ''")
	}
	if !have["gserverd_seq"] {
		alters = append(alters, "ALTER TABLE "+s.table+" ADD COLUMN gserverd_seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, ADD UNIQUE KEY gserverd_seq (gserverd_seq)")
	}
	if !have["gserverd_version"] {
		alters = append(alters, "ALTER TABLE "+s.table+" ADD COLUMN gserverd_version BIGINT NOT NULL DEFAULT 0")
	}
	for _, q := range alters {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mysql: add gserverd's columns to %s: %w", name, err)
		}
	}
	return nil
}

// KeepsAddOrder reports that Replay returns jobs in add order.
func (s *Store) KeepsAddOrder() bool { return true }

// retryable reports whether err came from the connection rather than from
// the server rejecting the statement.
func retryable(err error) bool {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// inTx runs fn in a transaction, retried once after a connection error.
// Every statement we run is idempotent.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	run := func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	err := run()
	if err != nil && retryable(err) {
		s.log.WithError(err).Warn("mysql transaction failed, retrying on a new connection")
		err = run()
	}
	return err
}

// Add stores jobs in one transaction.
func (s *Store) Add(ctx context.Context, jobs ...store.Job) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	for i := range jobs {
		if jobs[i].When > math.MaxInt32 || jobs[i].When < math.MinInt32 {
			return fmt.Errorf("mysql: add job %q: when %d does not fit gearmand's INT column", jobs[i].Key, jobs[i].When)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.qReplace)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range jobs {
			j := &jobs[i]
			d := j.Data
			if d == nil {
				d = []byte{}
			}
			if _, err := st.ExecContext(ctx, j.Key, j.Function, j.Priority, d, j.When, j.Reducer, j.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mysql: add %d jobs: %w", len(jobs), err)
	}
	return nil
}

// Delete removes jobs whose stored version is below the ref's
// (store.Ref.Version); unknown refs are ignored.
func (s *Store) Delete(ctx context.Context, refs ...store.Ref) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range refs {
			if _, err := tx.ExecContext(ctx, s.qDelete, r.Key, r.Function, r.Version, r.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mysql: delete %d jobs: %w", len(refs), err)
	}
	return nil
}

// Replay calls fn for every stored row, in add order.
func (s *Store) Replay(ctx context.Context, fn func(store.Job) error) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, s.qSelect)
	if err != nil {
		return fmt.Errorf("mysql: replay: %w", err)
	}
	defer rows.Close()
	return store.ReplayRows(ctx, "mysql", rows, func() (store.Job, error) {
		var (
			j    store.Job
			data []byte
		)
		err := rows.Scan(&j.Key, &j.Function, &j.Priority, &data, &j.When, &j.Reducer, &j.Version)
		if len(data) > 0 {
			j.Data = data
		}
		return j, err
	}, fn)
}

// Close closes the connections. Calling it again returns nil.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return nil
	}
	return s.db.Close()
}
