// Package embedded is gserverd's default durable queue (`-q embedded`): a
// store in one directory on this machine, built on cockroachdb/pebble.
//
// # Why pebble and not bbolt
//
// Measured on the project's 2-core machine, with one writer goroutine that
// group-commits concurrent Adds of 200-byte jobs and fsyncs every commit:
//
//	                        bbolt 1.5.0     pebble 1.1.5
//	128 concurrent Adds     27,700 Adds/s   84,500 Adds/s
//	one Add at a time       1.33 ms/Add     0.79 ms/Add
//	iterate 1,000,000 jobs  0.12 s          0.36 s
//
// bbolt rewrites B+tree pages, a freelist and a meta page with two fsyncs
// per commit; pebble appends one record to its write-ahead log and fsyncs
// once. Both replay a million jobs in well under a second, so the write
// path decides. Pebble's log also keeps the database consistent when
// --sync interval or none lose their tail in a power cut, where bbolt with
// NoSync can leave a file that does not open.
//
// This package's own benchmarks (bench_test.go, Sync: always, same machine,
// shared with other work): BenchmarkAddConcurrent 43,000-60,000 Adds/s from
// 128 goroutines (tens of Adds share each fsync), BenchmarkAddSingle 0.4 ms per
// Add, BenchmarkReplay1M 0.7 s to open a store of 1,000,000 jobs and
// replay them all.
//
// # Why pebble v1 and not v2
//
// The store stays on pebble v1.1.5, though v2 (v2.1.7) is current, for
// two reasons measured on 2026-12-07 with a port of this package to v2:
//
//   - v2 cannot open the stores this package has written. They carry
//     format_major_version=1 (v1's default, FormatMostCompatible); v2
//     supports 13 and up and says `pebble: database "DIR" was written in
//     format major version 1, which is no longer supported`. A v1 open at
//     format 13 or 16 first makes them readable by v2 (all keys read
//     back), so a v2 build would have to keep v1 as well, for that one
//     step at open.
//   - v2's Open on a full disk does not return: it retries the flush of
//     the log into a table for ever (TestOpenOnFullDisk hung 9 minutes),
//     where v1 returns the out-of-space error that makes gserverd come up
//     read-only and serve the jobs it has (issue 10, item 3).
//
// Moving to v2 needs both solved (a free-space check before Open is one
// way for the second) and the crash and full-disk tests passing on it.
//
// # Layout
//
// Every job is stored under "j" + an 8-byte big-endian sequence number, so
// an ordered scan replays jobs in the order they were added; an index entry
// "i" + (function, key) points at the job's sequence number and holds its
// version (and its payload file, if any: codec.go), so a job with the
// same reference replaces the stored one (it moves to the end) and a
// Delete is judged without reading the record.
//
// A job whose payload has Options.BlobSize bytes or more (1 MiB) keeps it
// in a file of its own under blobs/, written before the job's record,
// which names it; pebble never holds the payload (blob.go). Through
// pebble, one 50 MiB job took about 4 times its size in memory (its
// batch, the log writer's blocks, and the flush of the batch into a
// table: a block buffer and its compressed copy); through its own file,
// nothing beyond the caller's buffer.
//
// # Concurrency
//
// One writer goroutine (run) owns the pebble batch and the sequence
// counter. Add and Delete hand it requests over a channel; it takes every
// request waiting, commits them as one batch with one fsync, then answers
// them all: many concurrent submits share one fsync, and Add returns only
// once its job is on disk (with Sync: always), or at least written to the
// kernel with write(2) (with Sync: interval and none, whose fsyncs
// walFS defers or skips; see walfs.go).
//
// # A full disk
//
// Pebble cannot survive a failed write of its log (it calls
// Logger.Fatalf, or panics, and its commit pipeline is broken after it).
// So the writer checks the free space before every commit (Store.room,
// space.go): an Add that would leave less than pebble needs to flush and
// compact, plus Options.Headroom, fails with ErrNoSpace, and pebble never
// meets the full disk. Deletes may go further; under pressure the writer
// has pebble flush its memtable, so that the log of deleted jobs is
// reused. A failure nobody could foresee (another program filling the
// disk between check and write, no inodes left, an I/O error) is
// recovered in the writer: that write and every later one fail with
// ErrFailed, reads go on, and a restart reopens the store. Opened on a
// full disk (opening writes the replayed log to a table), the store opens
// read-only instead: Adds fail with ErrNoSpace, Deletes are held in
// memory, and the writer reopens it writable once there is room.
//
// # A damaged log
//
// Before pebble opens the store, its write-ahead logs are read (damage.go):
// readable records after an unreadable part are damage, not the torn tail
// of a crash, and Open returns a *DamageError counting the jobs that would
// be lost, unless Options.AcceptDamage.
package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server/store"
)

