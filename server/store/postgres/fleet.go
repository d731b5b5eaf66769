package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// Fleet defaults (Options.HeartbeatInterval, Options.LeaseTimeout).
const (
	DefaultHeartbeatInterval = storeconf.DefaultFleetHeartbeat
	DefaultLeaseTimeout      = storeconf.DefaultFleetLease
)

// orphanSweepEvery is how often a member takes the records whose owner
// has no lease row (records gearmand or `gserverd queue import` wrote, and
// those a dead member added after its lease was claimed: a write in
// flight at the claim); sweepAfterClaim is how long after a claim it
// looks again, at every heartbeat, for records of the members it claimed
// (an index lookup, where the full sweep reads the table).
const (
	orphanSweepEvery = 30 * time.Second
	sweepAfterClaim  = 30 * time.Second
)

// claimChunk is how many records one claim or sweep transaction moves.
const claimChunk = 2000

// fleet is the membership of a Store with Options.Member set: the lease
// row, the heartbeat, claims of expired members' records, and fencing.
//
// The lease: a row (member, epoch, expires_at) in the members table,
// expires_at renewed to the database's now() + LeaseTimeout every
// HeartbeatInterval by an UPDATE that names the epoch. A member that
// finds its row gone (claimed) or its epoch changed has lost its lease.
//
// Fencing: a heartbeat sent at local time t and confirmed makes the lease
// good until t + LeaseTimeout on the database's clock at the earliest;
// the member treats it as good until t + LeaseTimeout less a margin
// (goodFor) on its own clock. Past that (a watchdog of its own tells), or
// on losing the lease, it is fenced: Add fails with store.ErrFenced, and
// the server forgets the stored jobs it has not handed out
// (FleetHandler.Fence). Every Add also checks, in its
// own statement, that the lease row is there, of this epoch and not
// expired, so a write never lands after a claim made it another
// member's. Deletes name the owner, so a member never deletes a record
// that was claimed from it.
//
// Claims: at every heartbeat a member that holds its lease looks for
// expired lease rows and, in one transaction, locks them (FOR UPDATE
// SKIP LOCKED: one claimer per dead member), moves their records to
// itself and deletes their lease rows; then it hands the records to the
// server (FleetHandler.Adopt).
type fleet struct {
	st       *Store
	member   string
	interval time.Duration
	timeout  time.Duration
	clk      clock.Clock
	members  string // quoted members table

	qBeat, qJoin, qList, qMine, qAlive, qExpired, qTake, qDrop, qOrphans, qLate string
	qOrphansQuiet                                                               string // qOrphans without RETURNING

	// hb is the heartbeat's own small pool: a load of adds and deletes
	// on the store's pool must not delay the lease.
	hb *pgxpool.Pool

	stop    chan struct{}
	done    chan struct{} // the heartbeat's loop returned
	watched chan struct{} // the watchdog's loop returned
	served  chan struct{} // the serving loop returned

	mu          sync.Mutex // guards the fields below
	epoch       int64
	goodUntil   time.Time // local: the lease is confirmed until then
	fenced      bool
	h           store.FleetHandler
	fencePend   bool  // fenced while no handler was attached: tell it on attach
	lostPend    bool  // the lease was lost and the member has not joined again
	fences      int64 // fences so far: a re-read ends the fence only if none came meanwhile
	resync      bool  // after a fence: hand the server the records it still owns
	list        []store.Member
	claims      int64
	claimedJobs int64
	lost        int64
	lastSweep   time.Time
	recent      map[string]time.Time // members claimed lately, and when
	lastErr     time.Time            // last heartbeat error logged
}

