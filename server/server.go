// Package server is the Gearman job server core of gserverd: it accepts
// connections on the listeners given to Serve, speaks the binary protocol
// and the admin text protocol of docs/PROTOCOL.md on the same port, queues jobs
// in memory and, when Options.Store is set, persists background jobs.
//
// # Concurrency
//
// Every connection has one reader goroutine that decodes its frames and
// applies them to the shared state under Server.mu. Output for a
// connection is appended to that connection's buffer under conn.wmu and
// written either by its own reader (after a batch of frames) or, when
// another goroutine produced it, by a short-lived writer goroutine. No
// goroutine blocks on another connection's socket.
//
// An in-process submit (Submit, submit.go) is a connection without a
// socket: its caller's goroutine is its reader, handles its one SUBMIT_*
// packet through the same path, and decodes the answers the server
// appends to its output, which nothing writes to a socket.
//
// Lock order: Server.mu, then conn.wmu. Server.lnMu is never held with
// either. The store is never called with Server.mu held.
//
// No packet makes the server work under Server.mu in proportion to what
// one connection sent before: duplicate registrations and duplicate
// attachments are counted, not stored twice (links.go), and every link
// between a connection and the rest goes in O(1). A connection with much
// state (many functions, running jobs or awaited jobs) that gives up
// functions (CANT_DO, RESET_ABILITIES) or goes away is cleaned up in
// chunks of at most cleanupChunk steps, with the lock released between
// chunks. The listings (`status`, `prioritystatus`, `workers`, `show
// jobs`, `show unique jobs`, Stats, Workers, Jobs, GET_STATUS_UNIQUE's
// search and `drop function`'s) visit at most walkChunk functions,
// connections, registrations or jobs per hold of the lock in the same
// way (walk.go says what a listing shows of a state that changes
// meanwhile).
//
// # Choices where gearmand gives no answer
//
// Beyond docs/PROTOCOL.md section 0:
//   - `workers` shows a connection id number (1, 2, ... per server, stable
//     for the connection's life) where gearmand shows the file descriptor.
//   - `status` and `prioritystatus` list functions in creation order.
//   - `show jobs` lists jobs in handle order; its last column is 1 for
//     background jobs (gearmand's job_queued), 0 for foreground ones.
//   - A packet with fewer arguments than its type needs gets ERROR
//     INVALID_PACKET "Packet has too few arguments" (gearmand waits for
//     more bytes); the connection stays open.
//   - A payload over Options.Limits.MaxPayload gets ERROR
//     ARGUMENT_TOO_LARGE "Packet payload larger than the server limit",
//     NUL-terminated arguments over 8 KiB ERROR ARGUMENT_TOO_LARGE
//     "NUL-terminated arguments larger than 8 KiB"; then the connection
//     is closed.
//   - PRE_SLEEP stops the CAN_DO_TIMEOUT timers of the jobs the
//     connection holds, as gearmand stops its per-connection timer.
//   - A background job with unique "-" is stored under a fresh key (like
//     an empty unique) so that jobs with different payloads never
//     overwrite each other; after a replay it has an empty unique.
//   - Graceful Shutdown hands out no more jobs (GRAB_JOB gets NO_JOB)
//     while it waits for running jobs.
//   - A background submit that joins a foreground job (same unique) is
//     answered after the job's record is written, as every background
//     submit is; if the write fails it gets ERROR QUEUE_ERROR and the job
//     stays a foreground job.
//   - Every store call has a deadline, Options.StoreTimeout. A
//     background submit whose Store.Add misses it gets ERROR QUEUE_ERROR,
//     never JOB_CREATED, and its job is not created; the record may
//     still reach the database later, so that job can come back at the
//     next start. A Store.Delete that misses it is logged and the job
//     is replayed at the next start (at least once). So Shutdown and
//     Close end even while the database does not answer.
//   - A duplicate CAN_DO (or CAN_DO_TIMEOUT) of a function on one
//     connection is stored once: it counts in the WORKERS column of
//     `status` and `prioritystatus` as in gearmand, but `workers` lists
//     the function once per connection where gearmand lists it once per
//     CAN_DO, dispatch serves it as one function in the round-robin, and
//     the newest CAN_DO's timeout applies. CANT_DO removes them all, as in
//     gearmand. Duplicate foreground submits of one job on one connection
//     are stored once too and still get one reply per submit.
//   - Function names with a control character (a byte below 0x20, or
//     0x7f; protocol.ValidFunctionName) are refused, where gearmand
//     accepts any name: a name such as "x\ny" or "x\ty" forges lines and
//     columns of `status` and breaks every admin parser. CAN_DO,
//     CAN_DO_TIMEOUT and every SUBMIT_* get ERROR INVALID_FUNCTION_NAME
//     and the connection stays open; `create function` and `maxqueue`
//     answer "ERR INVALID_FUNCTION_NAME ...". Spaces, UTF-8 and the empty
//     name stay valid, as in gearmand. Jobs replayed from a store keep
//     their names.
//   - Options.MaxQueueMemory bounds the memory of the jobs held (payload,
//     unique and a fixed overhead each; gearmand has no such bound and is
//     killed by the OOM killer). A submit that would create a job beyond
//     it gets ERROR QUEUE_ERROR "Job queue is full: memory bound", never
//     JOB_CREATED, and creates nothing; one that joins an existing job
//     (same unique) is accepted. Submits succeed again as jobs end. A
//     payload over 64 KiB counts from its header on, and beyond the
//     bound is discarded as it arrives, never buffered.
//
// Where gserverd follows gearmand 1.1.20 as measured side by side
// (interop's Functions/Maxqueue* and TestStatusUniqueSideBySide):
//   - `maxqueue` limits only submits that would add a job: one whose
//     unique matches a queued or running job of the function joins it
//     at the limit too (gearman_server_job_add_reducer). The limit of the
//     submit's priority is compared with every job of the function, of
//     every priority, queued or running. `maxqueue F N` sets all three
//     priorities; `maxqueue F H N [L]` sets high, normal and low, a
//     missing one unlimited; a size is C's atoi cut to an int, and a
//     negative one is unlimited. Unlike gearmand, `maxqueue` on an
//     unknown function creates it (gearmand answers OK and keeps
//     nothing), and an admin line of more than five words is served with
//     the words its command does not use ignored (gearmand closes the
//     connection).
//   - STATUS_RES_UNIQUE is gearmand's byte for byte: unique, known,
//     running, numerator, denominator, and the number of clients waiting
//     for the job (a background submit that joins adds none; a client
//     that disconnects is no longer counted). An unknown unique, and "-"
//     (whose jobs are keyed by payload), answer 0 in every field.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/backoff"
	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// Server is a Gearman job server. Create it with New.
