// Package storetest is the conformance suite every store.Store backend
// passes, in the manner of river's riverdrivertest: one Run function, called
// from each backend's own tests against the real database.
//
// The open function given to Run is called by each sub-test, possibly more
// than once: every call from the same *testing.T must return a store over
// the same data (a reopen after Close), and each distinct *testing.T must
// get data of its own (a fresh directory, table or key prefix). Sub-tests
// run in parallel.
//
// The package also holds small test helpers the backends share: a TCP
// proxy that can cut connections (Proxy), a reachability check that skips
// or fails (RequireTCP), and the outage test (RunOutage).
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
)

// Ordered is implemented by backends that replay jobs in the order they
// were added (a replaced job takes the place of its latest Add).
// KeepsAddOrder reports whether this store does.
type Ordered interface {
	KeepsAddOrder() bool
}

// Opener opens the store of a test; see the package comment.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite against the stores open makes.
func Run(t *testing.T, open Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"AddReplay", testAddReplay},
		{"Delete", testDelete},
		{"DeleteUnknown", testDeleteUnknown},
		{"StaleDelete", testStaleDelete},
		{"ReplaceDuplicate", testReplaceDuplicate},
		{"EmptyUniques", testEmptyUniques},
		{"ReplaceNewKeys", testReplaceNewKeys},
		{"Fields", testFields},
		{"LargePayload", testLargePayload},
		{"BinaryData", testBinaryData},
		{"ManyInOneAdd", testManyInOneAdd},
		{"ConcurrentAdds", testConcurrentAdds},
		{"Reopen", testReopen},
		{"CloseDuringAdds", testCloseDuringAdds},
		{"UseAfterClose", testUseAfterClose},
		{"Order", testOrder},
		{"ContextCanceled", testContextCanceled},
		{"ReplayStopsOnError", testReplayStopsOnError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openT(t *testing.T, open Opener) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// replayAll returns every stored job, failing on a duplicate reference.
func replayAll(t *testing.T, s store.Store) []store.Job {
	t.Helper()
	var jobs []store.Job
	seen := map[store.Ref]bool{}
	err := s.Replay(ctxT(t), func(j store.Job) error {
		if seen[j.Ref()] {
			return fmt.Errorf("job %+v replayed twice", j.Ref())
		}
		seen[j.Ref()] = true
		jobs = append(jobs, j)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return jobs
}

func byRef(jobs []store.Job) map[store.Ref]store.Job {
	m := make(map[store.Ref]store.Job, len(jobs))
	for _, j := range jobs {
		m[j.Ref()] = j
	}
	return m
}

func equalJob(a, b store.Job) bool {
	return a.Function == b.Function && a.Key == b.Key && a.Priority == b.Priority &&
		bytes.Equal(a.Data, b.Data) && a.When == b.When && a.Reducer == b.Reducer && a.Version == b.Version
}

func describe(j store.Job) string {
	d := j.Data
	if len(d) > 32 {
		d = d[:32]
	}
	return fmt.Sprintf("{fn=%q key=%q prio=%d when=%d reducer=%q version=%d data(%d)=%q}", j.Function, j.Key, j.Priority, j.When, j.Reducer, j.Version, len(j.Data), d)
}

// wantJobs checks that the store holds exactly want (in any order).
func wantJobs(t *testing.T, s store.Store, want ...store.Job) []store.Job {
	t.Helper()
	got := replayAll(t, s)
	if len(got) != len(want) {
		t.Errorf("Replay returned %d jobs, want %d", len(got), len(want))
	}
	gm := byRef(got)
	for _, w := range want {
		g, ok := gm[w.Ref()]
		if !ok {
			t.Errorf("job %s missing from Replay", describe(w))
			continue
		}
		if !equalJob(g, w) {
			t.Errorf("Replay job = %s, want %s", describe(g), describe(w))
		}
	}
	return got
}

func add(t *testing.T, s store.Store, jobs ...store.Job) {
	t.Helper()
	if err := s.Add(ctxT(t), jobs...); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

func job(fn, key, data string) store.Job {
	return store.Job{Function: fn, Key: key, Priority: 1, Data: []byte(data)}
}

func testAddReplay(t *testing.T, open Opener) {
	s := openT(t, open)
	wantJobs(t, s)
	jobs := []store.Job{job("resize", "a", "1"), job("resize", "b", "2"), job("mail", "a", "3")}
	add(t, s, jobs[0])
	add(t, s, jobs[1:]...)
	wantJobs(t, s, jobs...)
}

func testDelete(t *testing.T, open Opener) {
	s := openT(t, open)
	jobs := []store.Job{job("f", "a", "1"), job("f", "b", "2"), job("g", "a", "3"), job("g", "b", "4")}
	add(t, s, jobs...)
	if err := s.Delete(ctxT(t), jobs[0].Ref()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantJobs(t, s, jobs[1:]...)
	if err := s.Delete(ctxT(t), jobs[1].Ref(), jobs[3].Ref()); err != nil {
		t.Fatalf("Delete two: %v", err)
	}
	wantJobs(t, s, jobs[2])
	// A deleted job can be added again.
	add(t, s, jobs[0])
	wantJobs(t, s, jobs[0], jobs[2])
}

// testStaleDelete: a Delete removes a record only if the record's version
// is lower than the ref's (store.Ref.Version), so a delete that arrives
// after a newer record with the same reference was added (a call that
// timed out but ran later) leaves that record; versions survive a
// reopen and come back from Replay; a record without a version (gearmand,
// an older gserverd, an import) is older than any; a ref without a
// version deletes whatever is stored. Versions are int64s near the top of
// the range, where a float64 would confuse neighbours.
func testStaleDelete(t *testing.T, open Opener) {
	s := openT(t, open)
	ctx := ctxT(t)
	const base = int64(1)<<62 + 1
	del := func(refs ...store.Ref) {
		t.Helper()
		if err := s.Delete(ctx, refs...); err != nil {
			t.Fatalf("Delete(%+v): %v", refs, err)
		}
	}
	ref := func(j store.Job, version int64) store.Ref {
		r := j.Ref()
		r.Version = version
		return r
	}
	old := job("f", "u", "old")
	old.Version = base
	add(t, s, old)
	// A delete decided after the old Add (version above it) but applied
	// after the new one: only the old record's version is below it.
	newer := job("f", "u", "new")
	newer.Version = base + 2
	add(t, s, newer)
	del(ref(old, base+1))
	wantJobs(t, s, newer)
	del(ref(newer, base+2)) // equal: not older
	wantJobs(t, s, newer)

	// In one call with others: each ref is judged on its own.
	other := job("f", "other", "o")
	other.Version = base + 3
	legacy := job("g", "legacy", "written without a version")
	add(t, s, other, legacy)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openT(t, open)
	wantJobs(t, s, newer, other, legacy)
	del(ref(newer, base+1), ref(other, base+4), ref(legacy, 1))
	wantJobs(t, s, newer)

	// A ref without a version deletes a versioned record.
	del(newer.Ref())
	wantJobs(t, s)
}

func testDeleteUnknown(t *testing.T, open Opener) {
	s := openT(t, open)
	j := job("f", "a", "1")
	add(t, s, j)
	for _, ref := range []store.Ref{{Function: "f", Key: "nope"}, {Function: "nope", Key: "a"}, {}} {
		if err := s.Delete(ctxT(t), ref); err != nil {
			t.Errorf("Delete(%+v) of an unknown job = %v, want nil", ref, err)
		}
	}
	if err := s.Delete(ctxT(t)); err != nil {
		t.Errorf("Delete() with no refs = %v, want nil", err)
	}
	if err := s.Add(ctxT(t)); err != nil {
		t.Errorf("Add() with no jobs = %v, want nil", err)
	}
	wantJobs(t, s, j)
	if err := s.Delete(ctxT(t), j.Ref(), j.Ref()); err != nil {
		t.Errorf("Delete of the same ref twice = %v, want nil", err)
	}
	wantJobs(t, s)
}

func testReplaceDuplicate(t *testing.T, open Opener) {
	s := openT(t, open)
	first := store.Job{Function: "f", Key: "u", Priority: 2, Data: []byte("old"), Reducer: "r1"}
	second := store.Job{Function: "f", Key: "u", Priority: 0, Data: []byte("new")}
	other := store.Job{Function: "g", Key: "u", Priority: 1, Data: []byte("other function")}
	upper := store.Job{Function: "f", Key: "U", Priority: 1, Data: []byte("key differs in case")}
	add(t, s, first, other, upper)
	add(t, s, second)
	wantJobs(t, s, second, other, upper)
	// The same reference twice in one Add: the last one wins.
	third := store.Job{Function: "f", Key: "u", Priority: 1, Data: []byte("third")}
	fourth := store.Job{Function: "f", Key: "u", Priority: 2, Data: []byte("fourth")}
	add(t, s, third, fourth)
	wantJobs(t, s, fourth, other, upper)
}

func testEmptyUniques(t *testing.T, open Opener) {
	s := openT(t, open)
	now := time.Now()
	var want []store.Job
	for i := range 100 {
		j := store.Job{Function: "bg", Key: store.NewKey(now, uint64(i)), Priority: 1, Data: []byte("same payload")}
		want = append(want, j)
	}
	add(t, s, want[:50]...)
	for _, j := range want[50:] {
		add(t, s, j)
	}
	got := wantJobs(t, s, want...)
	for _, j := range got {
		if u := j.Unique(); u != "" {
			t.Errorf("Unique() of replayed key %q = %q, want empty", j.Key, u)
		}
	}
}

// testReplaceNewKeys: a key made by store.NewKey is replaced like any
// other, whether it is the newest key, an older one, the same key twice in
// one Add, or the newest key after a reopen (a backend may skip the lookup
// of a NewKey key it knows to be new, and must know it right).
func testReplaceNewKeys(t *testing.T, open Opener) {
	s := open(t)
	now := time.Now()
	older := store.Job{Function: "bg", Key: store.NewKey(now, 1), Data: []byte("older")}
	newest := store.Job{Function: "bg", Key: store.NewKey(now.Add(time.Second), 2), Data: []byte("newest")}
	other := store.Job{Function: "other", Key: store.NewKey(now.Add(-time.Second), 3), Data: []byte("other function")}
	add(t, s, older, newest, other)
	with := func(j store.Job, data string) store.Job { j.Data = []byte(data); return j }
	add(t, s, with(newest, "newest 2"))
	add(t, s, with(older, "older 2"), with(older, "older 3"))
	wantJobs(t, s, with(older, "older 3"), with(newest, "newest 2"), other)
	// A key of another function above every stored one, twice in one Add.
	above := store.Job{Function: "other", Key: store.NewKey(now.Add(time.Hour), 4), Data: []byte("above 1")}
	add(t, s, above, with(above, "above 2"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := openT(t, open)
	add(t, s2, with(above, "above 3"))
	add(t, s2, with(newest, "newest 3"))
	wantJobs(t, s2, with(older, "older 3"), with(newest, "newest 3"), other, with(above, "above 3"))
}

func testFields(t *testing.T, open Opener) {
	s := openT(t, open)
	epoch := time.Now().Add(time.Hour).Unix()
	want := []store.Job{
		{Function: "high", Key: "h", Priority: 0, Data: []byte("h")},
		{Function: "normal", Key: "n", Priority: 1, Data: []byte("n")},
		{Function: "low", Key: "l", Priority: 2, Data: []byte("l")},
		{Function: "epoch", Key: "e", Priority: 1, Data: []byte("e"), When: epoch},
		{Function: "epoch", Key: "past", Priority: 2, Data: []byte("p"), When: 1},
		{Function: "reduce", Key: "r", Priority: 1, Data: []byte("r"), Reducer: "count"},
		{Function: "ünïcode.fn", Key: "ключ-🙂", Priority: 1, Data: []byte("u")},
		{Function: "with space-and-dash", Key: "a-b c:d", Priority: 1, Data: []byte("s")},
		{Function: "empty-data", Key: "x", Priority: 1},
		{Function: "long-unique", Key: string(bytes.Repeat([]byte("u"), 64)), Priority: 1, Data: []byte("64")},
	}
	add(t, s, want...)
	wantJobs(t, s, want...)
}

func testLargePayload(t *testing.T, open Opener) {
	s := openT(t, open)
	data := make([]byte, 8<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	j := store.Job{Function: "big", Key: "k", Priority: 1, Data: data}
	add(t, s, j)
	wantJobs(t, s, j)
}

func testBinaryData(t *testing.T, open Opener) {
	s := openT(t, open)
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	all = append(all, 0, 0, 0, '\n', '\r', 0xff, 0)
	want := []store.Job{
		{Function: "bin", Key: "all-bytes", Priority: 1, Data: all},
		{Function: "bin", Key: "nuls", Priority: 1, Data: []byte{0, 0, 0}},
		{Function: "bin", Key: "json-ish", Priority: 1, Data: []byte(`{"a":"\u0000"}'"` + "`\\")},
	}
	add(t, s, want...)
	wantJobs(t, s, want...)
}

func testManyInOneAdd(t *testing.T, open Opener) {
	s := openT(t, open)
	want := make([]store.Job, 2000)
	for i := range want {
		want[i] = job("many", fmt.Sprintf("k%05d", i), fmt.Sprintf("payload %d", i))
	}
	add(t, s, want...)
	wantJobs(t, s, want...)
}

func testConcurrentAdds(t *testing.T, open Opener) {
	s := openT(t, open)
	const workers, each = 16, 40
	want := make([]store.Job, 0, workers*each)
	for w := range workers {
		for i := range each {
			want = append(want, job(fmt.Sprintf("fn%d", w%3), fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("%d/%d", w, i)))
		}
	}
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := want[w*each : (w+1)*each]
			for i := 0; i < len(mine); {
				n := 1 + i%3 // mix single and multi-job Adds
				if i+n > len(mine) {
					n = len(mine) - i
				}
				if err := s.Add(ctx, mine[i:i+n]...); err != nil {
					errs <- err
					return
				}
				i += n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Add: %v", err)
	}
	wantJobs(t, s, want...)
}

func testReopen(t *testing.T, open Opener) {
	s := open(t)
	want := []store.Job{job("f", "a", "1"), job("f", "b", "2"), {Function: "f", Key: "c", Priority: 0, When: 42, Reducer: "r"}}
	add(t, s, want...)
	if err := s.Delete(ctxT(t), want[1].Ref()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	s2 := openT(t, open)
	wantJobs(t, s2, want[0], want[2])
	add(t, s2, job("f", "d", "4"))
	wantJobs(t, s2, want[0], want[2], job("f", "d", "4"))
}

// testCloseDuringAdds is the crash-shaped case: Close lands in the middle
// of a stream of concurrent Adds. Every Add that returned nil must survive
// the reopen, intact; jobs whose Add failed may or may not be there, but
// nothing else may appear.
func testCloseDuringAdds(t *testing.T, open Opener) {
	s := open(t)
	ctx := ctxT(t)
	const workers = 8
	var (
		mu      sync.Mutex
		acked   = map[store.Ref]store.Job{}
		tried   = map[store.Ref]store.Job{}
		nAcked  atomic.Int64
		wg      sync.WaitGroup
		stopped = make(chan struct{})
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopped:
					return
				default:
				}
				j := job("crash", fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("data %d %d", w, i))
				j2 := job("crash", fmt.Sprintf("w%d-%d-b", w, i), fmt.Sprintf("data b %d %d", w, i))
				mu.Lock()
				tried[j.Ref()], tried[j2.Ref()] = j, j2
				mu.Unlock()
				if err := s.Add(ctx, j, j2); err != nil {
					return // closed under us
				}
				mu.Lock()
				acked[j.Ref()], acked[j2.Ref()] = j, j2
				mu.Unlock()
				nAcked.Add(2)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for nAcked.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a condition, bounded by deadline
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close during Adds: %v", err)
	}
	close(stopped)
	wg.Wait()
	if nAcked.Load() < 100 {
		t.Fatalf("only %d Adds acknowledged in 30s", nAcked.Load())
	}
	s2 := openT(t, open)
	got := byRef(replayAll(t, s2))
	for ref, w := range acked {
		g, ok := got[ref]
		if !ok {
			t.Errorf("acknowledged job %s lost", describe(w))
		} else if !equalJob(g, w) {
			t.Errorf("acknowledged job = %s, want %s", describe(g), describe(w))
		}
	}
	for ref, g := range got {
		w, ok := tried[ref]
		if !ok {
			t.Errorf("job %s appeared that was never added", describe(g))
		} else if !equalJob(g, w) {
			t.Errorf("unacknowledged job torn: %s, want %s", describe(g), describe(w))
		}
	}
	t.Logf("acked=%d stored=%d", len(acked), len(got))
}

func testUseAfterClose(t *testing.T, open Opener) {
	s := open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := s.Add(ctx, job("f", "a", "1")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
	if err := s.Delete(ctx, store.Ref{Function: "f", Key: "a"}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed", err)
	}
	if err := s.Replay(ctx, func(store.Job) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Replay after Close = %v, want ErrClosed", err)
	}
}

func testOrder(t *testing.T, open Opener) {
	s := openT(t, open)
	o, ok := s.(Ordered)
	if !ok || !o.KeepsAddOrder() {
		t.Skip("backend does not keep add order (like gearmand's SQL and Redis queues)")
	}
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("k%d", (i*7)%30) // not sorted by key
		keys = append(keys, k)
		add(t, s, job(fmt.Sprintf("f%d", i%4), k, k))
	}
	// Replacing a job moves it to the end.
	add(t, s, job("f1", keys[1], "replaced"))
	keys = append(keys[:1:1], append(keys[2:], keys[1])...)
	if err := s.Delete(ctxT(t), store.Ref{Function: "f2", Key: keys[1]}); err != nil {
		t.Fatal(err)
	}
	keys = append(keys[:1:1], keys[2:]...)
	var got []string
	for _, j := range replayAll(t, s) {
		got = append(got, j.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Errorf("Replay order = %v, want %v", got, keys)
	}
}

func testContextCanceled(t *testing.T, open Opener) {
	s := openT(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Add(ctx, job("f", "a", "1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with canceled ctx = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, store.Ref{Function: "f", Key: "a"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with canceled ctx = %v, want context.Canceled", err)
	}
	if err := s.Replay(ctx, func(store.Job) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Replay with canceled ctx = %v, want context.Canceled", err)
	}
	// Cancel in the middle of a Replay.
	var jobs []store.Job
	for i := range 50 {
		jobs = append(jobs, job("f", fmt.Sprintf("k%d", i), "x"))
	}
	add(t, s, jobs...)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	n := 0
	err := s.Replay(ctx2, func(store.Job) error {
		n++
		if n == 3 {
			cancel2()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Replay canceled midway = %v, want context.Canceled", err)
	}
	if n >= 50 {
		t.Errorf("Replay called fn %d times after cancel, want it to stop", n)
	}
	// The store still works.
	wantJobs(t, s, jobs...)
}

func testReplayStopsOnError(t *testing.T, open Opener) {
	s := openT(t, open)
	add(t, s, job("f", "a", "1"), job("f", "b", "2"), job("f", "c", "3"))
	stop := errors.New("stop here")
	n := 0
	err := s.Replay(ctxT(t), func(store.Job) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("Replay = %v, want fn's error", err)
	}
	if n != 1 {
		t.Errorf("fn called %d times, want 1", n)
	}
}

// SortedKeys returns the keys of jobs, sorted (a helper for backend tests).
func SortedKeys(jobs []store.Job) []string {
	keys := make([]string, len(jobs))
	for i, j := range jobs {
		keys[i] = j.Function + "/" + j.Key
	}
	sort.Strings(keys)
	return keys
}

// ReplayAll returns every job in s, failing t on error or duplicate.
func ReplayAll(t *testing.T, s store.Store) []store.Job {
	t.Helper()
	return replayAll(t, s)
}
