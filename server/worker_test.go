package server

import (
	"strconv"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
	"github.com/gworkerd/gworkerd/protocol"
)

// TestChecklistWorker: docs/PROTOCOL.md section 7, "Worker side".
func TestChecklistWorker(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)

	t.Run("Worker/CanDoDuplicatesCantDoAndResetRequeue", func(t *testing.T) {
		t.Parallel()
		w := ts.worker(t, "cd", "cd")
		if st := statusOf(ts.Server, "cd"); st.Workers != 2 {
			t.Fatalf("workers %d, want 2 for a duplicate CAN_DO", st.Workers)
		}
		c := ts.dial(t)
		h := c.submit(protocol.SubmitJob, "cd", "", "d")
		w.grab()
		w.send(protocol.CantDo, "cd")
		w.sync()
		st := statusOf(ts.Server, "cd")
		if st.Workers != 0 || st.Running != 0 || st.Normal != 1 {
			t.Fatalf("after CANT_DO: %+v", st)
		}
		w.send(protocol.WorkComplete, h, "late")
		w.expectError("JOB_NOT_FOUND", "Job given in work result not found")
		w2 := ts.worker(t, "cd", "other-cd")
		w2.grab()
		w2.send(protocol.ResetAbilities)
		w2.sync()
		if st := statusOf(ts.Server, "cd"); st.Workers != 0 || st.Normal != 1 {
			t.Fatalf("after RESET_ABILITIES: %+v", st)
		}
		w2.grabNone()
		c.expectNothing()
		// The empty function name is accepted.
		w3 := ts.worker(t, "")
		_ = w3
		waitFor(t, "empty function", func() bool { return statusOf(ts.Server, "").Workers == 1 })
	})

	t.Run("Worker/PreSleepImmediateNoopAtMostOnePerSleep", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		w := ts.worker(t, "ps")
		c.submit(protocol.SubmitJobBg, "ps", "", "1")
		w.send(protocol.PreSleep)
		w.expect(protocol.Noop)
		// Sleeping and already woken: more jobs send no further NOOP.
		c.submit(protocol.SubmitJobBg, "ps", "", "2")
		w.expectNothing()
		w.grab()
		w.grab()
		w.grabNone()
		w.send(protocol.PreSleep)
		w.expectNothing()
		c.submit(protocol.SubmitJobBg, "ps", "", "3")
		w.expect(protocol.Noop)
		c.submit(protocol.SubmitJobBg, "ps", "", "4")
		w.expectNothing()
		// A worker that never sent PRE_SLEEP gets no NOOP.
		w2 := ts.worker(t, "ps")
		c.submit(protocol.SubmitJobBg, "ps", "", "5")
		w2.expectNothing()
	})

	t.Run("Worker/WorkerWakeupLimitWithRotation", func(t *testing.T) {
		t.Parallel()
		ts2 := startServer(t, func(o *Options) { o.WorkerWakeup = 1 })
		ws := []*tconn{ts2.worker(t, "ww"), ts2.worker(t, "ww"), ts2.worker(t, "ww")}
		for _, w := range ws {
			w.send(protocol.PreSleep)
			w.sync()
		}
		c := ts2.dial(t)
		woken := map[int]bool{}
		for round := range 3 {
			c.submit(protocol.SubmitJobBg, "ww", "", strconv.Itoa(round))
			// Exactly one worker gets a NOOP; it takes the job and sleeps again.
			got := -1
			for i, w := range ws {
				w.send(protocol.EchoReq, "probe")
				p := w.next()
				if p.typ == protocol.Noop {
					if got >= 0 {
						t.Fatalf("round %d: workers %d and %d both woken", round, got, i)
					}
					got = i
					w.expect(protocol.EchoRes, "probe")
				} else if p.typ != protocol.EchoRes {
					t.Fatalf("unexpected %v", p)
				}
			}
			if got < 0 {
				t.Fatalf("round %d: no worker woken", round)
			}
			woken[got] = true
			ws[got].grab()
			ws[got].grabNone()
			ws[got].send(protocol.PreSleep)
			ws[got].sync()
		}
		if len(woken) != 3 {
			t.Fatalf("wake-ups not rotated: %v", woken)
		}
	})

	t.Run("Worker/WorkerWakeupAllByDefault", func(t *testing.T) {
		t.Parallel()
		ws := []*tconn{ts.worker(t, "wall"), ts.worker(t, "wall"), ts.worker(t, "wall")}
		for _, w := range ws {
			w.send(protocol.PreSleep)
			w.sync()
		}
		c := ts.dial(t)
		c.submit(protocol.SubmitJobBg, "wall", "", "x")
		for _, w := range ws {
			w.expect(protocol.Noop)
		}
	})

	t.Run("Worker/GrabJobUniqAllAndFallback", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		w := ts.worker(t, "gr")
		h1 := c.submit(protocol.SubmitJobBg, "gr", "u-gr", "p1")
		h2 := c.submit(protocol.SubmitJobBg, "gr", "", "p2")
		c.send(protocol.SubmitReduceJobBackground, "gr", "u-red", "myreducer", "", "p3")
		h3 := c.expectType(protocol.JobCreated)[0]
		c.send(protocol.SubmitReduceJobBackground, "gr", "u-red2", "myreducer", "", "p4")
		h4 := c.expectType(protocol.JobCreated)[0]
		w.send(protocol.GrabJobAll)
		w.expect(protocol.JobAssignUniq, h1, "gr", "u-gr", "p1")
		w.send(protocol.GrabJobUniq)
		w.expect(protocol.JobAssignUniq, h2, "gr", "", "p2")
		w.send(protocol.GrabJobAll)
		w.expect(protocol.JobAssignAll, h3, "gr", "u-red", "myreducer", "p3")
		w.send(protocol.GrabJob)
		w.expect(protocol.JobAssign, h4, "gr", "p4")
		w.send(protocol.GrabJobAll)
		w.expect(protocol.NoJob)
		// No functions: NO_JOB.
		ts.dial(t).grabNone()
	})

	t.Run("Worker/SeveralJobsAndOwnershipJobNotFound", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		w := ts.worker(t, "own")
		other := ts.worker(t, "own")
		h1 := c.submit(protocol.SubmitJob, "own", "", "1")
		h2 := c.submit(protocol.SubmitJob, "own", "", "2")
		w.grab()
		w.grab()
		if st := statusOf(ts.Server, "own"); st.Running != 2 {
			t.Fatalf("running %d, want 2", st.Running)
		}
		for _, tc := range []struct {
			typ        protocol.Type
			args       []string
			code, text string
		}{
			{protocol.WorkData, []string{h1, "x"}, "JOB_NOT_FOUND", "Job does not exist on server"},
			{protocol.WorkWarning, []string{h1, "x"}, "JOB_NOT_FOUND", "Job does not exist on server"},
			{protocol.WorkStatus, []string{h1, "1", "2"}, "JOB_NOT_FOUND", "Job given in work result not found"},
			{protocol.WorkComplete, []string{h1, "x"}, "JOB_NOT_FOUND", "Job given in work result not found"},
			{protocol.WorkFail, []string{h1}, "JOB_NOT_FOUND", "Job given in work result not found"},
			{protocol.WorkException, []string{h1, "x"}, "JOB_NOT_FOUND", "An exception was received for a job that does not exist"},
		} {
			other.send(tc.typ, tc.args...)
			other.expectError(tc.code, tc.text)
		}
		w.send(protocol.WorkComplete, h2, "two")
		w.send(protocol.WorkComplete, h1, "one")
		c.expect(protocol.WorkComplete, h2, "two")
		c.expect(protocol.WorkComplete, h1, "one")
	})

	t.Run("Worker/SetClientIDShownInWorkers", func(t *testing.T) {
		t.Parallel()
		ts2 := startServer(t, nil)
		w := ts2.worker(t, "pa", "pb", "pc")
		w.send(protocol.SetClientID, "my-worker")
		w.sync()
		a := ts2.dial(t)
		got := a.admin("workers")
		want := "1 127.0.0.1 my-worker : pc pb pa\n2 127.0.0.1 - :\n.\n"
		if got != want {
			t.Fatalf("workers %q, want %q", got, want)
		}
	})

	t.Run("Worker/PriorityHighNormalLowFIFO", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		for _, s := range []struct {
			typ  protocol.Type
			data string
		}{
			{protocol.SubmitJobLowBg, "low1"}, {protocol.SubmitJobBg, "norm1"}, {protocol.SubmitJobHighBg, "high1"},
			{protocol.SubmitJobLowBg, "low2"}, {protocol.SubmitJobBg, "norm2"}, {protocol.SubmitJobHighBg, "high2"},
		} {
			c.submit(s.typ, "prio", "", s.data)
		}
		w := ts.worker(t, "prio")
		for _, want := range []string{"high1", "high2", "norm1", "norm2", "low1", "low2"} {
			if _, _, d := w.grab(); d != want {
				t.Fatalf("got %s, want %s", d, want)
			}
		}
	})

	t.Run("Worker/PriorityAcrossFunctionsGlobalAndRoundRobin", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.submit(protocol.SubmitJobLowBg, "xa", "", "pa-low")
		c.submit(protocol.SubmitJobHighBg, "xb", "", "pb-high")
		c.submit(protocol.SubmitJobBg, "xc", "", "pc-normal")
		w := ts.worker(t, "xa", "xb", "xc")
		for _, want := range []string{"pb-high", "pc-normal", "pa-low"} {
			if _, _, d := w.grab(); d != want {
				t.Fatalf("got %s, want %s", d, want)
			}
		}
		for i := range 2 {
			c.submit(protocol.SubmitJobBg, "ra", "", "ra"+strconv.Itoa(i))
			c.submit(protocol.SubmitJobBg, "rb", "", "rb"+strconv.Itoa(i))
		}
		w2 := ts.worker(t, "ra", "rb")
		var got []string
		for range 4 {
			_, _, d := w2.grab()
			got = append(got, d)
		}
		if got[0][:2] == got[1][:2] || got[2][:2] == got[3][:2] {
			t.Fatalf("equal priorities not served round-robin: %v", got)
		}
	})

	t.Run("Worker/CanDoTimeoutMillisMin1000RequeueLateResult", func(t *testing.T) {
		t.Parallel()
		clk := clocktest.New()
		ts2 := startServer(t, func(o *Options) { o.Clock = clk })
		c := ts2.dial(t)
		w := ts2.dial(t)
		w.send(protocol.CanDoTimeout, "to", "200") // raised to 1000 ms
		w.sync()
		h := c.submit(protocol.SubmitJob, "to", "", "d")
		w.grab()
		clk.Advance(999 * time.Millisecond)
		w.send(protocol.GetStatus, h)
		w.expect(protocol.StatusRes, h, "1", "1", "0", "0")
		clk.Advance(time.Millisecond)
		w.send(protocol.GetStatus, h)
		w.expect(protocol.StatusRes, h, "1", "0", "0", "0")
		if st := ts2.Stats(); st.TimedOut != 1 || st.Requeued != 1 {
			t.Fatalf("stats %+v", st)
		}
		w.send(protocol.WorkComplete, h, "late")
		w.expectError("JOB_NOT_FOUND", "Job given in work result not found")
		// Re-grabbed by the same worker; a 1500 ms timeout stays 1500 ms.
		w.grab()
		w.send(protocol.WorkComplete, h, "ok")
		c.expect(protocol.WorkComplete, h, "ok")
		// The client may read the result before the server, still
		// holding its lock, has freed the job and stopped its timer: a
		// GET_STATUS answered after that lock says the job is gone.
		w.send(protocol.GetStatus, h)
		w.expect(protocol.StatusRes, h, "0", "0", "0", "0")
		if clk.Pending() != 0 {
			t.Fatalf("%d timers left after completion", clk.Pending())
		}
		w2 := ts2.dial(t)
		w2.send(protocol.CanDoTimeout, "to2", "1500")
		w2.sync()
		h2 := c.submit(protocol.SubmitJob, "to2", "", "d")
		w2.grab()
		clk.Advance(1499 * time.Millisecond)
		w2.send(protocol.WorkStatus, h2, "1", "2")
		c.expect(protocol.WorkStatus, h2, "1", "2")
		clk.Advance(time.Millisecond)
		w2.send(protocol.WorkStatus, h2, "1", "2")
		w2.expectError("JOB_NOT_FOUND", "Job given in work result not found")
		// A timeout of 0 means none.
		w3 := ts2.dial(t)
		w3.send(protocol.CanDoTimeout, "to3", "0")
		w3.sync()
		c.submit(protocol.SubmitJobBg, "to3", "", "d")
		w3.grab()
		if clk.Pending() != 0 {
			t.Fatalf("timer armed for timeout 0")
		}
	})

	t.Run("Worker/EpochNotBeforeWhenWakesSleepersDoesNotBlock", func(t *testing.T) {
		t.Parallel()
		clk := clocktest.New()
		ts2 := startServer(t, func(o *Options) { o.Clock = clk })
		c := ts2.dial(t)
		now := clk.Now().Unix()
		he := c.submit2(protocol.SubmitJobEpoch, "ep", "", strconv.FormatInt(now+3, 10), "epoch")
		hl := c.submit(protocol.SubmitJobLowBg, "ep", "", "low")
		// Counted in status and prioritystatus while waiting.
		a := ts2.dial(t)
		if got := a.admin("prioritystatus"); got != "ep\t0\t1\t1\t0\n.\n" {
			t.Fatalf("prioritystatus %q", got)
		}
		w := ts2.worker(t, "ep")
		if h, _, _ := w.grab(); h != hl {
			t.Fatalf("got %s, want the LOW job %s (a future epoch job must not block)", h, hl)
		}
		w.grabNone()
		w.send(protocol.PreSleep)
		w.expectNothing()
		clk.Advance(3 * time.Second)
		w.expect(protocol.Noop)
		if h, _, d := w.grab(); h != he || d != "epoch" {
			t.Fatalf("got %s %s", h, d)
		}
		// A past epoch, 0 or garbage runs at once.
		for _, e := range []string{"0", "abc", strconv.FormatInt(now-10, 10)} {
			h := c.submit2(protocol.SubmitJobEpoch, "ep", "", e, "now")
			if g, _, _ := w.grab(); g != h {
				t.Fatalf("epoch %q: got %s want %s", e, g, h)
			}
		}
		// An epoch that overflows strtoll: no reply, no job.
		c.send(protocol.SubmitJobEpoch, "ep", "", "99999999999999999999", "x")
		c.expectNothing()
	})
}

