// Package sqlite keeps gserverd's background jobs in gearmand's SQLite
// queue file (`-q libsqlite3 --libsqlite3-db FILE --libsqlite3-table
// TABLE`), through the pure-Go modernc.org/sqlite driver.
//
// The table is gearmand's (unique_key TEXT, function_name TEXT, priority
// INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key,
// function_name)), created as gearmand creates it when it is missing, so
// a queue gearmand left behind is served in place and gearmand can serve
// ours. Two columns are added, to gearmand's tables too, with defaults
// that keep gearmand's INSERT working: reducer, and gserverd_version, the
// record's store.Job.Version (0 for rows gearmand wrote), which a delete
// compares (store.Ref.Version), so that a late delete never removes a
// newer record of the same key. Rows are written as
// gearmand's replay reads them (keys and function names as TEXT, the
// payload as a BLOB, when_to_run as an INTEGER); a job with an empty
// unique is stored under its store.NewKey key, a unique gearmand takes as
// it is (gearmand itself gives such jobs a UUID).
//
// Writes are gearmand's INSERT OR REPLACE and DELETE. One goroutine
// writes: the Adds and Deletes that arrive while it commits are committed
// together in its next transaction (group commit), so concurrent submits
// share one commit, and its fsyncs. Replay returns the rows in rowid
// order, which is add order (a replaced row gets a new rowid).
//
// Durability follows --sync through SQLite's synchronous pragma: always
// is FULL (the commit is on disk when Add returns), interval is NORMAL
// and none is OFF (in both a gserverd crash loses nothing acknowledged;
// a machine crash can lose the last commits, with OFF even damage the
// file). The file's journal mode is left as it is.
//
// A full disk: in the rollback journal gearmand's files use, deleting a
// row needs free space too, so an Add that would leave less than
// Options.Headroom free fails with ErrNoSpace (the server answers
// QUEUE_ERROR) and finished jobs can still be deleted.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// DefaultTable is gearmand's default --libsqlite3-table.
const DefaultTable = storeconf.DefaultSQLiteTable

// Sync modes, as --sync names them.
const (
	SyncAlways   = "always"
	SyncInterval = "interval"
	SyncNone     = "none"
)

// Options configure a Store.
type Options struct {
	// Path is the database file (--libsqlite3-db). Required. A relative
	// path is taken from the working directory at Open. The file is
	// created if missing.
	Path string
	// Table is the queue table (--libsqlite3-table). Default
	// "gearman_queue". Letters, digits and '_' only.
	Table string
	// Sync is always (default), interval or none; see the package comment.
	Sync string
	// BusyTimeout is how long a statement waits for a lock another
	// process holds on the file. Default 5s.
	BusyTimeout time.Duration
	// MaxBatch bounds the jobs and refs of one group commit. Default 4096.
	MaxBatch int
	// Headroom is the free space, beyond the jobs of a commit, that an
	// Add must leave on the file's filesystem, or it fails with
	// ErrNoSpace: SQLite's rollback journal needs room to delete jobs,
	// and a full disk would otherwise keep finished jobs stored. Default
	// 8 MiB.
	Headroom int64
	// Logger receives the store's messages. Default: discard.
	Logger logrus.FieldLogger
}

var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (o Options) withDefaults() Options {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.Headroom <= 0 {
		o.Headroom = 8 << 20
	}
	if o.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		o.Logger = l
	}
	return o
}

// ParseSync returns SQLite's synchronous pragma for a sync mode: always
// (or "") FULL, interval NORMAL, none OFF.
func ParseSync(mode string) (string, error) {
	switch mode {
	case "":
		return "FULL", nil
	case SyncAlways:
		return "FULL", nil
	case SyncInterval:
		return "NORMAL", nil
	case SyncNone:
		return "OFF", nil
	}
	return "", fmt.Errorf("sqlite: sync mode %q: want always, interval or none", mode)
}

// DSN returns the modernc.org/sqlite data source name of the file at path
// (made absolute: a relative path in a file: URI would be read as a host)
// with the given extra query parameters.
func DSN(path string, q url.Values) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("sqlite: path %q: %w", path, err)
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	return u.String(), nil
}