// SyncMode says when the store fsyncs its log.
type SyncMode string

const (
	// SyncAlways fsyncs every batch before Add returns (the default). A
	// crash of the process or of the machine loses no acknowledged job.
	SyncAlways SyncMode = "always"
	// SyncInterval hands every batch to the kernel (write(2)) before Add
	// returns, and fsyncs the log every SyncInterval. A crash of the
	// process loses nothing acknowledged (the kernel holds the writes);
	// a machine crash or power cut loses at most the jobs acknowledged
	// in the last interval.
	SyncInterval SyncMode = "interval"
	// SyncNone hands every batch to the kernel (write(2)) before Add
	// returns and never fsyncs the log: the kernel writes it back when
	// it likes (typically within 30 s). A crash of the process loses
	// nothing acknowledged; a machine crash can lose the jobs of the
	// last tens of seconds.
	SyncNone SyncMode = "none"
)

// ParseSyncMode parses always, interval or none.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case SyncAlways, SyncInterval, SyncNone:
		return m, nil
	case "":
		return SyncAlways, nil
	}
	return "", fmt.Errorf("embedded: sync mode %q: want always, interval or none", s)
}

// Options configure a Store.
type Options struct {
	// Dir is the directory holding the store; it is created if missing.
	// Required.
	Dir string
	// Sync says when to fsync. Default SyncAlways.
	Sync SyncMode
	// SyncInterval is the fsync period of SyncInterval. Default 100ms.
	SyncInterval time.Duration
	// MaxBatch bounds the jobs and refs of one group commit. Default 4096.
	MaxBatch int
	// Headroom is the free space, beyond what flushing the log needs,
	// that the store keeps on its filesystem: an Add that would leave
	// less fails with ErrNoSpace (a Delete only below a quarter of it),
	// so that pebble never meets a full disk. Default 8 MiB.
	Headroom int64
	// AcceptDamage opens a store whose write-ahead log is damaged,
	// dropping the jobs stored from the damage on, or whose large jobs'
	// payload files are missing or short, dropping those jobs (they are
	// counted in an error-level message). Default false: Open returns a
	// *DamageError.
	AcceptDamage bool
	// BlobSize is the payload size from which a job's payload is kept in
	// a file of its own rather than in pebble (blob.go), so that a large
	// job costs about its size in memory. Default 1 MiB.
	BlobSize int
	// Logger receives the store's and pebble's messages. Default: a
	// logger that discards everything.
	Logger logrus.FieldLogger
}

func (o Options) withDefaults() Options {
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 100 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.Headroom <= 0 {
		o.Headroom = 8 << 20
	}
	if o.BlobSize <= 0 {
		o.BlobSize = 1 << 20
	}
	if o.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		o.Logger = l
	}
	return o
}

func (o Options) validate() error {
	if o.Dir == "" {
		return errors.New("embedded: Options.Dir is empty")
	}
	if _, err := ParseSyncMode(string(o.Sync)); err != nil {
		return err
	}
	return nil
}

