// Package postgres keeps gserverd's background jobs in a PostgreSQL table
// (`-q postgres --libpq-conninfo --libpq-table`), through pgx.
//
// The table has gearmand's columns (unique_key, function_name, priority,
// data, when_to_run, with UNIQUE (unique_key, function_name)), so a queue
// left behind by gearmand's Postgres plugin is replayed, and gearmand can
// read ours. Three columns are added (to gearmand's tables too, with
// defaults that keep gearmand's INSERTs working): reducer,
// gserverd_seq, which orders replay by add order, and gserverd_version,
// the record's store.Job.Version (0 for rows gearmand or an older
// gserverd wrote), which a delete compares (store.Ref.Version).
//
// Writes are upserts, so a duplicate (unique, function) replaces the row
// instead of failing as gearmand's INSERT does; jobs with an empty unique
// come with keys from store.NewKey and never collide.
//
// The connection pool reconnects by itself. A statement that fails on a
// broken connection is retried once on a fresh one; while the database is
// unreachable Add returns an error (the server answers QUEUE_ERROR), and
// work resumes when it is back. A call ends at its ctx's deadline even
// while the database does not answer at all (pgx puts the deadline on the
// socket); the server gives every call one (store.WithTimeout). Close
// closes the sockets still open after a second.
//
// Limits inherited from gearmand's schema: unique_key is VARCHAR(64) and
// function_name VARCHAR(255) of valid UTF-8, and when_to_run is a 32-bit
// INTEGER (epochs up to 2038).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server/store"
)

// DefaultTable is gearmand's default --libpq-table.
const DefaultTable = "queue"

// Options configure a Store.
type Options struct {
	// ConnInfo is a libpq connection string ("host=... dbname=...") or URL,
	// as gearmand's --libpq-conninfo. Default "": libpq's defaults and
	// PG* environment variables.
	ConnInfo string
	// Table is the queue table, optionally schema-qualified. Default
	// "queue". Letters, digits, '_' and one '.' only.
	Table string
	// MaxConns bounds the connection pool. Default 4.
	MaxConns int32
	// Logger receives connection errors. Default: discard.
	Logger logrus.FieldLogger
}

var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

func (o Options) withDefaults() Options {
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

// Store is a PostgreSQL-backed store.Store.
type Store struct {
	pool *pgxpool.Pool
	log  logrus.FieldLogger

	table string // quoted identifier

	qUpsert, qDelete, qSelect string

	conns *connSet
	gate  store.Gate
}

// closeGrace is how long Close lets the connections end cleanly before
// it closes their sockets.
const closeGrace = time.Second

// Open connects, creates the table if needed and adds the columns gserverd
// uses to a table gearmand made.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if !tableRE.MatchString(opts.Table) {
		return nil, fmt.Errorf("postgres: table name %q: want letters, digits and _ (schema.table allowed)", opts.Table)
	}
	cfg, err := pgxpool.ParseConfig(opts.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("postgres: conninfo: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	conns := newConnSet()
	cfg.ConnConfig.DialFunc = conns.dialer(cfg.ConnConfig.DialFunc)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, log: opts.Logger.WithField("store", "postgres"), conns: conns}
	s.table = pgx.Identifier(strings.Split(opts.Table, ".")).Sanitize()
	s.qUpsert = "INSERT INTO " + s.table + ` (unique_key, function_name, priority, data, when_to_run, reducer, gserverd_version)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (unique_key, function_name) DO UPDATE SET priority = EXCLUDED.priority, data = EXCLUDED.data,
 when_to_run = EXCLUDED.when_to_run, reducer = EXCLUDED.reducer, gserverd_seq = DEFAULT,
 gserverd_version = EXCLUDED.gserverd_version`
	s.qDelete = "DELETE FROM " + s.table + " WHERE unique_key = $1 AND function_name = $2 AND ($3::BIGINT = 0 OR gserverd_version < $3::BIGINT)"
	s.qSelect = `SELECT COALESCE(unique_key, ''), COALESCE(function_name, ''), COALESCE(priority, 1),
 COALESCE(data, ''::bytea), COALESCE(when_to_run, 0), COALESCE(reducer, ''), COALESCE(gserverd_version, 0) FROM ` + s.table + " ORDER BY gserverd_seq"
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	stmts := []string{
		// gearmand's table (GEARMAN_UNIQUE_SIZE = 64) plus our two columns.
		"CREATE TABLE IF NOT EXISTS " + s.table + ` (unique_key VARCHAR(64), function_name VARCHAR(255),
 priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))`,
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS reducer TEXT NOT NULL DEFAULT ''",
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS gserverd_seq BIGSERIAL",
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS gserverd_version BIGINT NOT NULL DEFAULT 0",
	}
	for _, q := range stmts {
		if err := s.exec(ctx, q); err != nil {
			return fmt.Errorf("postgres: prepare table %s: %w", s.table, err)
		}
	}
	return nil
}

