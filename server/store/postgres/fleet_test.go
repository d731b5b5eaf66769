package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
	"github.com/gworkerd/gworkerd/server/store"
)

var debugLogger func(*testing.T) logrus.FieldLogger

// recorder is a store.FleetHandler that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	fences   int
	fencedAt time.Time // the first Fence
	claims   []store.Claim
	kick     chan struct{}
}

func newRecorder() *recorder { return &recorder{kick: make(chan struct{}, 1)} }

func (r *recorder) Fence() {
	r.mu.Lock()
	r.fences++
	if r.fencedAt.IsZero() {
		r.fencedAt = time.Now()
	}
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) Adopt(c store.Claim) {
	r.mu.Lock()
	r.claims = append(r.claims, c)
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// adopted returns the keys of the jobs adopted from other members
// (Own false), sorted.
func (r *recorder) adopted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for _, c := range r.claims {
		if c.Own {
			continue
		}
		for _, j := range c.Jobs {
			keys = append(keys, j.Key)
		}
	}
	sort.Strings(keys)
	return keys
}

func (r *recorder) fenceCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fences
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// member opens a fleet member on table through connAddr, running its
// fleet into a recorder until the test ends.
func member(t *testing.T, table, id, connAddr string, beat, lease time.Duration) (*Store, *recorder) {
	t.Helper()
	var lg logrus.FieldLogger
	if debugLogger != nil {
		lg = debugLogger(t).WithField("member", id)
	}
	s, err := Open(context.Background(), Options{ConnInfo: conninfo(connAddr), Table: table, Member: id,
		HeartbeatInterval: beat, LeaseTimeout: lease, Logger: lg})
	if err != nil {
		t.Fatalf("Open member %s: %v", id, err)
	}
	r := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.RunFleet(ctx, r)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = s.Close()
	})
	return s, r
}

func jobsFor(prefix string, n int) []store.Job {
	jobs := make([]store.Job, n)
	for i := range jobs {
		jobs[i] = store.Job{Function: "f", Key: fmt.Sprintf("%s-%03d", prefix, i), Priority: i % 3, Data: []byte(prefix), When: int64(i % 2 * 1700000000)}
	}
	return jobs
}

func replayKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	if err := s.Replay(context.Background(), func(j store.Job) error {
		keys = append(keys, j.Key)
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	sort.Strings(keys)
	return keys
}

func keysOf(jobs []store.Job) []string {
	var keys []string
	for _, j := range jobs {
		keys = append(keys, j.Key)
	}
	sort.Strings(keys)
	return keys
}

// TestFleetMembersOwnTheirRecords: members sharing a table replay only
// their own records, and a delete never removes another member's.
func TestFleetMembersOwnTheirRecords(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	a, _ := member(t, table, "a", addr, time.Second, 10*time.Second)
	b, _ := member(t, table, "b", addr, time.Second, 10*time.Second)
	if err := a.Add(ctx, jobsFor("a", 5)...); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, jobsFor("b", 3)...); err != nil {
		t.Fatal(err)
	}
	if got, want := replayKeys(t, a), keysOf(jobsFor("a", 5)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("a replays %v, want %v", got, want)
	}
	if got, want := replayKeys(t, b), keysOf(jobsFor("b", 3)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("b replays %v, want %v", got, want)
	}
	// b deletes a's record: spared.
	if err := b.Delete(ctx, store.Ref{Function: "f", Key: "a-000"}); err != nil {
		t.Fatal(err)
	}
	if got := replayKeys(t, a); len(got) != 5 {
		t.Errorf("b's delete removed a's record: a has %v", got)
	}
	st := a.FleetStatus()
	if st.Member != "a" || st.Fenced || len(st.Members) != 2 && len(st.Members) != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestFleetClaimsExpiredMember: a member that stops heartbeating has its
// records claimed by the survivors, in chunks, each record once,
// with its priority, payload and time; its lease row goes.
func TestFleetClaimsExpiredMember(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	const beat, lease = 100 * time.Millisecond, time.Second
	dead, err := Open(ctx, Options{ConnInfo: conninfo(addr), Table: table, Member: "dead", HeartbeatInterval: beat, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	want := jobsFor("d", 2*claimChunk+500) // more than one claim transaction takes
	for i := 0; i < len(want); i += 500 {
		if err := dead.Add(ctx, want[i:min(i+500, len(want))]...); err != nil {
			t.Fatal(err)
		}
	}
	_, r1 := member(t, table, "s1", addr, beat, lease)
	_, r2 := member(t, table, "s2", addr, beat, lease)
	closed := time.Now()
	_ = dead.Close() // stops heartbeating; the lease stays until it expires
	waitUntil(t, 30*time.Second, "the dead member's records adopted", func() bool {
		return len(r1.adopted())+len(r2.adopted()) >= len(want)
	})
	got := append(r1.adopted(), r2.adopted()...)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(keysOf(want)) {
		t.Fatalf("adopted %d records %v..., want exactly the dead member's %d", len(got), got[:min(5, len(got))], len(want))
	}
	if time.Since(closed) < lease-beat {
		t.Errorf("claimed %v after the last heartbeat, before the lease of %v could expire", time.Since(closed), lease)
	}
	// The claimed records keep their fields.
	var claimer *recorder
	if len(r1.adopted()) > 0 {
		claimer = r1
	} else {
		claimer = r2
	}
	claimer.mu.Lock()
	for _, c := range claimer.claims {
		if c.Own {
			continue
		}
		if c.From != "dead" || c.Expired < 0 || c.Expired > 30*time.Second {
			t.Errorf("claim from %q expired %v ago", c.From, c.Expired)
		}
		for _, j := range c.Jobs {
			var i int
			_, _ = fmt.Sscanf(j.Key, "d-%d", &i)
			if w := want[i]; j.Priority != w.Priority || string(j.Data) != string(w.Data) || j.When != w.When || j.Function != w.Function {
				t.Errorf("claimed %+v, stored %+v", j, w)
			}
		}
	}
	claimer.mu.Unlock()
	c, err := pgx.Connect(ctx, conninfo(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table+"_members WHERE member = 'dead'").Scan(&n); err != nil || n != 0 {
		t.Errorf("dead member's lease rows: %d (%v), want 0", n, err)
	}
}

// TestFleetFencedMember: a member cut off from the database (packets
// dropped) is fenced before its lease can be claimed: its handler hears
// Fence and its Adds fail with ErrFenced. Another member claims its
// records. Back on the network, the member finds its lease lost, joins
// again with a new epoch, owns nothing it lost, and cannot delete the
// records it lost.
func TestFleetFencedMember(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	const beat, lease = 100 * time.Millisecond, 1500 * time.Millisecond
	p, err := tcpproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cut, rc := member(t, table, "cut", p.Addr(), beat, lease)
	want := jobsFor("c", 50)
	if err := cut.Add(ctx, want...); err != nil {
		t.Fatal(err)
	}
	epoch := cut.FleetStatus().Epoch
	_, rs := member(t, table, "survivor", addr, beat, lease)

	p.Stall()
	waitUntil(t, 30*time.Second, "the cut member fenced", func() bool { return rc.fenceCount() > 0 })
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = cut.Add(actx, store.Job{Function: "f", Key: "late"})
	cancel()
	if !errors.Is(err, store.ErrFenced) {
		t.Errorf("Add while fenced: %v, want ErrFenced", err)
	}
	waitUntil(t, 30*time.Second, "the survivor claims the cut member's records", func() bool { return len(rs.adopted()) == len(want) })
	if fmt.Sprint(rs.adopted()) != fmt.Sprint(keysOf(want)) {
		t.Errorf("survivor adopted %v", rs.adopted())
	}
	rc.mu.Lock()
	rs.mu.Lock()
	if claimAt := rs.claims[0].At; !rc.fencedAt.Before(claimAt) {
		t.Errorf("the cut member was fenced at %v, after the survivor claimed its records at %v", rc.fencedAt, claimAt)
	}
	rs.mu.Unlock()
	rc.mu.Unlock()

	p.Resume()
	waitUntil(t, 30*time.Second, "the cut member rejoins", func() bool {
		st := cut.FleetStatus()
		return st.Epoch > epoch && !st.Fenced && st.LeaseLost > 0
	})
	// It was told which records it still owns: none.
	waitUntil(t, 30*time.Second, "the cut member re-reads its records", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, c := range rc.claims {
			if c.Own {
				return true
			}
		}
		return false
	})
	rc.mu.Lock()
	for _, c := range rc.claims {
		if c.Own && len(c.Jobs) != 0 {
			t.Errorf("after losing its lease the member still owns %d records", len(c.Jobs))
		}
	}
	rc.mu.Unlock()
	// Its late deletes spare the records it lost.
	var refs []store.Ref
	for _, j := range want {
		refs = append(refs, j.Ref())
	}
	if err := cut.Delete(ctx, refs...); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, table, "survivor"); got != len(want) {
		t.Errorf("survivor owns %d records after the old owner's deletes, want %d", got, len(want))
	}
	// And it works again: a new Add is its own.
	if err := cut.Add(ctx, store.Job{Function: "f", Key: "after"}); err != nil {
		t.Errorf("Add after rejoining: %v", err)
	}
	if got := countRows(t, table, "cut"); got != 1 {
		t.Errorf("cut owns %d records, want 1", got)
	}
}

func countRows(t *testing.T, table, owner string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, conninfo(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE gserverd_owner = $1", owner).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFleetAddChecksLeaseInDatabase: an Add is refused by the database
// once the member's lease row has expired there, whatever the member
// believes (its clock, a stalled heartbeat): no record lands that a
// claim could miss.
func TestFleetAddChecksLeaseInDatabase(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	s, _ := member(t, table, "m", addr, time.Hour, 3*time.Hour) // no heartbeat during the test
	c, err := pgx.Connect(ctx, conninfo(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "UPDATE "+table+"_members SET expires_at = now() - interval '1 second' WHERE member = 'm'"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		err := s.Add(ctx, jobsFor(fmt.Sprint("x", n), n)...)
		if !errors.Is(err, store.ErrFenced) {
			t.Errorf("Add of %d jobs with the lease expired in the database: %v, want ErrFenced", n, err)
		}
	}
	if got := countRows(t, table, "m"); got != 0 {
		t.Errorf("%d records written past the lease", got)
	}
}

// TestFleetTakesRecordsNobodyOwns: records written by a non-member
// (gearmand, `gserverd queue import`) are taken by the first member to
// start, and later ones by a member's periodic sweep.
func TestFleetTakesRecordsNobodyOwns(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	tool, err := Open(ctx, Options{ConnInfo: conninfo(addr), Table: table})
	if err != nil {
		t.Fatal(err)
	}
	defer tool.Close()
	if err := tool.Add(ctx, jobsFor("old", 4)...); err != nil {
		t.Fatal(err)
	}
	m, r := member(t, table, "m", addr, 100*time.Millisecond, time.Second)
	if got := replayKeys(t, m); fmt.Sprint(got) != fmt.Sprint(keysOf(jobsFor("old", 4))) {
		t.Errorf("member replays %v, want the 4 records nobody owned (taken at start)", got)
	}
	// Later ones are taken by a sweep, and handed to the server.
	if err := tool.Add(ctx, jobsFor("new", 3)...); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "the member's sweep takes the records written later", func() bool { return len(r.adopted()) == 3 })
	if got := r.adopted(); fmt.Sprint(got) != fmt.Sprint(keysOf(jobsFor("new", 3))) {
		t.Errorf("member adopted %v, want the 3 records written later", got)
	}
	if got := replayKeys(t, tool); len(got) != 7 {
		t.Errorf("a non-member replays %d records, want all 7", len(got))
	}
}

// TestFleetConcurrentStart: servers starting together on a new table
// all come up (the migration runs under a lock).
func TestFleetConcurrentStart(t *testing.T) {
	require(t)
	table := tableFor(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Options{ConnInfo: conninfo(addr), Table: table, Member: fmt.Sprint("m", i)})
			if err != nil {
				errs <- err
				return
			}
			_ = s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFleetOptions(t *testing.T) {
	_, err := Open(context.Background(), Options{ConnInfo: conninfo(addr), Member: "m", HeartbeatInterval: time.Second, LeaseTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "three heartbeat intervals") {
		t.Errorf("lease of two heartbeats: %v", err)
	}
}

// TestFleetCutMidTransaction: a member cut off in the middle of its own
// claim transaction (its lease row locked FOR SHARE, the next statement
// lost) is still claimed once its lease expires: the database ends the
// transaction it left open (idle_in_transaction_session_timeout), where
// TCP alone would keep the lock for hours and the others would skip the
// row (SKIP LOCKED) for as long.
func TestFleetCutMidTransaction(t *testing.T) {
	require(t)
	ctx := context.Background()
	table := tableFor(t)
	const beat, lease = 100 * time.Millisecond, 1500 * time.Millisecond
	p, err := tcpproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer p.Resume()
	p.StallOn([]byte("expires_at < now()")) // the claim's statement after the FOR SHARE check
	cut, _ := member(t, table, "cut", p.Addr(), beat, lease)
	want := jobsFor("m", 20)
	if err := cut.Add(ctx, want...); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the claim transaction stalled", func() bool { return p.Held() > 0 })
	p.Stall() // and now everything: the member is cut off
	_, rs := member(t, table, "survivor", addr, beat, lease)
	waitUntil(t, 60*time.Second, "the survivor claims the member cut mid-transaction", func() bool { return len(rs.adopted()) == len(want) })
}