// Store is the embedded store. It is safe for concurrent use.
type Store struct {
	opts Options
	log  logrus.FieldLogger

	// db is the database. run replaces it when it reopens a read-only
	// store (reopen); Replay holds dbMu (R) while it reads. Lock order:
	// mu, then dbMu.
	dbMu sync.RWMutex
	db   *pebble.DB

	reqs chan *request // Add/Delete -> run

	mu     sync.RWMutex // guards closed; held (R) while using db or sending on reqs
	closed bool

	stop chan struct{}  // closed by Close: stops the syncer
	wg   sync.WaitGroup // run and syncer

	// wal defers the log's fsyncs (Sync: interval and none); nil with
	// Sync: always.
	wal *walFS
	// space tells the free space and the current log's; see room.
	space *spaceFS

	// Payload files of large jobs (blob.go).
	blobDir   string
	blobSeq   atomic.Uint64   // the last file id given out
	blobBytes atomic.Int64    // bytes of the files being written
	unlinkMu  sync.Mutex      // guards unlink
	unlink    []uint64        // files of deleted jobs, removed after the next log fsync (Sync: interval)
	skip      map[uint64]bool // jobs (seq) Replay skips: payload lost, AcceptDamage, read-only; set by Open

	// Owned by run.
	seq uint64
	// keyMark is at least every stored key made by store.NewKey (an
	// empty unique), whatever its function: a NewKey key above it is not
	// stored, so its Add needs no lookup (a miss reads tables: most of
	// the store's CPU under pipelined submits, issue 14). Set by Open,
	// raised before each commit.
	keyMark  string
	failed   error           // set once pebble failed a commit: ErrFailed
	flushing <-chan struct{} // the flush room asked for, until it is done
	readOnly bool            // opened read-only on a full disk; see reopen
	held     []store.Ref     // deletes taken while read-only
	tried    time.Time       // the last reopen attempt

	commits atomic.Uint64 // group commits written, for Stats
	writes  atomic.Uint64 // jobs added and refs deleted in them
}

// Stats counts the store's group commits since Open.
type Stats struct {
	// Commits is the number of batches written (each one fsync with
	// Sync: always).
	Commits uint64
	// Writes is the number of jobs added plus refs deleted in them.
	Writes uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Writes: s.writes.Load()}
}

type request struct {
	jobs  []store.Job
	blobs []blobRef // the payload file of each job, or nil when none has one
	refs  []store.Ref
	done  chan error
}

// blob returns the payload file of job i (id 0: none).
func (r *request) blob(i int) blobRef {
	if r.blobs == nil {
		return blobRef{}
	}
	return r.blobs[i]
}

// blobIDs returns the payload files of r's jobs.
func (r *request) blobIDs() []uint64 {
	var ids []uint64
	for _, b := range r.blobs {
		if b.id != 0 {
			ids = append(ids, b.id)
		}
	}
	return ids
}