func newFleet(s *Store, opts Options, table []string) *fleet {
	mt := slices.Clone(table)
	mt[len(mt)-1] += "_members"
	f := &fleet{
		st:       s,
		member:   opts.Member,
		interval: opts.HeartbeatInterval,
		timeout:  opts.LeaseTimeout,
		clk:      opts.Clock,
		members:  pgx.Identifier(mt).Sanitize(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		watched:  make(chan struct{}),
		served:   make(chan struct{}),
	}
	m, q := f.members, s.table
	// Epochs only grow, also across a lease row claimed and made again:
	// a new row starts at the database's clock in microseconds.
	f.qJoin = "INSERT INTO " + m + ` (member, epoch, expires_at, beat_at, joined_at)
VALUES ($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT, now() + $2 * interval '1 microsecond', now(), now())
ON CONFLICT (member) DO UPDATE SET epoch = GREATEST(` + m + `.epoch + 1, EXCLUDED.epoch), expires_at = EXCLUDED.expires_at,
 beat_at = EXCLUDED.beat_at, joined_at = EXCLUDED.joined_at RETURNING epoch`
	f.qBeat = "UPDATE " + m + ` SET expires_at = now() + $3 * interval '1 microsecond', beat_at = now()
WHERE member = $1 AND epoch = $2`
	f.qList = "SELECT member, epoch, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM " + m + " ORDER BY member"
	f.qMine = selectCols + " FROM " + q + " WHERE gserverd_owner = $1 ORDER BY gserverd_seq"
	f.qAlive = "SELECT 1 FROM " + m + " WHERE member = $1 AND epoch = $2 AND expires_at > now() FOR SHARE"
	f.qExpired = "SELECT member, EXTRACT(EPOCH FROM now() - expires_at)::float8 FROM " + m +
		" WHERE member <> $1 AND expires_at < now() ORDER BY member FOR UPDATE SKIP LOCKED"
	// Records move in chunks of claimChunk, each its own transaction,
	// so that a dead member's backlog of any size is taken within the
	// heartbeat's deadlines; FOR UPDATE SKIP LOCKED lets two members take
	// chunks side by side, never the same record.
	chunk := func(where string) string {
		return "UPDATE " + q + " SET gserverd_owner = $1 WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + q + " WHERE " + where +
			" LIMIT " + strconv.Itoa(claimChunk) + " FOR UPDATE SKIP LOCKED)) RETURNING " + returnCols
	}
	noMember := "NOT EXISTS (SELECT 1 FROM " + m + " WHERE " + m + ".member = " + q + ".gserverd_owner)"
	f.qTake = chunk("gserverd_owner = $2")
	f.qDrop = "DELETE FROM " + m + " WHERE member = $1 AND NOT EXISTS (SELECT 1 FROM " + q + " WHERE gserverd_owner = $1)"
	f.qOrphans = chunk("gserverd_owner <> $1 AND " + noMember)
	f.qOrphansQuiet = strings.TrimSuffix(f.qOrphans, " RETURNING "+returnCols)
	f.qLate = chunk("gserverd_owner = ANY($2) AND " + noMember)
	return f
}

// micros is d in microseconds, for the interval arithmetic of the queries.
func micros(d time.Duration) int64 { return d.Microseconds() }

// migrateStmts create the members table and the index on owners.
func (f *fleet) migrateStmts(indexName string) []string {
	return []string{
		"CREATE TABLE IF NOT EXISTS " + f.members + ` (member TEXT PRIMARY KEY, epoch BIGINT NOT NULL,
 expires_at TIMESTAMPTZ NOT NULL, beat_at TIMESTAMPTZ NOT NULL, joined_at TIMESTAMPTZ NOT NULL)`,
		"CREATE INDEX IF NOT EXISTS " + indexName + " ON " + f.st.table + " (gserverd_owner)",
	}
}

// join takes (or renews) the member's lease with a new epoch, before the
// server replays this member's records.
func (f *fleet) join(ctx context.Context) error {
	sent := f.clk.Now()
	var epoch int64
	if err := f.hb.QueryRow(ctx, f.qJoin, f.member, micros(f.timeout)).Scan(&epoch); err != nil {
		return fmt.Errorf("postgres: join fleet as member %q: %w", f.member, err)
	}
	f.mu.Lock()
	f.epoch = epoch
	f.goodUntil = sent.Add(f.goodFor())
	f.mu.Unlock()
	return nil
}

// takeUnowned takes the records nobody owns (a queue gearmand left, a
// `gserverd queue import`) before the first replay, chunk after chunk,
// so that a server that replaces gearmand on its table serves its queue
// from the start. It stops early when ctx has less than a second left
// (the later sweeps take the rest, at run time) and never fails Open.
func (f *fleet) takeUnowned(ctx context.Context) {
	for {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < time.Second {
			return
		}
		tag, err := f.st.pool.Exec(ctx, f.qOrphansQuiet, f.member)
		if err != nil {
			f.st.log.WithError(err).Warn("fleet: take the records nobody owns at start; the sweeps take them later")
			return
		}
		if tag.RowsAffected() < claimChunk {
			return
		}
	}
}

// goodFor is how long after sending a heartbeat that the database
// confirmed the member counts its lease as good: the lease less a margin
// for the time the member takes to fence itself (a heartbeat interval,
// at least a fifth of the lease).
func (f *fleet) goodFor() time.Duration {
	return f.timeout - max(f.interval, f.timeout/5)
}

// start runs the heartbeat and the fence watchdog until Close.
func (f *fleet) start() {
	go f.loop(f.done, f.beatStep)
	go f.loop(f.watched, f.watchStep)
	go f.loop(f.served, f.serveStep)
}

// signalStop tells the loops to end; wait waits until they have and
// closes the heartbeat's pool. Between the two, Store.Close closes the
// sockets of calls that do not end (a database that does not answer).
func (f *fleet) signalStop() { close(f.stop) }

func (f *fleet) wait() {
	<-f.done
	<-f.watched
	<-f.served
	f.hb.Close()
}

// stopCtx is a context that ends at close.
func (f *fleet) stopCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// loop calls step every interval (or after the wait step returns) until
// close, then closes done. step gets a context that ends at close.
func (f *fleet) loop(done chan struct{}, step func(ctx context.Context) time.Duration) {
	defer close(done)
	ctx, cancel := f.stopCtx()
	defer cancel()
	t := f.clk.NewTimer(f.interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C():
		}
		t.Reset(step(ctx))
	}
}