type Server struct {
	opts  Options
	log   logrus.FieldLogger
	clk   clock.Clock
	store store.Store
	meter *meteredStore // the store, measured; with store only
	del   *deleter      // with store only
	lim   protocol.Limits
	pid   int

	// handle prefix with its ':' separator, e.g. "H:host:".
	prefix string

	lnMu      sync.Mutex
	listeners map[net.Listener]struct{}
	quit      chan struct{} // closed by Close
	quitOnce  sync.Once
	serveWG   sync.WaitGroup // Serve accept loops

	connWG  sync.WaitGroup // reader and writer goroutines of connections
	localWG sync.WaitGroup // Submit calls in progress (submit.go)

	// mu guards everything below.
	mu        sync.Mutex
	closed    bool // Close or Shutdown began: no new connections
	draining  bool // Shutdown: no job is handed out any more
	drained   chan struct{}
	conns     connList // in id order (walk.go)
	nextConn  uint64
	funcs     map[string]*function
	funcOrder []*function            // listing order of status/prioritystatus, seq order
	funcSeq   uint64                 // seq of the newest function
	bigUniq   map[*function]struct{} // functions whose unique map grew big (queue.go, shrink)
	jobs      map[uint64]*job
	jobsPeak  int // largest len(jobs) since the map was last rebuilt
	// mem is the memory of the jobs in jobs and of the background
	// submits waiting for their Store.Add, as jobMemory counts it
	// (Options.MaxQueueMemory).
	mem       int64
	memFull   bool // a submit was refused for mem, and mem did not fall to 7/8 of the bound since
	releasing bool // a memory release runs
	bgWG      sync.WaitGroup
	nextJob   uint64
	keySeq    uint64 // sequence for store.NewKey
	// version is the last store.Job.Version given to a record or a
	// delete (nextVersion).
	version   int64
	running   int // jobs assigned to a worker, all functions
	future    futureHeap
	epochT    clock.Timer
	epochAt   int64 // unix time epochT is armed for; 0 = unarmed
	counters  counters
	refused   logLimit  // connections refused by MaxConnections
	addFailed logLimit  // background submits refused because the store failed
	cleanup   holdStats // cleanup chunks (dispatch.go, release)
	walkHolds holdStats // listing chunks (walk.go)
	// cursors are the positions of the listings waiting for the lock
	// (walk.go).
	cursors []*cursor
	// walkPaused, a test hook, runs (without the lock) each time a
	// listing releases the lock between chunks.
	walkPaused func()

	// adding counts the Store.Adds in flight per record whose key is a
	// job's unique (several submits can write one such key; a fresh
	// key has one writer). A job freed meanwhile does not delete that
	// record: it may be the record of the job the Add will create.
	adding map[store.Ref]int

	// fleet runs the store's fleet membership (fleet.go); nil when the
	// store is not a fleet's. claims are its latest claims.
	fleet  *fleetRun
	claims []*claimRec
	fenced bool // the fleet fenced the server: stored jobs are not queued
	// fencedFreed are the stored jobs that ended while fenced, which the
	// re-read after the fence must not bring back.
	fencedFreed map[store.Ref]struct{}
}