// Open opens (or creates) the store in opts.Dir.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create %s: %w", opts.Dir, err)
	}
	// A store another process has open is not read (its live log could
	// look damaged); pebble's lock below is what excludes it, this only
	// names the holder before the logs are checked.
	if pid, comm, ok := lockHolder(opts.Dir); ok {
		return nil, &LockedError{Dir: opts.Dir, PID: pid, Comm: comm, Err: syscall.EAGAIN}
	}
	blobDir := filepath.Join(opts.Dir, blobDirName)
	if err := os.MkdirAll(blobDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create %s: %w", blobDir, err)
	}
	if err := checkLogs(opts.Dir, opts.AcceptDamage, opts.Logger); err != nil {
		return nil, err
	}
	space := newSpaceFS(vfs.Default, opts.Dir)
	s := &Store{
		opts:    opts,
		log:     opts.Logger.WithField("store", "embedded"),
		reqs:    make(chan *request, 1024),
		stop:    make(chan struct{}),
		space:   space,
		blobDir: blobDir,
	}
	if opts.Sync != SyncAlways {
		s.wal = newWALFS(space, opts.Sync == SyncInterval)
	}
	db, err := openPebble(opts.Dir, s.pebbleOptions(false))
	if err != nil && isNoSpace(err) {
		// Opening writes the replayed log to a table; read-only, it does
		// not. The store serves its jobs and takes writes once there is
		// room (reopen).
		var roErr error
		if db, roErr = openPebble(opts.Dir, s.pebbleOptions(true)); roErr == nil {
			s.readOnly = true
			s.log.WithError(err).WithField("dir", opts.Dir).Error("the store's filesystem is full: store opened read-only; adds fail until space is freed")
		}
	}
	if err != nil && !s.readOnly {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
			pid, comm, _ := lockHolder(opts.Dir)
			return nil, &LockedError{Dir: opts.Dir, PID: pid, Comm: comm, Err: err}
		}
		if isNoSpace(err) {
			return nil, fmt.Errorf("embedded: open %s: the filesystem is full; free some space: %w", opts.Dir, err)
		}
		return nil, fmt.Errorf("embedded: open %s: %w", opts.Dir, err)
	}
	s.db = db
	if err := s.checkBlobs(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if s.seq, err = s.lastSeq(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.run()
	if opts.Sync == SyncInterval {
		s.wg.Add(1)
		go s.syncer()
	}
	s.log.WithFields(logrus.Fields{"dir": opts.Dir, "sync": opts.Sync}).Info("store opened")
	return s, nil
}

// pebbleOptions returns the options of the store's pebble database.
func (s *Store) pebbleOptions(readOnly bool) *pebble.Options {
	popts := &pebble.Options{
		Logger:       pebbleLogger{s.opts.Logger},
		MemTableSize: memTableSize,
		ReadOnly:     readOnly,
		// Not pebble's default FS: that wraps the OS filesystem in a disk
		// health checker whose goroutine outlives a failed Open.
		FS: s.space,
	}
	if s.wal != nil {
		popts.FS = s.wal
	}
	// pebble charges its memtables (up to two of memTableSize: the one
	// written and the one being flushed) to the block cache: with its
	// default 8 MiB cache nothing was ever cached, and every lookup read
	// and decompressed its blocks again. blockCacheSize is on top of them.
	popts.Cache = pebble.NewCache(2*memTableSize + blockCacheSize)
	// A lookup of a job's key that is not stored (an Add of a new unique)
	// is answered by a table's bloom filter, not its index and data blocks.
	// One entry: pebble extends it to the other levels, doubling the
	// table size at each (seven entries would each keep 2 MiB).
	popts.Levels = []pebble.LevelOptions{{FilterPolicy: bloom.FilterPolicy(10), FilterType: pebble.TableFilter}}
	return popts
}

// memTableSize is pebble's memtable size: the most job data held in
// memory (and in one log file) before it is flushed to a table.
const memTableSize = 64 << 20

// blockCacheSize is the memory pebble may keep of table blocks (index,
// filter and data blocks read by lookups and replay).
const blockCacheSize = 32 << 20

// openPebble is pebble.Open; a panic in it (pebble panics on some I/O
// errors, and Logger.Fatalf panics) becomes an error.
func openPebble(dir string, popts *pebble.Options) (db *pebble.DB, err error) {
	if popts.Cache != nil {
		// The database takes its own reference to the cache.
		defer popts.Cache.Unref()
	}
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	return pebble.Open(dir, popts)
}

// panicError turns a recovered panic value into an error.
func panicError(p any) error {
	if err, ok := p.(error); ok {
		return fmt.Errorf("pebble: %w", err)
	}
	return fmt.Errorf("pebble: %v", p)
}

// KeepsAddOrder reports that Replay returns jobs in add order.
func (s *Store) KeepsAddOrder() bool { return true }

var (
	jobPrefix   = []byte("j")
	indexPrefix = []byte("i")
)

func jobKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), jobPrefix...), seq)
}

func indexKey(r store.Ref) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(r.Function)+len(r.Key))
	b = append(b, indexPrefix...)
	b = binary.AppendUvarint(b, uint64(len(r.Function)))
	b = append(b, r.Function...)
	return append(b, r.Key...)
}

// raiseKeyMark raises keyMark to the key of the index key ik if that key
// was made by store.NewKey.
func (s *Store) raiseKeyMark(ik []byte) {
	n, w := binary.Uvarint(ik[len(indexPrefix):])
	start := len(indexPrefix) + w
	if w <= 0 || uint64(len(ik)-start) < n {
		return // not ours: checkBlobs reports what it cannot read
	}
	if key := string(ik[start+int(n):]); store.UniqueOf(key) == "" && key > s.keyMark {
		s.keyMark = key
	}
}

