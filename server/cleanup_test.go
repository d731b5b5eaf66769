package server

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// pipeline writes the packets pk (from a goroutine: the server answers
// while it reads, and the test reads the answers meanwhile) and returns a
// channel with the write's result.
func (c *tconn) pipeline(pk []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_ = c.nc.SetWriteDeadline(time.Now().Add(4 * ioTimeout))
		_, err := c.nc.Write(pk)
		done <- err
	}()
	return done
}

// countUntilEcho reads packets up to the ECHO_RES "end" and counts them by
// type.
func (c *tconn) countUntilEcho() map[protocol.Type]int {
	c.t.Helper()
	n := map[protocol.Type]int{}
	for {
		p := c.next()
		if p.typ == protocol.EchoRes && string(p.body) == "end" {
			return n
		}
		n[p.typ]++
	}
}

func appendN(b []byte, n int, t protocol.Type, args ...string) []byte {
	for range n {
		b = protocol.AppendPacketString(b, protocol.Req, t, args...)
	}
	return b
}

// connOf returns the server's connection whose client id is id.
func (ts *testServer) connOf(t *testing.T, id string) *conn {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for c := ts.conns.head; c != nil; c = c.next {
		if c.clientID == id {
			return c
		}
	}
	t.Fatalf("no connection with client id %q", id)
	return nil
}