// serveStep hands the server what it should serve, on a loop of its own:
// a long claim must not hold up the heartbeat.
func (f *fleet) serveStep(ctx context.Context) time.Duration {
	f.mu.Lock()
	ok := !f.lostPend
	f.mu.Unlock()
	if ok {
		f.serve(ctx)
	}
	return f.interval
}

// watchStep fences the member when its lease runs out unconfirmed, on a
// loop of its own: the heartbeat may be blocked in a call to a database
// that does not answer.
func (f *fleet) watchStep(context.Context) time.Duration {
	f.mu.Lock()
	left := f.goodUntil.Sub(f.clk.Now())
	f.mu.Unlock()
	if left <= 0 {
		f.fence("lease not renewed in time")
		return f.interval
	}
	return min(left, f.interval)
}

// beatStep is one heartbeat (round).
func (f *fleet) beatStep(ctx context.Context) time.Duration {
	f.round(ctx)
	return f.interval
}

// round is one heartbeat: renew the lease, or find it lost and join
// again.
func (f *fleet) round(ctx context.Context) {
	sent := f.clk.Now()
	cctx, cancel := context.WithTimeout(ctx, f.interval)
	f.mu.Lock()
	epoch := f.epoch
	f.mu.Unlock()
	tag, err := f.hb.Exec(cctx, f.qBeat, f.member, epoch, micros(f.timeout))
	cancel()
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		if now := f.clk.Now(); now.Sub(f.lastErr) >= 10*f.interval {
			f.lastErr = now
			f.st.log.WithError(err).WithField("member", f.member).Warn("fleet: heartbeat failed")
		}
		late := !f.clk.Now().Before(f.goodUntil)
		f.mu.Unlock()
		if late {
			f.fence("lease not renewed in time")
		}
		return
	case tag.RowsAffected() == 0:
		f.mu.Lock()
		f.lost++
		f.lostPend = true
		f.mu.Unlock()
		f.fence("lease lost: another member claimed this member's records")
		jctx, cancel := context.WithTimeout(ctx, f.timeout)
		err := f.join(jctx)
		cancel()
		if err != nil {
			f.st.log.WithError(err).Warn("fleet: join again failed")
			return
		}
		f.mu.Lock()
		f.lostPend = false
		epoch := f.epoch
		f.mu.Unlock()
		f.st.log.WithFields(map[string]any{"member": f.member, "epoch": epoch}).Warn("fleet: joined again after losing the lease")
	default:
		f.mu.Lock()
		f.goodUntil = sent.Add(f.goodFor())
		f.mu.Unlock()
	}
}