func (s *Store) lastSeq() (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: jobPrefix, UpperBound: []byte("k")})
	if err != nil {
		return 0, fmt.Errorf("embedded: scan: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	k := it.Key()
	if len(k) != 9 {
		return 0, fmt.Errorf("embedded: corrupt job key %x", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// Add stores jobs; it returns once they are durable to the degree the
// sync mode promises. If ctx ends first, Add returns ctx's error and the
// jobs may or may not be stored; the writer may still read their Data
// after such a return, so callers must not reuse those buffers.
//
// The payload of a job of Options.BlobSize bytes or more is written to a
// file of its own first, by the calling goroutine (blob.go).
func (s *Store) Add(ctx context.Context, jobs ...store.Job) error {
	return s.do(ctx, &request{jobs: jobs})
}

// Delete removes jobs whose stored version is below the ref's
// (store.Ref.Version); unknown refs are ignored.
func (s *Store) Delete(ctx context.Context, refs ...store.Ref) error {
	return s.do(ctx, &request{refs: refs})
}

func (s *Store) do(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(r.jobs) == 0 && len(r.refs) == 0 {
		if s.isClosed() {
			return store.ErrClosed
		}
		return nil
	}
	if s.isClosed() {
		return store.ErrClosed
	}
	if err := s.writeBlobs(r); err != nil {
		return err
	}
	r.done = make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		s.removeBlobs(r.blobIDs())
		return store.ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		s.removeBlobs(r.blobIDs())
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

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// run is the single writer: it group-commits requests until reqs is closed.
func (s *Store) run() {
	defer s.wg.Done()
	pending := make([]*request, 0, 64)
	for r := range s.reqs {
		pending = append(pending[:0], r)
		n := len(r.jobs) + len(r.refs)
		size := requestSize(r)
	drain:
		for n < s.opts.MaxBatch && size < maxGroupBytes {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				pending = append(pending, r)
				n += len(r.jobs) + len(r.refs)
				size += requestSize(r)
			default:
				break drain
			}
		}
		if s.readOnly && !s.reopen() {
			for _, r := range pending {
				err := s.hold(r)
				if err != nil {
					s.removeBlobs(r.blobIDs())
				}
				r.done <- err
			}
			clear(pending)
			continue
		}
		written, err := s.commit(pending)
		for _, r := range pending {
			if err != nil && !written {
				// Never committed: the payload files are orphans.
				// (When pebble may have written the batch, they stay;
				// the next Open removes those it does not refer to.)
				s.removeBlobs(r.blobIDs())
			}
			r.done <- err
		}
		clear(pending)
	}
}

// hold answers a request to a read-only store: an Add fails with
// ErrNoSpace; a Delete is kept in memory and written once the store is
// writable again (a crash before that replays the job: at least once, as
// with any delete not yet committed). Run only.
func (s *Store) hold(r *request) error {
	if s.failed != nil {
		return s.failed
	}
	if len(r.jobs) > 0 {
		return ErrNoSpace
	}
	s.held = append(s.held, r.refs...)
	return nil
}

// reopen makes a read-only store writable when its filesystem has room
// for opening it (the logs it replays, written to a table, and the
// headroom); it tries at most once a second. On failure the store stays
// read-only. Run only.
func (s *Store) reopen() bool {
	if s.failed != nil || time.Since(s.tried) < time.Second {
		return false
	}
	s.tried = time.Now()
	free, _, err := s.space.free()
	if err != nil || free < logBytes(s.opts.Dir)+s.opts.Headroom {
		return false
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if err := closePebble(s.db); err != nil {
		s.log.WithError(err).Warn("store: close the read-only database")
	}
	db, err := openPebble(s.opts.Dir, s.pebbleOptions(false))
	if err == nil {
		s.db, s.readOnly = db, false
		s.log.Info("store writable again")
		if len(s.held) > 0 {
			if _, err := s.commit([]*request{{refs: s.held}}); err != nil {
				s.log.WithError(err).WithField("jobs", len(s.held)).Error("store: delete failed")
			}
			s.held = nil
		}
		return true
	}
	s.log.WithError(err).Warn("store: still cannot open writable")
	if s.db, err = openPebble(s.opts.Dir, s.pebbleOptions(true)); err != nil {
		s.db = nil
		s.failed = fmt.Errorf("%w: reopen read-only: %w", ErrFailed, err)
		s.log.WithError(s.failed).Error("store failed; no more writes until gserverd restarts")
	}
	return false
}

// logBytes returns the size of the write-ahead logs in dir.
func logBytes(dir string) int64 {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var n int64
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil {
			n += st.Size()
		}
	}
	return n
}

// maxGroupBytes ends a group commit once its requests hold this many
// bytes: large jobs are committed one by one (issue 10, memory: a pebble
// batch grows by doubling, and five 60 MiB jobs in one group took
// about 1 GB of batches).
const maxGroupBytes = 4 << 20

// requestSize estimates the bytes r adds to a pebble batch: the
// encoded jobs, and for each job or ref an index entry and keys.
func requestSize(r *request) int {
	const overhead = 64 // per batch entry: kind, lengths, a job key
	n := 0
	for i := range r.jobs {
		j := &r.jobs[i]
		n += encodedLen(j, r.blob(i)) + 3*overhead + len(j.Function) + len(j.Key)
	}
	for _, ref := range r.refs {
		n += 2*overhead + len(ref.Function) + len(ref.Key)
	}
	return n
}

// newBatch returns the batch for reqs: allocated at its final size
// when it is large, so that pebble does not grow it by doubling, with a
// copy at every step.
func (s *Store) newBatch(reqs []*request) *pebble.Batch {
	size := 12 // batch header
	for _, r := range reqs {
		size += requestSize(r)
	}
	if size <= 1<<20 {
		return s.db.NewBatch()
	}
	// pebble rounds the first entry's room up to a power of two and
	// reallocates a smaller buffer; the power of two at or above size
	// is never smaller.
	return s.db.NewBatchWithSize(1 << bits.Len(uint(size-1)))
}

// commit writes one group of requests as one pebble batch; written says
// whether pebble may have written it in spite of an error. Run only.
//
// Pebble cannot recover from a failed write of its log: it calls
// Logger.Fatalf (which panics), or panics itself when it cannot start a
// new log. commit checks the free space first (room), so that a full
// disk fails the Add with ErrNoSpace and pebble never sees it; a panic
// that still happens (another program filled the disk in between, an
// I/O error) is recovered here and fails this and every later write with
// ErrFailed, while the server keeps serving the jobs it holds.
func (s *Store) commit(reqs []*request) (written bool, err error) {
	if s.failed != nil {
		return false, s.failed
	}
	defer func() {
		if p := recover(); p != nil {
			s.failed = fmt.Errorf("%w: %w", ErrFailed, panicError(p))
			s.log.WithError(s.failed).Error("store write failed; no more writes until gserverd restarts")
			written, err = true, s.failed
		}
	}()
	b := s.newBatch(reqs)
	defer b.Close()
	// index holds the index entries changed in this batch (seq 0: deleted).
	index := map[string]indexEntry{}
	seq := s.seq
	lookup := func(ik []byte) (indexEntry, error) {
		if e, ok := index[string(ik)]; ok {
			return e, nil
		}
		v, closer, err := s.db.Get(ik)
		if errors.Is(err, pebble.ErrNotFound) {
			return indexEntry{}, nil
		}
		if err != nil {
			return indexEntry{}, err
		}
		defer closer.Close()
		e, err := parseIndexValue(v)
		if err != nil {
			return indexEntry{}, fmt.Errorf("corrupt index entry %x", ik)
		}
		return e, nil
	}
	var gone []uint64 // payload files of the jobs this batch deletes or replaces
	mark := s.keyMark
	blobs := false
	for _, r := range reqs {
		for i := range r.jobs {
			j := &r.jobs[i]
			blob := r.blob(i)
			blobs = blobs || blob.id != 0
			ik := indexKey(j.Ref())
			var old indexEntry
			newKey := store.UniqueOf(j.Key) == ""
			if _, inBatch := index[string(ik)]; inBatch || !newKey || j.Key <= s.keyMark {
				if old, err = lookup(ik); err != nil {
					return false, fmt.Errorf("embedded: add job %q: %w", j.Key, err)
				}
			}
			if newKey {
				mark = max(mark, j.Key)
			}
			if old.seq != 0 {
				if err := b.Delete(jobKey(old.seq), nil); err != nil {
					return false, fmt.Errorf("embedded: add job %q: %w", j.Key, err)
				}
				if old.blob.id != 0 {
					gone = append(gone, old.blob.id)
				}
			}
			seq++
			// Encoded in place: a payload is copied once, into the
			// batch; a large one is in its file already (issue 10,
			// memory).
			k := jobKey(seq)
			op := b.SetDeferred(len(k), encodedLen(j, blob))
			copy(op.Key, k)
			encodeJob(op.Value[:0], j, blob)
			if err := op.Finish(); err != nil {
				return false, fmt.Errorf("embedded: add job %q: %w", j.Key, err)
			}
			e := indexEntry{seq: seq, version: j.Version, blob: blob}
			if err := b.Set(ik, e.encode(), nil); err != nil {
				return false, fmt.Errorf("embedded: add job %q: %w", j.Key, err)
			}
			index[string(ik)] = e
		}
		for _, ref := range r.refs {
			ik := indexKey(ref)
			old, err := lookup(ik)
			if err != nil {
				return false, fmt.Errorf("embedded: delete job %q: %w", ref.Key, err)
			}
			if old.seq == 0 || !ref.Removes(old.version) {
				continue
			}
			if err := b.Delete(jobKey(old.seq), nil); err != nil {
				return false, fmt.Errorf("embedded: delete job %q: %w", ref.Key, err)
			}
			if err := b.Delete(ik, nil); err != nil {
				return false, fmt.Errorf("embedded: delete job %q: %w", ref.Key, err)
			}
			if old.blob.id != 0 {
				gone = append(gone, old.blob.id)
			}
			index[string(ik)] = indexEntry{}
		}
	}
	adds := false
	for _, r := range reqs {
		adds = adds || len(r.jobs) > 0
	}
	if err := s.room(int64(b.Len()), adds); err != nil {
		return false, err
	}
	if blobs && s.opts.Sync != SyncNone {
		// The new payload files' directory entries, before the records
		// that refer to them.
		if err := s.syncBlobDir(); err != nil {
			return false, err
		}
	}
	// Raised before the commit: pebble may have written the batch even
	// if Commit fails.
	s.keyMark = mark
	// pebble.Sync in every mode: Commit returns once the log writer has
	// written the batch with write(2). With Sync: interval and none, the
	// fsync that would follow is deferred or skipped (walfs.go).
	if err := b.Commit(pebble.Sync); err != nil {
		s.log.WithError(err).Error("store commit failed")
		return true, fmt.Errorf("embedded: commit: %w", err)
	}
	s.unlinkLater(gone)
	s.seq = seq
	s.commits.Add(1)
	var n uint64
	for _, r := range reqs {
		n += uint64(len(r.jobs) + len(r.refs))
	}
	s.writes.Add(n)
	return false, nil
}

// room returns ErrNoSpace when the filesystem lacks room for a batch of
// n bytes (adds says whether it adds jobs) and for what pebble needs
// after it: flushing the unflushed log to a table (about the log's live
// size), compacting level 0 (its size), and Options.Headroom beyond.
// Deletes may go further, down to a quarter of the headroom: they are
// small and are how space comes back. Under pressure, room also asks
// pebble to flush its memtable, which turns a log of mostly deleted jobs
// into a small table and lets the log's space be reused. Run only.
func (s *Store) room(n int64, adds bool) error {
	free, _, err := s.space.free()
	if err != nil {
		return nil // cannot tell; let pebble try
	}
	// The log's record framing: 11 bytes per 32 KiB block, one block of
	// padding at worst.
	n += n/(32<<10)*11 + 32<<10
	avail := free - max(0, n-s.space.logSlack())
	if avail >= 2*memTableSize+2*s.opts.Headroom+n {
		return nil // plenty: skip the metrics
	}
	m := s.db.Metrics()
	walLive := int64(m.WAL.Size)
	need := walLive + n + int64(m.Levels[0].Size) + s.opts.Headroom
	if avail < need {
		s.flushUnder(free, walLive)
	}
	if !adds {
		need = s.opts.Headroom / 4
	}
	if avail < need {
		return ErrNoSpace
	}
	return nil
}

// flushUnder starts a flush of the memtable when the log holds enough to
// be worth it, the filesystem has room to write the table, and no flush
// it asked for is still running. Run only.
func (s *Store) flushUnder(free, walLive int64) {
	if s.flushing != nil {
		select {
		case <-s.flushing:
			s.flushing = nil
		default:
			return
		}
	}
	if walLive < 256<<10 || free < walLive+1<<20 {
		return
	}
	ch, err := s.db.AsyncFlush()
	if err != nil {
		s.log.WithError(err).Warn("store flush failed")
		return
	}
	s.flushing = ch
}

// syncer fsyncs the log every SyncInterval (Sync: interval).
func (s *Store) syncer() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// The files of jobs deleted before this fsync of the log
			// may go once it is done, not those of later deletes.
			ids := s.takeUnlink()
			if err := s.wal.syncAll(); err != nil {
				s.putUnlink(ids)
				s.log.WithError(err).Error("store sync failed")
				continue
			}
			s.removeBlobs(ids)
		}
	}
}

// Replay calls fn for every stored job in add order. A job whose payload
// file does not match its record fails it.
func (s *Store) Replay(ctx context.Context, fn func(store.Job) error) error {
	return s.replay(ctx, true, fn)
}

// replay is Replay; without data, large jobs come without their payload.
func (s *Store) replay(ctx context.Context, data bool, fn func(store.Job) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrFailed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: jobPrefix, UpperBound: []byte("k")})
	if err != nil {
		return fmt.Errorf("embedded: replay: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		j, blob, err := decodeJob(it.Value())
		if err != nil {
			return fmt.Errorf("embedded: replay: job %x: %w", it.Key(), err)
		}
		if blob.id != 0 && data {
			if s.skip[binary.BigEndian.Uint64(it.Key()[1:])] {
				continue
			}
			if j.Data, err = s.readBlob(blob); err != nil {
				return fmt.Errorf("embedded: replay: job %q: %w", j.Key, err)
			}
		}
		if err := fn(j); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("embedded: replay: %w", err)
	}
	return nil
}

