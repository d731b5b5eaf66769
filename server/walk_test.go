package server

import (
	"bufio"
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// pipelineSync writes pk followed by an ECHO and waits for the ECHO's
// answer, counting the replies before it by type.
func (c *tconn) pipelineSync(pk []byte) map[protocol.Type]int {
	c.t.Helper()
	pk = protocol.AppendPacketString(pk, protocol.Req, protocol.EchoReq, "end")
	wrote := c.pipeline(pk)
	got := c.countUntilEcho()
	if err := <-wrote; err != nil {
		c.t.Fatal(err)
	}
	return got
}

// canDoMany registers the functions prefix0000 ... on c.
func (c *tconn) canDoMany(prefix string, n int) {
	c.t.Helper()
	var pk []byte
	for i := range n {
		pk = protocol.AppendPacketString(pk, protocol.Req, protocol.CanDo, fnName(prefix, i))
	}
	c.pipelineSync(pk)
}

func fnName(prefix string, i int) string { return fmt.Sprintf("%s%04d", prefix, i) }

// walkStats returns the chunk counts of the listings so far.
func (ts *testServer) walkStats() holdStats {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.walkHolds
}

// onPause sets the hook that runs each time a listing releases the lock
// (not for the listings f itself causes: drop function walks too).
func (ts *testServer) onPause(f func()) {
	var busy atomic.Bool
	hook := func() {
		if busy.Swap(true) {
			return
		}
		defer busy.Store(false)
		f()
	}
	ts.mu.Lock()
	ts.walkPaused = hook
	if f == nil {
		ts.walkPaused = nil
	}
	ts.mu.Unlock()
}

// TestListingsInBoundedChunks (issue 10, item 6): every listing (admin
// status, prioritystatus, workers, show jobs, show unique jobs, Stats,
// Workers, Jobs, GET_STATUS_UNIQUE, drop function) visits at most
// walkChunk functions, connections, registrations or jobs per hold of
// the server lock, however many one client made, and still lists them
// all.
func TestListingsInBoundedChunks(t *testing.T) {
	t.Parallel()
	const fns, conns, jobs, running = 2000, 300, 1500, 600
	ts := startServer(t, nil)
	fl := ts.dial(t)
	fl.send(protocol.SetClientID, "flood")
	fl.canDoMany("f", fns)
	sub := ts.dial(t)
	var pk []byte
	for i := range jobs {
		pk = protocol.AppendPacketString(pk, protocol.Req, protocol.SubmitJobBg, "job", "u"+strconv.Itoa(i), "x")
	}
	if got := sub.pipelineSync(pk); got[protocol.JobCreated] != jobs {
		t.Fatalf("replies %v, want %d JOB_CREATED", got, jobs)
	}
	w := ts.worker(t, "job")
	if got := w.pipelineSync(appendN(nil, running, protocol.GrabJob)); got[protocol.JobAssign] != running {
		t.Fatalf("replies %v, want %d JOB_ASSIGN", got, running)
	}
	for range conns {
		ts.dial(t).send(protocol.CanDo, "x")
	}
	waitFor(t, "the connections", func() bool { return statusOf(ts.Server, "x").Workers == conns })

	admin := ts.dial(t)
	admin.sync()
	tests := []struct {
		name     string
		elements int // visited at least
		run      func() int
		want     int // rows
	}{
		{"status", fns + 2, func() int { return strings.Count(ts.adminStatus(), "\n") - 1 }, fns + 2},
		{"prioritystatus", fns + 2, func() int { return strings.Count(ts.adminPriorityStatus(), "\n") - 1 }, fns + 2},
		{"Stats", fns + 2, func() int { return len(ts.Stats().Functions) }, fns + 2},
		{"workers", fns + conns, func() int { return strings.Count(ts.adminWorkers(), "\n") - 1 }, conns + 4},
		{"Workers", fns + conns + running, func() int {
			n := 0
			ws, _ := ts.Workers(WorkerQuery{All: true})
			for _, wi := range ws {
				n += len(wi.Functions) + len(wi.Running)
			}
			return n
		}, fns + conns + 1 + running},
		{"show jobs", jobs, func() int { return strings.Count(ts.adminShowJobs(), "\n") - 1 }, jobs},
		{"show unique jobs", jobs, func() int { return strings.Count(ts.adminShowUnique(), "\n") - 1 }, jobs},
		{"Jobs", jobs, func() int { _, n := ts.Jobs(JobQuery{}); return n }, jobs},
		{"GET_STATUS_UNIQUE", fns, func() int {
			admin.send(protocol.GetStatusUnique, "nosuch")
			return len(admin.expectType(protocol.StatusResUnique))
		}, 6},
		{"drop function", fns, func() int {
			return len(ts.dropFunction("nosuch"))
		}, len(protocol.ReplyFunctionNotFound)},
	}
	for _, tt := range tests {
		before := ts.walkStats()
		if got := tt.run(); got != tt.want {
			t.Errorf("%s: %d rows, want %d", tt.name, got, tt.want)
		}
		after := ts.walkStats()
		if min := uint64(tt.elements / walkChunk); after.maxSteps > walkChunk || after.chunks-before.chunks < min {
			t.Errorf("%s of %d elements: %d holds of the lock, at most %d elements in one; want at least %d holds of at most %d",
				tt.name, tt.elements, after.chunks-before.chunks, after.maxSteps, min, walkChunk)
		}
	}
}

// TestWorkersWhileRegistrationsAndConnectionsGo (issue 10, item 6):
// `workers` lists, exactly once and in order, every connection and
// registration present for the whole listing, while between its chunks
// the registrations and connections it is about to visit are removed;
// a connection that goes away in the middle of its row is left out.
func TestWorkersWhileRegistrationsAndConnectionsGo(t *testing.T) {
	t.Parallel()
	const fns, conns = 1000, 400
	ts := startServer(t, nil)
	a := ts.dial(t)
	a.send(protocol.SetClientID, "a")
	a.canDoMany("f", fns)
	bs := map[uint64]*tconn{}
	for i := range conns {
		b := ts.dial(t)
		b.send(protocol.SetClientID, "b"+strconv.Itoa(i))
		b.send(protocol.CanDo, "x")
		b.sync()
		bs[ts.connOf(t, "b"+strconv.Itoa(i)).id] = b
	}

	removedFns := map[string]bool{}
	removedConns := map[uint64]bool{}
	drop := func(id uint64) {
		_ = bs[id].nc.Close()
		removedConns[id] = true
		waitFor(t, "the connection to go", func() bool {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			for c := ts.conns.head; c != nil; c = c.next {
				if c.id == id {
					return false
				}
			}
			return true
		})
	}
	pauses := 0
	ts.onPause(func() {
		pauses++
		ts.mu.Lock()
		cur := *ts.cursors[0]
		inA := cur.abil != nil && cur.abil.c.clientID == "a"
		var next []string // a's next two registrations to visit
		var current, following uint64
		if inA {
			for ab := cur.abil; ab != nil && len(next) < 2; ab = ab.prev {
				next = append(next, ab.fn.name)
			}
		} else if cur.abil != nil {
			current = cur.abil.c.id
		}
		if cur.conn != nil {
			following = cur.conn.id
		}
		ts.mu.Unlock()
		switch {
		case inA:
			for _, n := range next {
				a.send(protocol.CantDo, n)
				removedFns[n] = true
			}
			a.send(protocol.CanDo, fmt.Sprintf("late%d", pauses))
			a.sync()
		case current != 0:
			// Inside a b row: that connection goes, and the next one.
			drop(current)
			if following != 0 {
				drop(following)
			}
		case following != 0:
			drop(following)
		}
	})
	out := ts.adminWorkers()
	ts.onPause(nil)
	if pauses < (fns+conns)/walkChunk {
		t.Fatalf("%d pauses, want at least %d", pauses, (fns+conns)/walkChunk)
	}
	if len(removedFns) == 0 || len(removedConns) < 2 {
		t.Fatalf("removed %d registrations and %d connections during the listing, want some of both", len(removedFns), len(removedConns))
	}

	lines := strings.Split(strings.TrimSuffix(out, ".\n"), "\n")
	lines = lines[:len(lines)-1]
	var ids []uint64
	var aFns []string
	for _, l := range lines {
		head, names, ok := strings.Cut(l, " :")
		f := strings.Fields(head)
		if !ok || len(f) != 3 {
			t.Fatalf("bad workers line %.100q", l)
		}
		id, _ := strconv.ParseUint(f[0], 10, 64)
		ids = append(ids, id)
		switch {
		case f[2] == "a":
			aFns = strings.Fields(names)
		case strings.HasPrefix(f[2], "b"):
			if names != " x" {
				t.Errorf("line %q, want the function x", l)
			}
		}
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("connection ids %v, want each once, in order", ids)
	}
	for id := range bs {
		if listed := slices.Contains(ids, id); listed == removedConns[id] {
			t.Errorf("connection %d listed %v, removed during the listing %v", id, listed, removedConns[id])
		}
	}
	var want []string
	for i := fns - 1; i >= 0; i-- {
		if n := fnName("f", i); !removedFns[n] {
			want = append(want, n)
		}
	}
	aFns = slices.DeleteFunc(aFns, func(n string) bool { return strings.HasPrefix(n, "late") })
	if !slices.Equal(aFns, want) {
		t.Errorf("a's functions: %d listed, want %d (all but the %d removed during the listing, newest first, each once)",
			len(aFns), len(want), len(removedFns))
	}
}

// TestWorkersWhileRunningJobsEnd (issue 10, item 6): Workers lists every
// job a worker runs for the whole listing, while between its chunks the
// jobs it is about to visit end.
func TestWorkersWhileRunningJobsEnd(t *testing.T) {
	t.Parallel()
	const running = 1000
	ts := startServer(t, nil)
	sub := ts.dial(t)
	var pk []byte
	for i := range running {
		pk = protocol.AppendPacketString(pk, protocol.Req, protocol.SubmitJobBg, "run", "", strconv.Itoa(i))
	}
	sub.pipelineSync(pk)
	w := ts.worker(t, "run")
	w.send(protocol.SetClientID, "w")
	if got := w.pipelineSync(appendN(nil, running, protocol.GrabJob)); got[protocol.JobAssign] != running {
		t.Fatalf("replies %v, want %d JOB_ASSIGN", got, running)
	}
	all := map[string]bool{}
	ts.mu.Lock()
	for j := range ts.jobs {
		all[ts.handleString(j)] = true
	}
	ts.mu.Unlock()

	ended := map[string]bool{}
	ts.onPause(func() {
		ts.mu.Lock()
		var hs []string
		for j, n := ts.cursors[0].job, 0; j != nil && n < 2; j, n = j.next, n+1 {
			hs = append(hs, ts.handleString(j.id))
		}
		ts.mu.Unlock()
		for _, h := range hs {
			w.send(protocol.WorkComplete, h, "")
			ended[h] = true
		}
		w.sync()
	})
	ws, _ := ts.Workers(WorkerQuery{})
	ts.onPause(nil)
	if len(ended) < 2*(running/walkChunk-1) {
		t.Fatalf("%d jobs ended during the listing, want at least %d", len(ended), 2*(running/walkChunk-1))
	}
	if len(ws) != 1 {
		t.Fatalf("%d workers listed, want 1", len(ws))
	}
	var want []string
	for h := range all {
		if !ended[h] {
			want = append(want, h)
		}
	}
	slices.SortFunc(want, func(a, b string) int { // handle order: by job id
		ia, _ := ts.parseHandle([]byte(a))
		ib, _ := ts.parseHandle([]byte(b))
		return cmp.Compare(ia, ib)
	})
	if got := ws[0].Running; !slices.Equal(got, want) {
		t.Errorf("%d running jobs listed, want %d (all but the %d that ended during the listing)", len(got), len(want), len(ended))
	}
}

// TestStatusWhileFunctionsDropped (issue 10, item 6): `status` lists,
// exactly once and in creation order, every function present for the
// whole listing, while between its chunks functions already listed and
// functions not yet listed are dropped.
func TestStatusWhileFunctionsDropped(t *testing.T) {
	t.Parallel()
	const fns = 2000
	ts := startServer(t, nil)
	a := ts.dial(t)
	for i := range fns {
		a.sendLine("create function " + fnName("f", i) + "\n")
	}
	for range fns {
		if got := a.readLine(); got != protocol.ReplyOK {
			t.Fatalf("create function: %q", got)
		}
	}
	// The walk visits walkChunk functions per hold of the lock, in
	// creation order; the hook knows which it visited.
	dropped := map[string]bool{}
	var behind, ahead []string
	pos := 0 // index of the next function the walk visits
	next := func() {
		for pos < fns && dropped[fnName("f", pos)] {
			pos++
		}
	}
	ts.onPause(func() {
		for range walkChunk {
			next()
			pos++
		}
		next()
		// Drop two functions the walk visited and two it did not.
		for _, i := range []int{pos - 10, pos - 9, pos + 10, pos + 11} {
			n := fnName("f", i)
			if i >= fns || dropped[n] {
				continue
			}
			if got := a.admin("drop function " + n); got != protocol.ReplyOK {
				t.Errorf("drop function %s: %q", n, got)
			}
			dropped[n] = true
			if i < pos {
				behind = append(behind, n)
			} else {
				ahead = append(ahead, n)
			}
		}
	})
	out := ts.adminStatus()
	ts.onPause(nil)
	if len(ahead) < 2*(fns/walkChunk-1) || len(behind) < 2*(fns/walkChunk-1) {
		t.Fatalf("dropped %d functions behind the listing and %d ahead of it, want at least %d each", len(behind), len(ahead), 2*(fns/walkChunk-1))
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out, ".\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 4 || f[1] != "0" || f[2] != "0" || f[3] != "0" {
			t.Fatalf("bad status line %q", l)
		}
		got = append(got, f[0])
	}
	var want []string
	for i := range fns {
		if n := fnName("f", i); !slices.Contains(ahead, n) {
			want = append(want, n)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("status lists %d functions, want %d: all but the %d dropped ahead of the listing (those dropped behind it listed), in creation order", len(got), len(want), len(ahead))
	}
}

// TestListingsWhileStateChanges (issue 10, item 6; run it with -race):
// listings run while other connections register and give up functions,
// connect and leave, and take and end jobs; every listing stays well
// formed and lists the functions and connections present throughout.
func TestListingsWhileStateChanges(t *testing.T) {
	t.Parallel()
	const fns, rounds = 600, 20
	ts := startServer(t, nil)
	stable := ts.dial(t)
	stable.send(protocol.SetClientID, "stable")
	stable.canDoMany("s", fns)
	stableID := ts.connOf(t, "stable").id

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	churn := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	reg := ts.dial(t)
	churn(func(i int) error {
		var pk []byte
		for k := range 50 {
			pk = protocol.AppendPacketString(pk, protocol.Req, protocol.CanDo, fnName("c", (i*50+k)%2000))
		}
		pk = protocol.AppendPacketString(pk, protocol.Req, protocol.ResetAbilities)
		_, err := reg.roundTrip(pk)
		return err
	})
	churn(func(int) error {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			return err
		}
		defer nc.Close()
		c := &tconn{t: t, nc: nc, br: bufio.NewReader(nc)}
		_, err = c.roundTrip(protocol.AppendPacketString(nil, protocol.Req, protocol.CanDo, "s0000"))
		return err
	})
	sub, wk := ts.dial(t), ts.worker(t, "s0001")
	churn(func(int) error {
		if _, err := sub.roundTrip(appendN(nil, 20, protocol.SubmitJobBg, "s0001", "", "x")); err != nil {
			return err
		}
		got, err := wk.roundTrip(appendN(nil, 20, protocol.GrabJob))
		if err != nil {
			return err
		}
		var pk []byte
		for _, p := range got {
			if p.typ == protocol.JobAssign {
				pk = protocol.AppendPacketString(pk, protocol.Req, protocol.WorkComplete, p.args()[0], "")
			}
		}
		_, err = wk.roundTrip(pk)
		return err
	})

	for range rounds {
		rows := map[string]int{}
		for _, l := range strings.Split(ts.adminStatus(), "\n") {
			if f := strings.Split(l, "\t"); len(f) == 4 {
				rows[f[0]]++
			} else if l != "." && l != "" {
				t.Fatalf("bad status line %q", l)
			}
		}
		for i := range fns {
			if n := fnName("s", i); rows[n] != 1 {
				t.Fatalf("status lists %s %d times, want once", n, rows[n])
			}
		}
		var stableRow string
		for _, l := range strings.Split(ts.adminWorkers(), "\n") {
			if strings.HasPrefix(l, strconv.FormatUint(stableID, 10)+" ") {
				if stableRow != "" {
					t.Fatal("the stable connection listed twice")
				}
				stableRow = l
			}
		}
		if got := strings.Count(stableRow, " s0"); got != fns {
			t.Fatalf("workers lists %d of the stable connection's %d functions", got, fns)
		}
		n := 0
		for _, f := range ts.Stats().Functions {
			if strings.HasPrefix(f.Name, "s") && len(f.Name) == 5 {
				n++
			}
		}
		if n != fns {
			t.Fatalf("Stats lists %d of the %d stable functions", n, fns)
		}
		ws, _ := ts.Workers(WorkerQuery{All: true})
		for _, wi := range ws {
			if wi.ClientID == "stable" && len(wi.Functions) != fns {
				t.Fatalf("Workers lists %d of the stable connection's %d functions", len(wi.Functions), fns)
			}
		}
		_ = ts.adminShowJobs()
		_, _ = ts.Jobs(JobQuery{})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// roundTrip writes pk and an ECHO, and returns the packets received
// before the ECHO's answer. It reports errors instead of failing the
// test (for goroutines other than the test's).
func (c *tconn) roundTrip(pk []byte) ([]rpacket, error) {
	pk = protocol.AppendPacketString(pk, protocol.Req, protocol.EchoReq, "rt")
	wrote := make(chan error, 1)
	go func() {
		_ = c.nc.SetWriteDeadline(time.Now().Add(4 * ioTimeout))
		_, err := c.nc.Write(pk)
		wrote <- err
	}()
	var got []rpacket
	for {
		p, err := c.readPacket()
		if err != nil {
			return got, err
		}
		if p.typ == protocol.EchoRes && string(p.body) == "rt" {
			return got, <-wrote
		}
		got = append(got, p)
	}
}

// TestWalkJobsAcrossShrink: a walk over the jobs that resumes after
// shrink replaced the job map lists no job freed before the walk
// reached it, and every job present throughout.
func TestWalkJobsAcrossShrink(t *testing.T) {
	t.Parallel()
	const jobs = 1000
	s, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true // no memory release in the background
	fn := s.function([]byte("f"))
	for range jobs {
		s.newJob(fn, "", "x", protocol.Normal, true)
	}
	visited, freed := map[uint64]bool{}, map[uint64]bool{}
	s.walkPaused = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.shrink() // the walk goes on over the old map
		for id, j := range s.jobs {
			if !visited[id] && id%2 == 1 {
				s.free(j, nil)
				freed[id] = true
			}
		}
	}
	w := s.walk()
	w.jobs(func(j *job) {
		if freed[j.id] {
			t.Errorf("job %d listed after it was freed", j.id)
		}
		visited[j.id] = true
	})
	w.end()
	if len(freed) == 0 {
		t.Fatal("no job freed during the walk")
	}
	for id := uint64(1); id <= jobs; id++ {
		if !freed[id] && !visited[id] {
			t.Errorf("job %d present throughout, not listed", id)
		}
	}
}