// Store is a store.Store on gearmand's SQLite queue table.
type Store struct {
	opts  Options
	log   logrus.FieldLogger
	db    *sql.DB
	dir   string // the file's directory, for its free space
	table string // quoted

	// wconn is the writer's connection; qInsert and qDelete are prepared
	// on it. Used by run only (and closed by Close after run ended).
	wconn            *sql.Conn
	qInsert, qDelete *sql.Stmt
	qSelect          string

	reqs chan *request // Add/Delete -> run

	mu     sync.RWMutex // guards closed; held (R) while sending on reqs
	closed bool
	wg     sync.WaitGroup // run

	commits atomic.Uint64 // transactions committed, for Stats
	writes  atomic.Uint64 // jobs added and refs deleted in them
}

// Stats counts the store's group commits since Open.
type Stats struct {
	// Commits is the number of transactions committed.
	Commits uint64
	// Writes is the number of jobs added plus refs deleted in them.
	Writes uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Writes: s.writes.Load()}
}

type request struct {
	ctx  context.Context
	jobs []store.Job
	refs []store.Ref
	done chan error
}

// Open opens (or creates) the database file, creates gearmand's table if
// it is missing and adds the columns gserverd uses.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if opts.Path == "" {
		return nil, errors.New("sqlite: no database file (--libsqlite3-db)")
	}
	if !tableRE.MatchString(opts.Table) {
		return nil, fmt.Errorf("sqlite: table name %q: want letters, digits and _", opts.Table)
	}
	syncPragma, err := ParseSync(opts.Sync)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous("+syncPragma+")")
	q.Set("_txlock", "immediate")
	dsn, err := DSN(opts.Path, q)
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(opts.Path) // DSN checked it
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", opts.Path, err)
	}
	db.SetMaxOpenConns(4)
	s := &Store{
		opts:  opts,
		log:   opts.Logger.WithField("store", "sqlite"),
		db:    db,
		dir:   filepath.Dir(abs),
		table: `"` + opts.Table + `"`,
		reqs:  make(chan *request, 1024),
	}
	if err := s.prepare(ctx); err != nil {
		_ = s.closeDB()
		return nil, err
	}
	s.wg.Add(1)
	go s.run()
	s.log.WithFields(logrus.Fields{"path": opts.Path, "table": opts.Table, "sync": opts.Sync}).Info("store opened")
	return s, nil
}

// prepare makes the table and the statements.
func (s *Store) prepare(ctx context.Context) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.opts.Path, err)
	}
	s.wconn = c
	if err := s.migrate(ctx); err != nil {
		return err
	}
	s.qInsert, err = c.PrepareContext(ctx, "INSERT OR REPLACE INTO "+s.table+
		" (priority, unique_key, function_name, data, when_to_run, reducer, gserverd_version) VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return fmt.Errorf("sqlite: %s: prepare insert: %w", s.opts.Path, err)
	}
	s.qDelete, err = c.PrepareContext(ctx, "DELETE FROM "+s.table+" WHERE unique_key = ?1 AND function_name = ?2 AND (?3 = 0 OR COALESCE(gserverd_version, 0) < ?3)")
	if err != nil {
		return fmt.Errorf("sqlite: %s: prepare delete: %w", s.opts.Path, err)
	}
	s.qSelect = `SELECT rowid, COALESCE(unique_key, ''), COALESCE(function_name, ''), COALESCE(priority, 1),
 COALESCE(data, X''), COALESCE(when_to_run, 0), COALESCE(reducer, ''), COALESCE(gserverd_version, 0) FROM ` + s.table +
		" WHERE rowid > ? ORDER BY rowid LIMIT ?"
	return nil
}