// Count returns the number of stored jobs (a full scan).
func (s *Store) Count(ctx context.Context) (int, error) {
	n := 0
	err := s.replay(ctx, false, func(store.Job) error { n++; return nil })
	return n, err
}

// Close waits for queued writes, then closes the database. Calling it
// again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
	if s.db == nil {
		return nil
	}
	if s.failed != nil {
		// Pebble panicked holding its own mutex: its Close would block
		// for ever. The database is left to the end of the process.
		s.log.WithError(s.failed).Warn("store closed without closing the failed database")
		return nil
	}
	if err := closePebble(s.db); err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	// Closing fsynced the log (Sync: interval): the deletes are durable.
	s.removeBlobs(s.takeUnlink())
	s.log.Info("store closed")
	return nil
}

// closePebble is db.Close; a panic in it (after a failed commit) becomes
// an error.
func closePebble(db *pebble.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	return db.Close()
}

// pebbleLogger routes pebble's messages to logrus at debug level.
type pebbleLogger struct{ l logrus.FieldLogger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debugf("pebble: "+format, args...) }

// Fatalf logs at error level and panics: pebble calls it when it cannot
// go on (a failed commit: the code after the call assumes it does not
// return). Store.commit recovers the panic of a commit.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Errorf("pebble: %s", msg)
	for _, a := range args {
		if err, ok := a.(error); ok {
			panic(fmt.Errorf("%s: %w", msg, err))
		}
	}
	panic(errors.New(msg))
}
