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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// DefaultTable is gearmand's default --libpq-table.
const DefaultTable = storeconf.DefaultLibpqTable

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

	// Member makes the store a member of a fleet of servers sharing the
	// table (store.Fleet, fleet.go): its id, stable across restarts and
	// distinct per server. "" (tools such as `gserverd queue`, and
	// tests): not a member; Replay returns every record and Add writes
	// records nobody owns, which a member takes at its next sweep.
	Member string
	// HeartbeatInterval is how often a member renews its lease and looks
	// for expired ones. Default DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// LeaseTimeout is how long a lease lasts without a heartbeat before
	// another member may claim the member's records. At least three
	// heartbeat intervals. Default DefaultLeaseTimeout.
	LeaseTimeout time.Duration
	// Clock paces the heartbeat. Default: the real clock.
	Clock clock.Clock
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
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = DefaultLeaseTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return o
}

// Store is a PostgreSQL-backed store.Store.
type Store struct {
	pool *pgxpool.Pool
	log  logrus.FieldLogger

	table     string // quoted identifier
	indexName string // quoted name of the owner index

	qUpsert, qDelete, qSelect string

	conns *connSet
	gate  store.Gate
	fleet *fleet // nil when not a fleet member
	// adding is held (read) by every Add of a member from its lease
	// check to its end: the re-read after a fence waits for them.
	adding sync.RWMutex
	owner  string // Options.Member
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
	if opts.Member != "" && opts.LeaseTimeout < 3*opts.HeartbeatInterval {
		return nil, fmt.Errorf("postgres: lease timeout %v: want at least three heartbeat intervals (%v)", opts.LeaseTimeout, 3*opts.HeartbeatInterval)
	}
	cfg, err := pgxpool.ParseConfig(opts.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("postgres: conninfo: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	if opts.Member != "" {
		// A member cut off in the middle of a transaction (a claim, a
		// batch of adds) would keep its row locks for as long as TCP takes
		// to give up, hours: the others could not claim its records. The
		// database ends such a transaction well within the lease.
		ms := max(time.Second, opts.LeaseTimeout/3).Milliseconds()
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(ms, 10)
	}
	conns := newConnSet()
	cfg.ConnConfig.DialFunc = conns.dialer(cfg.ConnConfig.DialFunc)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, log: opts.Logger.WithField("store", "postgres"), conns: conns, owner: opts.Member}
	parts := strings.Split(opts.Table, ".")
	s.table = pgx.Identifier(parts).Sanitize()
	s.indexName = pgx.Identifier{parts[len(parts)-1] + "_gserverd_owner"}.Sanitize()
	if opts.Member != "" {
		s.fleet = newFleet(s, opts, parts)
		hbCfg := cfg.Copy()
		hbCfg.MaxConns = 2
		if s.fleet.hb, err = pgxpool.NewWithConfig(ctx, hbCfg); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: connect: %w", err)
		}
	}
	s.qUpsert = "INSERT INTO " + s.table + ` (unique_key, function_name, priority, data, when_to_run, reducer, gserverd_version, gserverd_owner)
SELECT $1::VARCHAR, $2::VARCHAR, $3::INTEGER, $4::BYTEA, $5::INTEGER, $6::TEXT, $7::BIGINT, $8::TEXT`
	if s.fleet != nil {
		// The lease check of fleet.go: no write once the lease is gone.
		s.qUpsert += " WHERE EXISTS (SELECT 1 FROM " + s.fleet.members + " WHERE member = $8 AND epoch = $9 AND expires_at > now())"
	}
	s.qUpsert += `
ON CONFLICT (unique_key, function_name) DO UPDATE SET priority = EXCLUDED.priority, data = EXCLUDED.data,
 when_to_run = EXCLUDED.when_to_run, reducer = EXCLUDED.reducer, gserverd_seq = DEFAULT,
 gserverd_version = EXCLUDED.gserverd_version, gserverd_owner = EXCLUDED.gserverd_owner`
	s.qDelete = "DELETE FROM " + s.table + " WHERE unique_key = $1 AND function_name = $2 AND ($3::BIGINT = 0 OR gserverd_version < $3::BIGINT)"
	s.qSelect = selectCols + " FROM " + s.table
	if s.fleet != nil {
		s.qDelete += " AND gserverd_owner = $4"
		s.qSelect += " WHERE gserverd_owner = $1"
	}
	s.qSelect += " ORDER BY gserverd_seq"
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		if s.fleet != nil {
			s.fleet.hb.Close()
		}
		return nil, err
	}
	if s.fleet != nil {
		if err := s.fleet.join(ctx); err != nil {
			pool.Close()
			s.fleet.hb.Close()
			return nil, err
		}
		s.fleet.takeUnowned(ctx)
		s.fleet.start()
	}
	return s, nil
}

// selectCols are the columns Replay reads, in scanJob's order;
// returnCols the same for UPDATE ... RETURNING, with gserverd_seq.
const (
	selectCols = `SELECT COALESCE(unique_key, ''), COALESCE(function_name, ''), COALESCE(priority, 1),
 COALESCE(data, ''::bytea), COALESCE(when_to_run, 0), COALESCE(reducer, ''), COALESCE(gserverd_version, 0)`
	returnCols = `COALESCE(unique_key, ''), COALESCE(function_name, ''), COALESCE(priority, 1),
 COALESCE(data, ''::bytea), COALESCE(when_to_run, 0), COALESCE(reducer, ''), COALESCE(gserverd_version, 0), gserverd_seq`
)