type counters struct {
	submitted, completed, failed, exceptions, requeued, timedOut, dropped uint64
	refusedMemory                                                         uint64
	fenced                                                                uint64 // stored jobs forgotten at a fence (fleet.go)
}

// New validates opts and returns a server. When opts.Store is set, every
// stored job is replayed into the queues before New returns.
func New(opts Options) (*Server, error) {
	o := opts.WithDefaults()
	if err := validate(o); err != nil {
		return nil, err
	}
	s := &Server{
		opts:      o,
		log:       o.Logger,
		clk:       o.Clock,
		lim:       o.Limits,
		pid:       os.Getpid(),
		prefix:    o.JobHandlePrefix + ":",
		listeners: make(map[net.Listener]struct{}),
		quit:      make(chan struct{}),
		funcs:     make(map[string]*function),
		bigUniq:   make(map[*function]struct{}),
		jobs:      make(map[uint64]*job),
		adding:    make(map[store.Ref]int),
		// Above every version a previous run gave, unless the clock
		// went back; replay raises it above every stored one.
		version: time.Now().UnixNano(),
	}
	if o.Store != nil {
		s.meter = newMeteredStore(store.WithTimeout(o.Store, o.StoreTimeout), o.Clock)
		s.store = s.meter
		if err := s.replay(context.Background()); err != nil {
			return nil, err
		}
		s.del = newDeleter(s.store, s.log)
		if f, ok := o.Store.(store.Fleet); ok && f.Member() != "" {
			s.startFleet(f)
		}
	}
	return s, nil
}