// TestDuplicatesStoredOnce (issue 10, item 6): a connection that sends
// many duplicate CAN_DOs and many duplicate foreground submits (same
// function and unique) costs one registration and one attachment, which
// go in O(1) when it leaves; to everyone else the duplicates still count
// as in gearmand (status WORKERS, GET_STATUS_UNIQUE's client count, one
// WORK_COMPLETE per submit).
func TestDuplicatesStoredOnce(t *testing.T) {
	t.Parallel()
	const canDos, submits = 20000, 10000
	ts := startServer(t, nil)
	fl := ts.dial(t)
	pk := protocol.AppendPacketString(nil, protocol.Req, protocol.SetClientID, "flood")
	pk = appendN(pk, canDos, protocol.CanDo, "dup")
	pk = appendN(pk, submits, protocol.SubmitJob, "dupjob", "same", "x")
	pk = protocol.AppendPacketString(pk, protocol.Req, protocol.EchoReq, "end")
	wrote := fl.pipeline(pk)
	if got := fl.countUntilEcho(); got[protocol.JobCreated] != submits || len(got) != 1 {
		t.Fatalf("replies %v, want %d JOB_CREATED only", got, submits)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}

	// Stored once.
	c := ts.connOf(t, "flood")
	ts.mu.Lock()
	fn, jfn := ts.funcs["dup"], ts.funcs["dupjob"]
	j := jfn.uniq["same"]
	abil, workers, attached, conns := len(c.abil), len(fn.workers), c.nattached, j.nconns
	ts.mu.Unlock()
	if abil != 1 || workers != 1 || attached != 1 || conns != 1 {
		t.Errorf("stored: %d registrations of the connection, %d of the function, %d attachments of the connection, %d of the job; want 1 each",
			abil, workers, attached, conns)
	}
	a := ts.dial(t)
	var line string
	for _, l := range strings.Split(a.admin("workers"), "\n") {
		if strings.Contains(l, " flood :") {
			line = l
		}
	}
	if want := " flood : dup"; !strings.HasSuffix(line, want) {
		t.Errorf("workers line %.80q..., want it to end in %q (the function listed once)", line, want)
	}
	ws, _ := ts.Workers(WorkerQuery{All: true})
	for _, w := range ws {
		if w.ClientID == "flood" && w.Waiting != 1 {
			t.Errorf("Workers: flood waits for %d jobs, want 1", w.Waiting)
		}
	}

	// Counted as gearmand counts them.
	if st := statusOf(ts.Server, "dup"); st.Workers != canDos {
		t.Errorf("status workers %d, want %d (duplicates counted)", st.Workers, canDos)
	}
	a.send(protocol.GetStatusUnique, "same")
	if got := a.expectType(protocol.StatusResUnique); got[5] != strconv.Itoa(submits) {
		t.Errorf("GET_STATUS_UNIQUE %q, want %d clients", got, submits)
	}

	// Every submit gets its WORK_COMPLETE.
	w := ts.worker(t, "dupjob")
	h, _, _ := w.grab()
	w.send(protocol.WorkComplete, h, "done")
	w.sync()
	for i := range submits {
		fl.expect(protocol.WorkComplete, h, "done")
		_ = i
	}
	fl.expectNothing()

	// A second job, abandoned: the connection leaves and takes its
	// registration and its attachment with it.
	pk = appendN(nil, submits, protocol.SubmitJob, "dupjob", "again", "y")
	pk = protocol.AppendPacketString(pk, protocol.Req, protocol.EchoReq, "end")
	wrote = fl.pipeline(pk)
	if got := fl.countUntilEcho(); got[protocol.JobCreated] != submits {
		t.Fatalf("replies %v, want %d JOB_CREATED", got, submits)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	_ = fl.nc.Close()
	waitFor(t, "the flood connection's state to go", func() bool {
		st := ts.Stats()
		return statusOf(ts.Server, "dup").Workers == 0 && st.Jobs == 0
	})
	ts.mu.Lock()
	steps := ts.cleanup.maxSteps
	ts.mu.Unlock()
	if steps > 3 {
		t.Errorf("cleanup of one registration and one attachment took %d steps, want at most 3", steps)
	}
}

// TestDuplicateAttachmentsManyClients (issue 10, item 6): with more
// client connections than smallClients on one job (its attachments then
// found through a map), each connection's duplicate submits are stored
// once, each connection still gets one result per submit, and one that
// leaves takes exactly its own submits with it.
func TestDuplicateAttachmentsManyClients(t *testing.T) {
	t.Parallel()
	const clients, each = smallClients + 4, 3
	ts := startServer(t, nil)
	cs := make([]*tconn, clients)
	var h string
	for i := range cs {
		cs[i] = ts.dial(t)
		for range each {
			h = cs[i].submit(protocol.SubmitJob, "many", "u", "d")
		}
	}
	if ok, _, n := ts.jobState("many", "u"); !ok || n != clients*each {
		t.Fatalf("job exists %v with %d clients, want %d", ok, n, clients*each)
	}
	ts.mu.Lock()
	j := ts.funcs["many"].uniq["u"]
	stored, mapped := j.nconns, -1
	if j.ext != nil && j.ext.byConn != nil {
		mapped = len(j.ext.byConn)
	}
	ts.mu.Unlock()
	if stored != clients || mapped != clients {
		t.Fatalf("%d attachments stored, %d in the map; want one per connection (%d)", stored, mapped, clients)
	}
	_ = cs[0].nc.Close()
	_ = cs[clients-1].nc.Close()
	waitFor(t, "two clients to leave", func() bool {
		_, _, n := ts.jobState("many", "u")
		return n == (clients-2)*each
	})
	ts.mu.Lock()
	stored = j.nconns
	if j.ext.byConn != nil {
		mapped = len(j.ext.byConn)
	}
	ts.mu.Unlock()
	if stored != clients-2 || mapped != clients-2 {
		t.Fatalf("after two left: %d attachments stored, %d in the map; want %d", stored, mapped, clients-2)
	}
	w := ts.worker(t, "many")
	if got, _, _ := w.grab(); got != h {
		t.Fatalf("grabbed %s, want %s", got, h)
	}
	w.send(protocol.WorkComplete, h, "r")
	for _, c := range cs[1 : clients-1] {
		for range each {
			c.expect(protocol.WorkComplete, h, "r")
		}
		c.expectNothing()
	}
}

// TestCleanupInBoundedChunks (issue 10, item 6): a connection with many
// distinct registrations, running jobs and attachments that gives up a
// function (CANT_DO), all of them (RESET_ABILITIES) or goes away is
// cleaned up in chunks of at most cleanupChunk steps per hold of the
// server lock, however much it had piled up.
func TestCleanupInBoundedChunks(t *testing.T) {
	t.Parallel()
	const fns, running, attached = 1500, 600, 1500
	tests := []struct {
		name   string
		action protocol.Type // before the disconnect; 0 for none
		args   []string
	}{
		{name: "Disconnect"},
		{name: "CantDo", action: protocol.CantDo, args: []string{"run"}},
		{name: "ResetAbilities", action: protocol.ResetAbilities},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil)
			sub := ts.dial(t)
			pk := appendN(nil, running, protocol.SubmitJobBg, "run", "", "x")
			pk = protocol.AppendPacketString(pk, protocol.Req, protocol.EchoReq, "end")
			wrote := sub.pipeline(pk)
			if got := sub.countUntilEcho(); got[protocol.JobCreated] != running {
				t.Fatalf("replies %v, want %d JOB_CREATED", got, running)
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}

			fl := ts.dial(t)
			pk = protocol.AppendPacketString(nil, protocol.Req, protocol.CanDo, "run")
			for i := range fns {
				pk = protocol.AppendPacketString(pk, protocol.Req, protocol.CanDo, fmt.Sprintf("f%d", i))
			}
			pk = appendN(pk, running, protocol.GrabJob)
			for i := range attached {
				pk = protocol.AppendPacketString(pk, protocol.Req, protocol.SubmitJob, "att", strconv.Itoa(i), "x")
			}
			pk = protocol.AppendPacketString(pk, protocol.Req, protocol.EchoReq, "end")
			wrote = fl.pipeline(pk)
			if got := fl.countUntilEcho(); got[protocol.JobAssign] != running || got[protocol.JobCreated] != attached {
				t.Fatalf("replies %v, want %d JOB_ASSIGN and %d JOB_CREATED", got, running, attached)
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			if st := ts.Stats(); st.Running != running || st.Jobs != running+attached {
				t.Fatalf("before: %d running, %d jobs; want %d and %d", st.Running, st.Jobs, running, running+attached)
			}

			chunks := func() holdStats {
				ts.mu.Lock()
				defer ts.mu.Unlock()
				return ts.cleanup
			}
			if tt.action != 0 {
				before := chunks()
				fl.send(tt.action, tt.args...)
				fl.sync()
				st, after := ts.Stats(), chunks()
				if st.Running != 0 || st.Requeued != running || statusOf(ts.Server, "run").Workers != 0 {
					t.Fatalf("after %v: %d running, %d requeued, %d workers of run; want 0, %d, 0",
						tt.action, st.Running, st.Requeued, statusOf(ts.Server, "run").Workers, running)
				}
				if after.maxSteps > cleanupChunk || after.chunks-before.chunks < running/cleanupChunk {
					t.Errorf("%v of %d running jobs: %d chunks, at most %d steps in one; want at least %d chunks of at most %d",
						tt.action, running, after.chunks-before.chunks, after.maxSteps, running/cleanupChunk, cleanupChunk)
				}
			}
			_ = fl.nc.Close()
			waitFor(t, "the connection's state to go", func() bool {
				st := ts.Stats()
				return st.Jobs == running && st.Running == 0 && st.Connections == 1 &&
					statusOf(ts.Server, "run").Workers == 0 && statusOf(ts.Server, "f0").Workers == 0
			})
			if st := ts.Stats(); st.Requeued != running {
				t.Errorf("requeued %d, want %d", st.Requeued, running)
			}
			steps := fns + 1 + running + attached // at least
			cl := chunks()
			if cl.maxSteps > cleanupChunk || cleanupChunk*4 > steps {
				t.Errorf("most steps in one hold of the lock: %d, want at most %d (of %d steps)", cl.maxSteps, cleanupChunk, steps)
			}
			if min := uint64(steps / cleanupChunk); cl.chunks < min {
				t.Errorf("%d chunks for %d steps, want at least %d", cl.chunks, steps, min)
			}
		})
	}
}