// KeepsAddOrder reports that Replay returns jobs in add order.
func (s *Store) KeepsAddOrder() bool { return true }

// retryable reports whether err came from a broken connection rather than
// from the server rejecting the statement.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// exec runs q, retrying once on a fresh connection after a connection
// error. Every statement we run is idempotent.
func (s *Store) exec(ctx context.Context, q string, args ...any) error {
	_, err := s.pool.Exec(ctx, q, args...)
	if err != nil && retryable(err) {
		s.log.WithError(err).Warn("postgres statement failed, retrying on a new connection")
		_, err = s.pool.Exec(ctx, q, args...)
	}
	return err
}

// Add upserts jobs, all in one transaction.
func (s *Store) Add(ctx context.Context, jobs ...store.Job) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	for i := range jobs {
		if jobs[i].When > math.MaxInt32 || jobs[i].When < math.MinInt32 {
			return fmt.Errorf("postgres: add job %q: when %d does not fit gearmand's INTEGER column", jobs[i].Key, jobs[i].When)
		}
	}
	var err error
	switch len(jobs) {
	case 0:
		return nil
	case 1:
		j := &jobs[0]
		err = s.exec(ctx, s.qUpsert, j.Key, j.Function, j.Priority, data(j.Data), j.When, j.Reducer, j.Version)
	default:
		err = s.batch(ctx, func(b *pgx.Batch) {
			for i := range jobs {
				j := &jobs[i]
				b.Queue(s.qUpsert, j.Key, j.Function, j.Priority, data(j.Data), j.When, j.Reducer, j.Version)
			}
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: add %d jobs: %w", len(jobs), err)
	}
	return nil
}

// data keeps an empty payload from being stored as NULL.
func data(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// batch runs the queued statements in one transaction, retried once after
// a connection error.
func (s *Store) batch(ctx context.Context, fill func(*pgx.Batch)) error {
	run := func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			fill(b)
			return tx.SendBatch(ctx, b).Close()
		})
	}
	err := run()
	if err != nil && retryable(err) {
		s.log.WithError(err).Warn("postgres batch failed, retrying on a new connection")
		err = run()
	}
	return err
}

// Delete removes jobs whose stored version is below the ref's
// (store.Ref.Version); unknown refs are ignored.
func (s *Store) Delete(ctx context.Context, refs ...store.Ref) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	var err error
	switch len(refs) {
	case 0:
		return nil
	case 1:
		err = s.exec(ctx, s.qDelete, refs[0].Key, refs[0].Function, refs[0].Version)
	default:
		err = s.batch(ctx, func(b *pgx.Batch) {
			for _, r := range refs {
				b.Queue(s.qDelete, r.Key, r.Function, r.Version)
			}
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: delete %d jobs: %w", len(refs), err)
	}
	return nil
}

// Replay calls fn for every stored row, in add order (rows gearmand wrote
// come first, in the order the column was filled).
func (s *Store) Replay(ctx context.Context, fn func(store.Job) error) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, s.qSelect)
	if err != nil && retryable(err) {
		rows, err = s.pool.Query(ctx, s.qSelect)
	}
	if err != nil {
		return fmt.Errorf("postgres: replay: %w", err)
	}
	defer rows.Close()
	return store.ReplayRows(ctx, "postgres", rows, func() (store.Job, error) {
		var (
			j        store.Job
			prio     int32
			when     int32
			dataCopy []byte
		)
		err := rows.Scan(&j.Key, &j.Function, &prio, &dataCopy, &when, &j.Reducer, &j.Version)
		j.Priority, j.When = int(prio), int64(when)
		if len(dataCopy) > 0 {
			j.Data = append([]byte(nil), dataCopy...)
		}
		return j, err
	}, fn)
}

// Close closes the pool, waiting for the calls in flight. Connections
// that have not ended after a short grace (a database that does not
// answer) have their sockets closed. Calling it again returns nil.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pool.Close()
	}()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	s.conns.closeAll()
	<-done
	return nil
}