// migrate creates gearmand's table, or adds to an existing one the
// columns it lacks: when_to_run (as gearmand 1.1 does to older tables),
// reducer and gserverd_version.
func (s *Store) migrate(ctx context.Context) error {
	cols, err := s.columns(ctx)
	if err != nil {
		return err
	}
	var stmts []string
	if len(cols) == 0 {
		// gearmand's statement, to the letter (tableRE makes the name safe).
		stmts = append(stmts, "CREATE TABLE "+s.opts.Table+" ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))")
		cols = map[string]bool{"unique_key": true, "function_name": true, "priority": true, "data": true, "when_to_run": true}
	}
	for _, c := range []string{"unique_key", "function_name", "priority", "data"} {
		if !cols[c] {
			return fmt.Errorf("sqlite: %s: table %s has no column %s (is it gearmand's queue?)", s.opts.Path, s.opts.Table, c)
		}
	}
	if !cols["when_to_run"] {
		stmts = append(stmts, "ALTER TABLE "+s.table+" ADD COLUMN when_to_run INTEGER")
	}
	if !cols["reducer"] {
		stmts = append(stmts, "ALTER TABLE "+s.table+" ADD COLUMN reducer TEXT NOT NULL DEFAULT ''")
	}
	if !cols["gserverd_version"] {
		stmts = append(stmts, "ALTER TABLE "+s.table+" ADD COLUMN gserverd_version INTEGER NOT NULL DEFAULT 0")
	}
	for _, q := range stmts {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: %s: prepare table %s: %w", s.opts.Path, s.opts.Table, err)
		}
	}
	return nil
}

// columns returns the column names of the table; none if it is missing.
func (s *Store) columns(ctx context.Context) (map[string]bool, error) {
	rows, err := s.wconn.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", s.opts.Table)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", s.opts.Path, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", s.opts.Path, err)
		}
		cols[c] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", s.opts.Path, err)
	}
	return cols, nil
}

// KeepsAddOrder reports that Replay returns jobs in add order.
func (s *Store) KeepsAddOrder() bool { return true }

// Add stores jobs; it returns once their transaction is committed. If
// ctx ends first, Add returns ctx's error and the jobs may or may not be
// stored; the writer may still read their Data after such a return.
func (s *Store) Add(ctx context.Context, jobs ...store.Job) error {
	return s.do(ctx, &request{jobs: jobs})
}

// Delete removes jobs; unknown refs are ignored.
func (s *Store) Delete(ctx context.Context, refs ...store.Ref) error {
	return s.do(ctx, &request{refs: refs})
}