func validate(o Options) error {
	switch {
	case o.JobRetries < -1 || o.JobRetries > 255:
		return fmt.Errorf("%w: JobRetries %d (want -1..255)", ErrInvalidOptions, o.JobRetries)
	case o.WorkerWakeup < 0:
		return fmt.Errorf("%w: WorkerWakeup %d (want >= 0)", ErrInvalidOptions, o.WorkerWakeup)
	case o.MaxQueueMemory < 0:
		return fmt.Errorf("%w: MaxQueueMemory %d (want >= 0, 0 unlimited)", ErrInvalidOptions, o.MaxQueueMemory)
	case o.MaxConnections < 0:
		return fmt.Errorf("%w: MaxConnections %d (want >= 0, 0 unlimited)", ErrInvalidOptions, o.MaxConnections)
	case len(o.JobHandlePrefix)+21 >= 64:
		return fmt.Errorf("%w: JobHandlePrefix %q too long (handles must stay under 64 bytes)", ErrInvalidOptions, o.JobHandlePrefix)
	}
	return nil
}

// Serve accepts connections on ln until Shutdown or Close and serves each
// in its own goroutine. It may be called for several listeners at once.
// It closes ln when it returns, and returns ErrServerClosed after
// Shutdown or Close, or the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.lnMu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.serveWG.Add(1)
	s.lnMu.Unlock()
	defer s.serveWG.Done()
	defer func() {
		s.lnMu.Lock()
		delete(s.listeners, ln)
		s.lnMu.Unlock()
		_ = ln.Close()
	}()

	failures := 0 // consecutive failed accepts
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("server: accept: %w", err)
			}
			// Anything else (EMFILE, ECONNABORTED...) is transient: wait
			// a little and go on, as net/http does.
			failures++
			wait := backoff.Policy{Min: 5 * time.Millisecond, Max: time.Second}.Delay(failures, nil)
			s.log.WithError(err).WithField("retry_in", wait).Warn("accept failed")
			t := s.clk.NewTimer(wait)
			select {
			case <-t.C():
			case <-s.quit:
				t.Stop()
			}
			continue
		}
		failures = 0
		if !s.startConn(nc) {
			_ = nc.Close()
			return ErrServerClosed
		}
	}
}

// startConn registers nc and starts its reader goroutine.
func (s *Server) startConn(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if max := s.opts.MaxConnections; max > 0 && s.conns.n >= max {
		if s.conns.n >= max+LoopbackReserve || !isLoopbackAddr(nc.RemoteAddr()) {
			s.refuse(nc)
			return true
		}
	}
	s.nextConn++
	c := newConn(s, nc, s.nextConn)
	s.conns.push(c)
	c.logger().WithField("remote", nc.RemoteAddr().String()).Debug("connection accepted")
	s.connWG.Add(1)
	go c.readLoop()
	return true
}

// refuse closes nc, accepted beyond MaxConnections, and logs about it at
// most once a second. The caller holds s.mu.
func (s *Server) refuse(nc net.Conn) {
	_ = nc.Close()
	if n, total, ok := s.refused.hit(s.clk.Now()); ok {
		s.log.WithFields(logrus.Fields{
			"refused":         n,
			"refused_total":   total,
			"connections":     s.conns.n,
			"max_connections": s.opts.MaxConnections,
		}).Warn("refusing connections: max connections reached")
	}
}

// logAddFailed logs a failed Store.Add of a background submit, at most
// once a second (with how many failed since the last line): on a full
// disk or with the database gone every submit fails.
func (s *Server) logAddFailed(err error, fields logrus.Fields) {
	n, total, ok := s.addFailed.hit(s.clk.Now())
	if !ok {
		return
	}
	fields["failed"], fields["failed_total"] = n, total
	s.log.WithError(err).WithFields(fields).Error("store: add failed; background submits get ERROR QUEUE_ERROR")
}

func isLoopbackAddr(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) closeListeners() {
	s.lnMu.Lock()
	for ln := range s.listeners {
		_ = ln.Close()
	}
	s.lnMu.Unlock()
}