// fence marks the lease unconfirmed and tells the server, once per
// fence.
func (f *fleet) fence(why string) {
	f.mu.Lock()
	f.fences++
	if f.fenced {
		f.mu.Unlock()
		return
	}
	f.fenced = true
	f.resync = true
	h := f.h
	if h == nil {
		f.fencePend = true
	}
	f.mu.Unlock()
	f.st.log.WithFields(map[string]any{"member": f.member, "reason": why}).Error("fleet: fenced: not serving stored jobs until the lease is confirmed")
	if h != nil {
		h.Fence()
	}
}

// serve runs with the lease confirmed: it reads the member list, hands
// the server its own records again after a fence, and claims expired
// members' records.
func (f *fleet) serve(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := f.readList(cctx); err != nil {
		return
	}
	f.mu.Lock()
	h, resync, fenced := f.h, f.resync, f.fenced
	f.mu.Unlock()
	if h == nil {
		return
	}
	if resync {
		f.resyncOwn(ctx, h)
		return
	}
	if fenced {
		return // the lease runs out unconfirmed: no claim
	}
	// Claims, then the sweeps, chunk after chunk while there are more,
	// each chunk handed to the server at once; a fence stops them.
	for more := true; more && ctx.Err() == nil; {
		var claims []store.Claim
		var err error
		claims, more, err = f.claim(cctx)
		if err != nil {
			f.st.log.WithError(err).Warn("fleet: claim expired members")
			more = false
		}
		f.adopt(h, claims)
		if f.isFenced() {
			return
		}
	}
	f.mu.Lock()
	now := f.clk.Now()
	full := now.Sub(f.lastSweep) >= orphanSweepEvery
	var late []string
	for id, at := range f.recent {
		if now.Sub(at) >= sweepAfterClaim {
			delete(f.recent, id)
			continue
		}
		late = append(late, id)
	}
	f.mu.Unlock()
	for more := full || len(late) > 0; more && ctx.Err() == nil && !f.isFenced(); {
		c, err := f.sweep(cctx, full, late)
		if err != nil {
			f.st.log.WithError(err).Warn("fleet: take orphaned records")
			return
		}
		more = len(c.Jobs) == claimChunk
		f.adopt(h, []store.Claim{c})
	}
}

func (f *fleet) isFenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

// adopt hands claims with records to the server.
func (f *fleet) adopt(h store.FleetHandler, claims []store.Claim) {
	for _, c := range claims {
		if len(c.Jobs) == 0 {
			continue
		}
		f.st.log.WithFields(map[string]any{"member": f.member, "from": c.From, "jobs": len(c.Jobs), "expired_ago": c.Expired.String()}).Warn("fleet: claimed records")
		h.Adopt(c)
	}
}