func (s *Store) do(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.ctx = ctx
	r.done = make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	if len(r.jobs) == 0 && len(r.refs) == 0 {
		s.mu.RUnlock()
		return nil
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxGroupBytes ends a group commit once its jobs hold this many bytes
// of payload, so that large jobs are committed a few at a time.
const maxGroupBytes = 4 << 20

// run is the single writer: it group-commits requests until reqs is
// closed.
func (s *Store) run() {
	defer s.wg.Done()
	pending := make([]*request, 0, 64)
	for r := range s.reqs {
		pending = append(pending[:0], r)
		n, size := r.count()
	drain:
		for n < s.opts.MaxBatch && size < maxGroupBytes {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				pending = append(pending, r)
				rn, rsize := r.count()
				n += rn
				size += rsize
			default:
				break drain
			}
		}
		s.commit(pending)
		clear(pending)
	}
}

// count returns the jobs and refs of r and the bytes of its payloads.
func (r *request) count() (n, size int) {
	for i := range r.jobs {
		size += len(r.jobs[i].Data) + len(r.jobs[i].Key) + len(r.jobs[i].Function)
	}
	return len(r.jobs) + len(r.refs), size
}

// commit writes the requests whose callers still wait in one transaction
// and answers each. A failed statement fails the whole group. Run only.
func (s *Store) commit(reqs []*request) {
	live := reqs[:0:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if err := s.room(live); err != nil {
		// The Adds fail; the Deletes go ahead, into the headroom.
		dels := live[:0]
		for _, r := range live {
			if len(r.jobs) > 0 {
				r.done <- err
			} else {
				dels = append(dels, r)
			}
		}
		if live = dels; len(live) == 0 {
			return
		}
	}
	err := s.write(live)
	if err != nil {
		s.log.WithError(err).WithField("requests", len(live)).Warn("sqlite commit failed")
	}
	for _, r := range live {
		r.done <- err
	}
}

// room returns ErrNoSpace when reqs add jobs and the free space (of the
// file's filesystem, and the file's free pages), less their size (twice:
// the file and the journal), is below the headroom. Run only.
func (s *Store) room(reqs []*request) error {
	need := int64(0)
	for _, r := range reqs {
		_, size := r.count()
		need += 2 * int64(size)
	}
	if need == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return nil // unknown: let SQLite try
	}
	free := int64(st.Bavail) * st.Bsize
	if free-need >= s.opts.Headroom {
		return nil
	}
	// Pages freed by deletes are reused before the file grows.
	var pages, pageSize int64
	if err := s.wconn.QueryRowContext(context.Background(), "PRAGMA freelist_count").Scan(&pages); err == nil {
		if err := s.wconn.QueryRowContext(context.Background(), "PRAGMA page_size").Scan(&pageSize); err == nil {
			free += pages * pageSize
		}
	}
	if free-need < s.opts.Headroom {
		return ErrNoSpace
	}
	return nil
}

// write runs one transaction. It does not take the requests' contexts:
// once begun, the group is committed or rolled back as a whole (a lock
// held by another process bounds it by BusyTimeout).
func (s *Store) write(reqs []*request) (err error) {
	ctx := context.Background()
	tx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: begin: %w", s.opts.Path, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ins, del := tx.StmtContext(ctx, s.qInsert), tx.StmtContext(ctx, s.qDelete)
	for _, r := range reqs {
		for i := range r.jobs {
			j := &r.jobs[i]
			if _, err := ins.ExecContext(ctx, j.Priority, j.Key, j.Function, blob(j.Data), j.When, j.Reducer, j.Version); err != nil {
				return fmt.Errorf("sqlite: add job %q: %w", j.Key, err)
			}
		}
		for _, ref := range r.refs {
			if _, err := del.ExecContext(ctx, ref.Key, ref.Function, ref.Version); err != nil {
				return fmt.Errorf("sqlite: delete job %q: %w", ref.Key, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: commit: %w", s.opts.Path, err)
	}
	s.commits.Add(1)
	for _, r := range reqs {
		n, _ := r.count()
		s.writes.Add(uint64(n))
	}
	return nil
}

// blob keeps an empty payload a zero-length BLOB, not NULL: gearmand's
// replay refuses a data column that is not a BLOB.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Replay batch bounds: a batch of rows is read in one short read
// transaction, so a long replay never holds a lock writers wait for.
const (
	replayRows  = 256
	replayBytes = 8 << 20
)

// Replay calls fn for every stored row, in rowid (add) order. Rows are
// read in batches; a row replaced during the replay may come twice.
func (s *Store) Replay(ctx context.Context, fn func(store.Job) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return store.ErrClosed
	}
	var after int64 = -1 << 63
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, last, err := s.readBatch(ctx, after)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return err
		}
		for _, j := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(j); err != nil {
				return err
			}
		}
		if len(batch) == 0 {
			return nil
		}
		after = last
	}
}

// readBatch reads the rows after rowid after, up to replayRows of them or
// replayBytes of payload; it returns them and the last rowid read.
func (s *Store) readBatch(ctx context.Context, after int64) ([]store.Job, int64, error) {
	rows, err := s.db.QueryContext(ctx, s.qSelect, after, replayRows)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: replay: %w", err)
	}
	defer rows.Close()
	var (
		jobs []store.Job
		size int
		last int64
	)
	for rows.Next() {
		var (
			j    store.Job
			data []byte
		)
		if err := rows.Scan(&last, &j.Key, &j.Function, &j.Priority, &data, &j.When, &j.Reducer, &j.Version); err != nil {
			return nil, 0, fmt.Errorf("sqlite: replay: %w", err)
		}
		if len(data) > 0 {
			j.Data = data
		}
		jobs = append(jobs, j)
		if size += len(data); size >= replayBytes {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite: replay: %w", err)
	}
	return jobs, last, nil
}

// Close refuses new calls with ErrClosed, waits until the requests
// already queued are committed and closes the file. Calling it again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	s.wg.Wait()
	return s.closeDB()
}

func (s *Store) closeDB() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.qInsert, s.qDelete} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.opts.Path, err)
	}
	return nil
}