// scanJob reads a job from a row of selectCols (or returnCols, with
// extra).
func scanJob(rows pgx.Rows, extra ...any) (store.Job, error) {
	var (
		j        store.Job
		prio     int32
		when     int32
		dataCopy []byte
	)
	err := rows.Scan(append([]any{&j.Key, &j.Function, &prio, &dataCopy, &when, &j.Reducer, &j.Version}, extra...)...)
	j.Priority, j.When = int(prio), int64(when)
	if len(dataCopy) > 0 {
		j.Data = append([]byte(nil), dataCopy...)
	}
	return j, err
}

// migrate creates the table, or adds the columns gserverd uses to one
// gearmand made, and the fleet's members table. It runs under an
// advisory lock: servers starting together would otherwise race on
// CREATE TABLE IF NOT EXISTS. Every step is idempotent.
func (s *Store) migrate(ctx context.Context) error {
	stmts := []string{
		// gearmand's table (GEARMAN_UNIQUE_SIZE = 64) plus our columns.
		"CREATE TABLE IF NOT EXISTS " + s.table + ` (unique_key VARCHAR(64), function_name VARCHAR(255),
 priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))`,
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS reducer TEXT NOT NULL DEFAULT ''",
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS gserverd_seq BIGSERIAL",
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS gserverd_version BIGINT NOT NULL DEFAULT 0",
		"ALTER TABLE " + s.table + " ADD COLUMN IF NOT EXISTS gserverd_owner TEXT NOT NULL DEFAULT ''",
	}
	if s.fleet != nil {
		stmts = append(stmts, s.fleet.migrateStmts(s.indexName)...)
	}
	run := func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "gserverd migrate "+s.table); err != nil {
				return err
			}
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := run()
	if err != nil && retryable(err) {
		err = run()
	}
	if err != nil {
		return fmt.Errorf("postgres: prepare table %s: %w", s.table, err)
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
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, store.ErrFenced)
}

// exec runs q, retrying once on a fresh connection after a connection
// error. Every statement we run is idempotent.
func (s *Store) exec(ctx context.Context, q string, args ...any) error {
	_, err := s.execTag(ctx, q, args...)
	return err
}

// execTag is exec returning the statement's command tag.
func (s *Store) execTag(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error) {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil && retryable(err) {
		s.log.WithError(err).Warn("postgres statement failed, retrying on a new connection")
		tag, err = s.pool.Exec(ctx, q, args...)
	}
	return tag, err
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
	if len(jobs) == 0 {
		return nil
	}
	args := []any{nil, nil, nil, nil, nil, nil, nil, s.owner}
	if s.fleet != nil {
		s.adding.RLock()
		defer s.adding.RUnlock()
		epoch, err := s.fleet.usable()
		if err != nil {
			return err
		}
		args = append(args, epoch)
	}
	row := func(j *store.Job) []any {
		a := slices.Clone(args)
		a[0], a[1], a[2], a[3], a[4], a[5], a[6] = j.Key, j.Function, j.Priority, data(j.Data), j.When, j.Reducer, j.Version
		return a
	}
	// Only the fleet's lease check refuses a row (0 rows written); a
	// batch is then rolled back as a whole.
	fenced := fmt.Errorf("member %q: %w", s.owner, store.ErrFenced)
	var err error
	if len(jobs) == 1 {
		var tag pgconn.CommandTag
		tag, err = s.execTag(ctx, s.qUpsert, row(&jobs[0])...)
		if err == nil && tag.RowsAffected() == 0 {
			err = fenced
		}
	} else {
		err = s.batch(ctx, func(b *pgx.Batch) {
			for i := range jobs {
				b.Queue(s.qUpsert, row(&jobs[i])...).Exec(func(tag pgconn.CommandTag) error {
					if tag.RowsAffected() == 0 {
						return fenced
					}
					return nil
				})
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
		err = s.exec(ctx, s.qDelete, s.deleteArgs(refs[0])...)
	default:
		err = s.batch(ctx, func(b *pgx.Batch) {
			for _, r := range refs {
				b.Queue(s.qDelete, s.deleteArgs(r)...)
			}
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: delete %d jobs: %w", len(refs), err)
	}
	return nil
}

// deleteArgs are qDelete's arguments: a member deletes only its own
// records.
func (s *Store) deleteArgs(r store.Ref) []any {
	if s.fleet != nil {
		return []any{r.Key, r.Function, r.Version, s.owner}
	}
	return []any{r.Key, r.Function, r.Version}
}

// Replay calls fn for every stored row, in add order (rows gearmand wrote
// come first, in the order the column was filled).
func (s *Store) Replay(ctx context.Context, fn func(store.Job) error) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	var args []any
	if s.fleet != nil {
		args = []any{s.owner}
	}
	rows, err := s.pool.Query(ctx, s.qSelect, args...)
	if err != nil && retryable(err) {
		rows, err = s.pool.Query(ctx, s.qSelect, args...)
	}
	if err != nil {
		return fmt.Errorf("postgres: replay: %w", err)
	}
	defer rows.Close()
	return store.ReplayRows(ctx, "postgres", rows, func() (store.Job, error) { return scanJob(rows) }, fn)
}

// Close closes the pool, waiting for the calls in flight. Connections
// that have not ended after a short grace (a database that does not
// answer) have their sockets closed. Calling it again returns nil.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return nil
	}
	if s.fleet != nil {
		s.fleet.signalStop() // its loops end with their calls, below
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.fleet != nil {
			s.fleet.wait()
		}
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