func (c *tconn) submit2(typ protocol.Type, args ...string) string {
	c.t.Helper()
	c.send(typ, args...)
	return c.expectType(protocol.JobCreated)[0]
}

// TestPreSleepStopsCanDoTimeout: PRE_SLEEP stops the CAN_DO_TIMEOUT timers
// of the jobs the connection holds, as gearmand stops its timer.
func TestPreSleepStopsCanDoTimeout(t *testing.T) {
	t.Parallel()
	clk := clocktest.New()
	ts := startServer(t, func(o *Options) { o.Clock = clk; o.JobRetries = 1 })
	c := ts.dial(t)
	w := ts.dial(t)
	w.send(protocol.CanDoTimeout, "pst", "1000")
	w.sync()
	h := c.submit(protocol.SubmitJob, "pst", "", "d")
	w.grab()
	w.send(protocol.PreSleep)
	w.sync()
	clk.Advance(time.Hour)
	w.send(protocol.WorkComplete, h, "still mine")
	c.expect(protocol.WorkComplete, h, "still mine")
}

// TestCanDoTimeoutCountsRetries: a timeout is a failed attempt; at the
// JobRetries limit the client gets WORK_FAIL.
func TestCanDoTimeoutCountsRetries(t *testing.T) {
	t.Parallel()
	clk := clocktest.New()
	ts := startServer(t, func(o *Options) { o.Clock = clk; o.JobRetries = 1 })
	c := ts.dial(t)
	w := ts.dial(t)
	w.send(protocol.CanDoTimeout, "tr", "1000")
	w.sync()
	h := c.submit(protocol.SubmitJob, "tr", "", "d")
	w.grab()
	clk.Advance(time.Second)
	c.expect(protocol.WorkFail, h)
	w.grabNone()
	st := ts.Stats()
	if st.TimedOut != 1 || st.Dropped != 1 || st.Jobs != 0 || st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatsSnapshot(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.dial(t)
	w := ts.worker(t, "st", "st")
	c.submit(protocol.SubmitJobHighBg, "st", "", "h")
	c.submit(protocol.SubmitJobBg, "st", "", "n1")
	c.submit(protocol.SubmitJobBg, "st", "", "n2")
	c.submit(protocol.SubmitJobLowBg, "st", "", "l")
	h, _, _ := w.grab()
	st := ts.Stats()
	type counts struct{ High, Normal, Low, Running, Workers int }
	want := counts{High: 0, Normal: 2, Low: 1, Running: 1, Workers: 2}
	if len(st.Functions) != 1 {
		t.Fatalf("functions %+v, want one", st.Functions)
	}
	f := st.Functions[0]
	if got := (counts{f.High, f.Normal, f.Low, f.Running, f.Workers}); f.Name != "st" || got != want {
		t.Fatalf("function %q %+v, want st %+v", f.Name, got, want)
	}
	if st.Connections != 2 || st.Jobs != 4 || st.Running != 1 || st.Submitted != 4 {
		t.Fatalf("stats %+v", st)
	}
	w.send(protocol.WorkComplete, h, "")
	w.sync()
	if st := ts.Stats(); st.Completed != 1 || st.Jobs != 3 || st.Running != 0 {
		t.Fatalf("after completion %+v", st)
	}
}

// TestExceptionCountsAsFailed: a job ended by WORK_EXCEPTION (the way a
// gworkerd script fails) counts as failed, and as an exception; WORK_FAIL
// as failed only. The dashboard's Failed reads Stats.Failed.
func TestExceptionCountsAsFailed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.dial(t)
	w := ts.worker(t, "ex", "ex")
	for _, end := range []protocol.Type{protocol.WorkException, protocol.WorkFail, protocol.WorkException} {
		c.submit(protocol.SubmitJobBg, "ex", "", "d")
		h, _, _ := w.grab()
		if end == protocol.WorkException {
			w.send(end, h, "boom")
		} else {
			w.send(end, h)
		}
		w.sync()
	}
	if st := ts.Stats(); st.Failed != 3 || st.Exceptions != 2 || st.Completed != 0 || st.Jobs != 0 {
		t.Fatalf("stats %+v, want failed 3, exceptions 2", st)
	}
}