// Shutdown stops the server gracefully, as gearmand on SIGUSR1: it stops
// accepting connections and handing out jobs, waits until no job is
// running (queued jobs stay queued, and stored when a Store is set), then
// closes every connection. If ctx ends first, Shutdown returns ctx's
// error and the server keeps running its jobs; call Close to stop it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.draining = true
	if s.drained == nil {
		s.drained = make(chan struct{})
		if s.running == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	s.mu.Unlock()
	s.closeListeners()
	s.serveWG.Wait()
	select {
	case <-drained:
	case <-ctx.Done():
		return fmt.Errorf("server: shutdown: %w", ctx.Err())
	}
	// Let every connection write what it has pending, then close it.
	s.mu.Lock()
	conns := make([]*conn, 0, s.conns.n)
	for c := s.conns.head; c != nil; c = c.next {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.finish()
	}
	flushed := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-ctx.Done():
		_ = s.Close()
		<-flushed
		return fmt.Errorf("server: shutdown: %w", ctx.Err())
	}
	return s.Close()
}

// Close stops the server at once: listeners and connections are closed,
// timers stopped. Running jobs stay in the store (if any) and are replayed
// at the next start. Close is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, s.conns.n)
	for c := s.conns.head; c != nil; c = c.next {
		conns = append(conns, c)
	}
	if s.epochT != nil {
		s.epochT.Stop()
		s.epochT = nil
	}
	for _, j := range s.jobs {
		j.stopTimer()
	}
	s.mu.Unlock()
	s.quitOnce.Do(func() { close(s.quit) })
	s.closeListeners()
	for _, c := range conns {
		c.kill()
	}
	s.serveWG.Wait()
	s.connWG.Wait()
	s.localWG.Wait() // quit ended their waits
	s.stopFleet()
	s.bgWG.Wait()
	if s.del != nil {
		s.del.close()
	}
	return nil
}

// Stats is a snapshot of the server's state and counters.
type Stats struct {
	// Functions lists every known function.
	Functions []FunctionStats `json:"functions"`
	// Connections is the number of open connections (in-process
	// submits, Submit, are none).
	Connections int `json:"connections"`
	// Jobs is the number of jobs in memory (queued, waiting and running).
	Jobs int `json:"jobs"`
	// Running is the number of jobs assigned to a worker.
	Running int `json:"running"`
	// Counters since the start.
	Submitted  uint64 `json:"submitted"`  // jobs created (not coalesced submits)
	Completed  uint64 `json:"completed"`  // WORK_COMPLETE
	Failed     uint64 `json:"failed"`     // WORK_FAIL, WORK_EXCEPTION, and drops at the retry limit
	Exceptions uint64 `json:"exceptions"` // WORK_EXCEPTION (also counted in Failed)
	Requeued   uint64 `json:"requeued"`   // jobs put back after a worker left, CANT_DO or a timeout
	TimedOut   uint64 `json:"timed_out"`  // CAN_DO_TIMEOUT expiries
	Dropped    uint64 `json:"dropped"`    // jobs dropped at the retry limit
	// RefusedMemory counts the submits refused by MaxQueueMemory.
	RefusedMemory uint64 `json:"refused_memory"`
	// QueueMemory is the memory MaxQueueMemory counts now (jobs and
	// background submits waiting for the store); MaxQueueMemory is the
	// bound, 0 for none.
	QueueMemory    int64 `json:"queue_memory_bytes"`
	MaxQueueMemory int64 `json:"max_queue_memory_bytes"`
	// Store describes the writes to the persistent store; nil without one.
	Store *StoreStats `json:"store,omitempty"`
	// Fleet describes the fleet of servers sharing the store; nil when
	// the store is not a fleet's (fleet.go).
	Fleet *FleetInfo `json:"fleet,omitempty"`
}