// resyncOwn ends a fence once the lease is confirmed again: it waits for
// the adds in flight (new ones are refused while fenced), re-reads the
// records this member owns and hands them to the server. The fence ends
// only if none came meanwhile and the lease is still good; else the
// server is fenced again and the next round tries again.
func (f *fleet) resyncOwn(ctx context.Context, h store.FleetHandler) {
	f.mu.Lock()
	gen := f.fences
	good := f.clk.Now().Before(f.goodUntil) && !f.lostPend
	f.mu.Unlock()
	if !good {
		return
	}
	// A barrier: once it is taken, every add that passed the lease check
	// before the fence has ended (later ones fail that check).
	f.st.adding.Lock()
	//lint:ignore SA2001 the empty critical section is the barrier
	f.st.adding.Unlock()
	jobs, err := f.mine(ctx)
	if err != nil {
		f.st.log.WithError(err).Warn("fleet: read own records after a fence")
		return
	}
	h.Adopt(store.Claim{From: f.member, Own: true, Jobs: jobs, At: f.clk.Now()})
	f.mu.Lock()
	ok := f.fences == gen && f.clk.Now().Before(f.goodUntil) && !f.lostPend
	if ok {
		f.resync = false
		f.fenced = false
	}
	f.mu.Unlock()
	if !ok {
		f.st.log.WithField("member", f.member).Warn("fleet: lease not confirmed during the re-read: fenced again")
		h.Fence()
		return
	}
	f.st.log.WithFields(map[string]any{"member": f.member, "records": len(jobs)}).Warn("fleet: lease confirmed again; serving this member's records")
}