// TestShrinkRebuildsOnlyBigUniqueMaps: once the server drains, shrink
// rebuilds the unique maps that grew big and no other, so that its cost
// under the lock does not grow with the number of functions; the jobs
// left stay found by their uniques.
func TestShrinkRebuildsOnlyBigUniqueMaps(t *testing.T) {
	t.Parallel()
	s, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	big := s.function([]byte("big"))
	var jobs []*job
	for i := range bigUniq + 10 {
		jobs = append(jobs, s.newJob(big, "u"+strconv.Itoa(i), "", protocol.Normal, true))
	}
	for i := range 1000 {
		s.newJob(s.function([]byte("small"+strconv.Itoa(i))), "v", "", protocol.Normal, true)
	}
	if _, ok := s.bigUniq[big]; !ok || len(s.bigUniq) != 1 {
		t.Fatalf("big unique maps: %d, want only the function big's", len(s.bigUniq))
	}
	for _, j := range jobs[5:] {
		s.free(j, nil)
	}
	s.closed = true // no memory release in the background
	s.shrink()
	if len(s.bigUniq) != 0 || big.uniqPeak != 5 {
		t.Errorf("after shrink: %d big unique maps, peak %d; want 0 and 5", len(s.bigUniq), big.uniqPeak)
	}
	for _, j := range jobs[:5] {
		if big.uniq[j.unique] != j {
			t.Errorf("unique %q lost by shrink", j.unique)
		}
	}
}