// FunctionStats is the state of one function.
type FunctionStats struct {
	Name string `json:"name"`
	// High, Normal and Low count queued jobs (not running) per priority;
	// Normal includes epoch jobs not yet due.
	High    int `json:"high"`
	Normal  int `json:"normal"`
	Low     int `json:"low"`
	Running int `json:"running"`
	Workers int `json:"workers"`
	// MaxQueue is the maxqueue limit per priority (high, normal, low);
	// 0 means unlimited.
	MaxQueue [3]int `json:"max_queue"`
	// OldestQueued is when the job that has waited longest in a queue
	// (due, not running) was queued; zero when none waits.
	OldestQueued time.Time `json:"oldest_queued,omitzero"`
	// Wait is the time jobs waited in the queue before a worker took
	// them, and Run the time from assignment to WORK_COMPLETE, _FAIL or
	// _EXCEPTION, in seconds. A requeued job's wait starts again.
	Wait Histogram `json:"wait,omitzero"`
	Run  Histogram `json:"run,omitzero"`
}

// Stats returns a snapshot of the server. The totals are read at one
// instant, the functions in chunks (walk.go): each function's figures
// are consistent, the list as a whole is not one instant's.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Functions:   make([]FunctionStats, 0, len(s.funcOrder)),
		Connections: s.conns.n,
		Jobs:        len(s.jobs),
		Running:     s.running,
		Submitted:   s.counters.submitted,
		Completed:   s.counters.completed,
		Failed:      s.counters.failed,
		Exceptions:  s.counters.exceptions,
		Requeued:    s.counters.requeued,
		TimedOut:    s.counters.timedOut,
		Dropped:     s.counters.dropped,

		RefusedMemory:  s.counters.refusedMemory,
		QueueMemory:    s.mem,
		MaxQueueMemory: s.opts.MaxQueueMemory,
	}
	if s.meter != nil {
		st.Store = s.meter.stats()
	}
	st.Fleet = s.fleetInfo()
	w := s.walk()
	defer w.end()
	w.functions(func(f *function) bool {
		st.Functions = append(st.Functions, f.stats())
		return true
	})
	return st
}

// stats returns the figures of f. Server.mu is held.
func (f *function) stats() FunctionStats {
	fs := FunctionStats{
		Name:     f.name,
		High:     f.queued[protocol.High],
		Normal:   f.queued[protocol.Normal],
		Low:      f.queued[protocol.Low],
		Running:  f.running,
		Workers:  f.nworkers,
		MaxQueue: f.max,
		Wait:     f.wait.snapshot(),
		Run:      f.run.snapshot(),
	}
	var oldest int64
	for p := range f.queues {
		if j := f.queues[p].head; j != nil && (oldest == 0 || j.since < oldest) {
			oldest = j.since
		}
	}
	if oldest != 0 {
		fs.OldestQueued = time.Unix(0, oldest)
	}
	return fs
}

// appendHandle appends the handle of job id.
func (s *Server) appendHandle(dst []byte, id uint64) []byte {
	dst = append(dst, s.prefix...)
	return strconv.AppendUint(dst, id, 10)
}

func (s *Server) handleLen(id uint64) int {
	n := len(s.prefix) + 1
	for id >= 10 {
		id /= 10
		n++
	}
	return n
}

// handleString returns the handle of job id as a string (for logs and admin).
func (s *Server) handleString(id uint64) string {
	return string(s.appendHandle(make([]byte, 0, 32), id))
}

// parseHandle returns the job id a handle names, or false when it cannot
// name a job of this server.
func (s *Server) parseHandle(h []byte) (uint64, bool) {
	if len(h) <= len(s.prefix) || string(h[:len(s.prefix)]) != s.prefix {
		return 0, false
	}
	var id uint64
	d := h[len(s.prefix):]
	if len(d) > 19 || (d[0] == '0') {
		return 0, false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + uint64(c-'0')
	}
	return id, true
}

// lookup returns the job a handle names.
func (s *Server) lookup(h []byte) *job {
	id, ok := s.parseHandle(h)
	if !ok {
		return nil
	}
	return s.jobs[id]
}