func (f *fleet) readList(ctx context.Context) error {
	rows, err := f.st.pool.Query(ctx, f.qList)
	if err != nil {
		return err
	}
	var list []store.Member
	for rows.Next() {
		var m store.Member
		var left float64
		if err := rows.Scan(&m.ID, &m.Epoch, &left); err != nil {
			rows.Close()
			return err
		}
		m.ExpiresIn = time.Duration(left * float64(time.Second))
		m.Self = m.ID == f.member
		list = append(list, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.list = list
	f.mu.Unlock()
	return nil
}

// mine reads every record this member owns.
func (f *fleet) mine(ctx context.Context) ([]store.Job, error) {
	rows, err := f.st.pool.Query(ctx, f.qMine, f.member)
	if err != nil {
		return nil, err
	}
	var jobs []store.Job
	err = store.ReplayRows(ctx, "postgres", rows, func() (store.Job, error) { return scanJob(rows) }, func(j store.Job) error {
		jobs = append(jobs, j)
		return nil
	})
	rows.Close()
	return jobs, err
}

// errNotAlive aborts a claim by a member whose lease is not good.
var errNotAlive = errors.New("lease not good")

// claim takes a chunk of records of every expired member, in one
// transaction; a member's lease row goes with its last records. more
// says whether a chunk was full (more records to take).
func (f *fleet) claim(ctx context.Context) (claims []store.Claim, more bool, err error) {
	f.mu.Lock()
	epoch := f.epoch
	f.mu.Unlock()
	err = pgx.BeginFunc(ctx, f.st.pool, func(tx pgx.Tx) error {
		claims, more = claims[:0], false
		var one int
		if err := tx.QueryRow(ctx, f.qAlive, f.member, epoch).Scan(&one); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return errNotAlive
			}
			return err
		}
		rows, err := tx.Query(ctx, f.qExpired, f.member)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var ago float64
			if err := rows.Scan(&id, &ago); err != nil {
				rows.Close()
				return err
			}
			claims = append(claims, store.Claim{From: id, Expired: time.Duration(ago * float64(time.Second))})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range claims {
			jobs, err := f.take(ctx, tx, f.qTake, f.member, claims[i].From)
			if err != nil {
				return err
			}
			claims[i].Jobs = jobs
			if len(jobs) == claimChunk {
				more = true
				continue
			}
			if _, err := tx.Exec(ctx, f.qDrop, claims[i].From); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errNotAlive) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	now := f.clk.Now()
	f.mu.Lock()
	for i := range claims {
		claims[i].At = now
		f.claims++
		f.claimedJobs += int64(len(claims[i].Jobs))
		if f.recent == nil {
			f.recent = make(map[string]time.Time)
		}
		f.recent[claims[i].From] = now
	}
	f.mu.Unlock()
	return claims, more, nil
}

// sweep takes the records whose owner has no lease row: all of them
// (full), or those of the members named.
func (f *fleet) sweep(ctx context.Context, full bool, members []string) (store.Claim, error) {
	c := store.Claim{From: "(no member)"}
	err := pgx.BeginFunc(ctx, f.st.pool, func(tx pgx.Tx) error {
		var jobs []store.Job
		var err error
		if full {
			jobs, err = f.take(ctx, tx, f.qOrphans, f.member)
		} else {
			jobs, err = f.take(ctx, tx, f.qLate, f.member, members)
		}
		c.Jobs = jobs
		return err
	})
	if err != nil {
		return c, err
	}
	now := f.clk.Now()
	c.At = now
	f.mu.Lock()
	if full {
		f.lastSweep = now
	}
	if len(c.Jobs) > 0 {
		f.claimedJobs += int64(len(c.Jobs))
	}
	f.mu.Unlock()
	return c, nil
}

// take runs an UPDATE ... RETURNING that moves records to this member and
// returns them in add order.
func (f *fleet) take(ctx context.Context, tx pgx.Tx, q string, args ...any) ([]store.Job, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	type seqJob struct {
		seq int64
		j   store.Job
	}
	var got []seqJob
	for rows.Next() {
		var sj seqJob
		j, err := scanJob(rows, &sj.seq)
		if err != nil {
			rows.Close()
			return nil, err
		}
		sj.j = j
		got = append(got, sj)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b seqJob) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	jobs := make([]store.Job, len(got))
	for i := range got {
		jobs[i] = got[i].j
	}
	return jobs, nil
}

// attach hands claims to h until detach.
func (f *fleet) attach(h store.FleetHandler) {
	f.mu.Lock()
	f.h = h
	pend := f.fencePend
	f.fencePend = false
	f.mu.Unlock()
	if pend {
		h.Fence()
	}
}

func (f *fleet) detach() {
	f.mu.Lock()
	f.h = nil
	f.mu.Unlock()
}

// usable reports whether Add may write: the lease is confirmed.
func (f *fleet) usable() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced || !f.clk.Now().Before(f.goodUntil) {
		return 0, fmt.Errorf("postgres: member %q: %w", f.member, store.ErrFenced)
	}
	return f.epoch, nil
}

func (f *fleet) status() store.FleetStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return store.FleetStatus{
		Member:            f.member,
		Epoch:             f.epoch,
		Fenced:            f.fenced || !f.clk.Now().Before(f.goodUntil),
		HeartbeatInterval: f.interval,
		LeaseTimeout:      f.timeout,
		Members:           slices.Clone(f.list),
		ClaimsTotal:       f.claims,
		ClaimedJobs:       f.claimedJobs,
		LeaseLost:         f.lost,
	}
}

// RunFleet hands the fleet's claims to h until ctx ends (store.Fleet).
// It returns at once with an error when the store is not a fleet member
// (Options.Member empty).
func (s *Store) RunFleet(ctx context.Context, h store.FleetHandler) error {
	if s.fleet == nil {
		return errors.New("postgres: not a fleet member (no member id)")
	}
	s.fleet.attach(h)
	defer s.fleet.detach()
	<-ctx.Done()
	return nil
}

// FleetStatus describes the fleet as this member last saw it
// (store.Fleet).
func (s *Store) FleetStatus() store.FleetStatus {
	if s.fleet == nil {
		return store.FleetStatus{}
	}
	return s.fleet.status()
}

// Member is the store's member id, "" when it is not a fleet member
// (store.Fleet).
func (s *Store) Member() string { return s.owner }
