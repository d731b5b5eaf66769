package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// submitAnswer is Submit's outcome written as the packet answer:
// "JOB_CREATED <handle>" or "ERROR <code> <text>".
func submitAnswer(res SubmitResult, err error) string {
	var ep *protocol.ErrorPacket
	switch {
	case errors.As(err, &ep):
		return "ERROR " + ep.Code + " " + ep.Text
	case err != nil:
		return "error: " + err.Error()
	}
	return "JOB_CREATED " + res.Handle
}

// packetAnswer sends the SUBMIT_* packet of req on c and returns its
// answer as submitAnswer writes it.
func packetAnswer(c *tconn, req SubmitRequest) string {
	c.t.Helper()
	typ := protocol.SubmitType(req.Priority, req.Background)
	args := []string{req.Function, req.Unique}
	if req.When != 0 {
		typ = protocol.SubmitJobEpoch
		args = append(args, strconv.FormatInt(req.When, 10))
	}
	c.send(typ, append(args, string(req.Payload))...)
	p := c.next()
	switch p.typ {
	case protocol.JobCreated:
		return "JOB_CREATED " + string(p.body)
	case protocol.Error:
		a := p.args()
		return "ERROR " + a[0] + " " + a[1]
	}
	c.t.Fatalf("answer %v", p)
	return ""
}

// submitState describes what a submit can change: jobs, queues, limits,
// counters, queue memory and the stored records.
func submitState(ts *testServer, st *memStore) string {
	s := ts.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "jobs %d submitted %d refused_memory %d queue_memory %d\n", s.Jobs, s.Submitted, s.RefusedMemory, s.QueueMemory)
	for _, f := range s.Functions {
		fmt.Fprintf(&b, "%.20s high %d normal %d low %d running %d max %v\n", f.Name, f.High, f.Normal, f.Low, f.Running, f.MaxQueue)
	}
	if st != nil {
		st.mu.Lock()
		for _, r := range st.order {
			if j, ok := st.jobs[r]; ok {
				fmt.Fprintf(&b, "stored %s %q prio %d data %q when %d\n", j.Function, j.Unique(), j.Priority, j.Data, j.When)
			}
		}
		st.mu.Unlock()
	}
	return b.String()
}

// TestSubmitAsPacket: Submit answers a background submit as the same
// SUBMIT_* packet from a client is answered, and leaves the server in the
// same state (jobs, queues, counters, queue memory, store records): each
// case runs on two servers set up alike, once as a packet, once with
// Submit.
func TestSubmitAsPacket(t *testing.T) {
	t.Parallel()
	later := time.Now().Add(time.Hour).Unix()
	bg := func(fn, unique, data string, prio protocol.Priority) SubmitRequest {
		return SubmitRequest{Function: fn, Unique: unique, Payload: []byte(data), Priority: prio, Background: true}
	}
	for _, tc := range []struct {
		name    string
		store   bool
		failAdd bool
		opts    func(*Options)
		// setup runs on both servers over a packet connection that
		// stays open.
		setup func(ts *testServer, c *tconn)
		req   SubmitRequest
		want  string
	}{
		{name: "normal", req: bg("f", "", "x", protocol.Normal), want: "JOB_CREATED H:test:1"},
		{name: "high with a unique", req: bg("f", "u1", "x", protocol.High), want: "JOB_CREATED H:test:1"},
		{name: "low", req: bg("f", "-", "x", protocol.Low), want: "JOB_CREATED H:test:1"},
		{name: "same unique coalesces",
			setup: func(_ *testServer, c *tconn) { c.submit(protocol.SubmitJobBg, "f", "u", "a") },
			req:   bg("f", "u", "b", protocol.Low), want: "JOB_CREATED H:test:1"},
		{name: "unique - coalesces by payload",
			setup: func(_ *testServer, c *tconn) { c.submit(protocol.SubmitJobBg, "f", "-", "same") },
			req:   bg("f", "-", "same", protocol.Normal), want: "JOB_CREATED H:test:1"},
		{name: "maxqueue refuses a new job",
			setup: func(ts *testServer, c *tconn) {
				c.submit(protocol.SubmitJobBg, "f", "", "a")
				ts.SetMaxQueue("f", [3]int{1, 1, 1})
			},
			req: bg("f", "", "b", protocol.Normal), want: "ERROR QUEUE_ERROR " + protocol.TextQueueFull},
		{name: "maxqueue lets a same-unique submit join",
			setup: func(ts *testServer, c *tconn) {
				c.submit(protocol.SubmitJobBg, "f", "u", "a")
				ts.SetMaxQueue("f", [3]int{1, 1, 1})
			},
			req: bg("f", "u", "b", protocol.Normal), want: "JOB_CREATED H:test:1"},
		{name: "epoch", req: SubmitRequest{Function: "f", Payload: []byte("x"), Priority: protocol.Normal, Background: true, When: later},
			want: "JOB_CREATED H:test:1"},
		{name: "function name with a control character", req: bg("a\tb", "", "x", protocol.Normal),
			want: "ERROR INVALID_FUNCTION_NAME " + protocol.TextInvalidFunctionName},
		{name: "unique too long", req: bg("f", strings.Repeat("u", 65), "x", protocol.Normal),
			want: "ERROR ARGUMENT_TOO_LARGE " + protocol.TextUniqueTooLarge},
		{name: "payload over Limits.MaxPayload", opts: func(o *Options) { o.Limits.MaxPayload = 1000 },
			req: bg("f", "u", strings.Repeat("x", 1000-len("f\x00u\x00")+1), protocol.Normal), want: "ERROR ARGUMENT_TOO_LARGE " + textPayloadTooLarge},
		{name: "payload at Limits.MaxPayload", opts: func(o *Options) { o.Limits.MaxPayload = 1000 },
			req: bg("f", "u", strings.Repeat("x", 1000-len("f\x00u\x00")), protocol.Normal), want: "JOB_CREATED H:test:1"},
		{name: "arguments over 8 KiB", req: bg(strings.Repeat("f", 9000), "", "x", protocol.Normal),
			want: "ERROR ARGUMENT_TOO_LARGE " + textArgsTooLarge},
		{name: "queue memory bound", opts: func(o *Options) { o.MaxQueueMemory = 2000 },
			setup: func(_ *testServer, c *tconn) { c.submit(protocol.SubmitJobBg, "f", "", strings.Repeat("a", 1000)) },
			req:   bg("f", "", strings.Repeat("b", 1000), protocol.Normal), want: "ERROR QUEUE_ERROR " + textMemoryFull},
		{name: "stored", store: true, req: bg("f", "u", "x", protocol.High), want: "JOB_CREATED H:test:1"},
		{name: "store write fails: no JOB_CREATED", store: true, failAdd: true,
			req: bg("f", "u", "x", protocol.Normal), want: "ERROR QUEUE_ERROR " + textStoreFailed},
		{name: "background joins a foreground job: stored first", store: true,
			setup: func(_ *testServer, c *tconn) { c.submit(protocol.SubmitJob, "f", "u", "x") },
			req:   bg("f", "u", "x", protocol.Normal), want: "JOB_CREATED H:test:1"},
		{name: "background joins a foreground job, store write fails", store: true, failAdd: true,
			setup: func(_ *testServer, c *tconn) { c.submit(protocol.SubmitJob, "f", "u", "x") },
			req:   bg("f", "u", "x", protocol.Normal), want: "ERROR QUEUE_ERROR " + textStoreFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var answers, states [2]string
			for i, viaSubmit := range []bool{false, true} {
				var st *memStore
				if tc.store {
					st = newMemStore()
				}
				ts := startServer(t, func(o *Options) {
					if st != nil {
						o.Store = st
					}
					if tc.opts != nil {
						tc.opts(o)
					}
				})
				c := ts.dial(t)
				if tc.setup != nil {
					tc.setup(ts, c)
				}
				if tc.failAdd {
					st.mu.Lock()
					st.failAdd = errors.New("disk full")
					st.mu.Unlock()
				}
				if viaSubmit {
					ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
					answers[i] = submitAnswer(ts.Submit(ctx, tc.req))
					cancel()
				} else {
					answers[i] = packetAnswer(c, tc.req)
				}
				states[i] = submitState(ts, st)
			}
			if answers[0] != tc.want {
				t.Errorf("packet: %q, want %q", answers[0], tc.want)
			}
			if answers[1] != answers[0] {
				t.Errorf("Submit: %q, packet: %q", answers[1], answers[0])
			}
			if states[1] != states[0] {
				t.Errorf("after Submit:\n%s\nafter the packet:\n%s", states[1], states[0])
			}
		})
	}
}

// TestSubmitInvalid: a request no packet can carry is refused before
// anything is submitted.
func TestSubmitInvalid(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, req := range []SubmitRequest{
		{Function: "f", Unique: "a\x00b", Priority: protocol.Normal, Background: true},
		{Function: "f", Priority: protocol.Normal, When: 1},
		{Function: "f", Priority: protocol.High, Background: true, When: 1},
		{Function: "f", Priority: 3, Background: true},
	} {
		if _, err := ts.Submit(context.Background(), req); !errors.Is(err, ErrInvalidSubmit) {
			t.Errorf("%+v: %v, want ErrInvalidSubmit", req, err)
		}
	}
	if s := ts.Stats(); s.Submitted != 0 || len(s.Functions) != 0 {
		t.Errorf("after refused submits: %+v", s)
	}
}

func showResult(r SubmitResult) string {
	exc := "none"
	if r.Exception != nil {
		exc = strconv.Quote(string(r.Exception))
	}
	return fmt.Sprintf("handle %s result %q failed %v exception %s", r.Handle, r.Result, r.Failed, exc)
}

// submitAsync runs a foreground Submit in the background.
type submitAsync struct {
	res    SubmitResult
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

func startSubmit(ts *testServer, req SubmitRequest) *submitAsync {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	a := &submitAsync{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(a.done)
		a.res, a.err = ts.Submit(ctx, req)
	}()
	return a
}

func (a *submitAsync) wait(t *testing.T) (SubmitResult, error) {
	t.Helper()
	defer a.cancel()
	select {
	case <-a.done:
	case <-time.After(2 * ioTimeout):
		t.Fatal("Submit did not return")
	}
	return a.res, a.err
}

// running reports whether the Submit returned.
func (a *submitAsync) returned() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// TestSubmitForeground: a foreground Submit returns the job's end, as a
// client gets it, and holds no connection meanwhile.
func TestSubmitForeground(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		exceptions bool
		serverExc  bool
		work       func(w *tconn, h string)
		want       SubmitResult // Handle filled in
	}{
		{name: "WORK_DATA then WORK_COMPLETE, status and warning skipped",
			work: func(w *tconn, h string) {
				w.send(protocol.WorkStatus, h, "1", "2")
				w.send(protocol.WorkWarning, h, "careful")
				w.send(protocol.WorkData, h, "AB")
				w.send(protocol.WorkComplete, h, "CD")
			},
			want: SubmitResult{Result: []byte("ABCD")}},
		{name: "WORK_FAIL", work: func(w *tconn, h string) { w.send(protocol.WorkFail, h) }, want: SubmitResult{Failed: true}},
		{name: "WORK_EXCEPTION with Exceptions", exceptions: true,
			work: func(w *tconn, h string) { w.send(protocol.WorkException, h, "boom") }, want: SubmitResult{Exception: []byte("boom")}},
		{name: "WORK_EXCEPTION with Options.Exceptions", serverExc: true,
			work: func(w *tconn, h string) { w.send(protocol.WorkException, h, "boom") }, want: SubmitResult{Exception: []byte("boom")}},
		{name: "WORK_EXCEPTION without: WORK_FAIL",
			work: func(w *tconn, h string) { w.send(protocol.WorkException, h, "boom") }, want: SubmitResult{Failed: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(o *Options) { o.Exceptions = tc.serverExc })
			a := startSubmit(ts, SubmitRequest{Function: "f", Unique: "u", Payload: []byte("in"), Priority: protocol.Low, Exceptions: tc.exceptions})
			waitFor(t, "the job to be queued", func() bool { return ts.Stats().Jobs == 1 })
			if n := ts.Stats().Connections; n != 0 {
				t.Errorf("%d connections while a foreground Submit waits, want 0", n)
			}
			w := ts.worker(t, "f")
			w.send(protocol.GrabJobUniq)
			job := w.expectType(protocol.JobAssignUniq)
			if job[1] != "f" || job[2] != "u" || job[3] != "in" {
				t.Errorf("assigned %q", job)
			}
			if n := ts.Stats().Connections; n != 1 {
				t.Errorf("%d connections with one worker and a foreground Submit, want 1", n)
			}
			tc.work(w, job[0])
			res, err := a.wait(t)
			tc.want.Handle = job[0]
			if err != nil || showResult(res) != showResult(tc.want) {
				t.Errorf("Submit: %s, %v; want %s", showResult(res), err, showResult(tc.want))
			}
		})
	}
}

// TestSubmitCancelDetaches: a foreground Submit whose ctx ends leaves
// its job as a client that disconnects does.
func TestSubmitCancelDetaches(t *testing.T) {
	t.Parallel()

	t.Run("QueuedJobGoes", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		a := startSubmit(ts, SubmitRequest{Function: "f", Payload: []byte("x"), Priority: protocol.Normal})
		waitFor(t, "the job to be queued", func() bool { return ts.Stats().Jobs == 1 })
		a.cancel()
		res, err := a.wait(t)
		if !errors.Is(err, context.Canceled) || res.Handle != "H:test:1" {
			t.Errorf("Submit: %+v, %v; want the handle and context.Canceled", res, err)
		}
		if s := ts.Stats(); s.Jobs != 0 || s.QueueMemory != 0 {
			t.Errorf("after the cancel: %d jobs, queue memory %d; want none", s.Jobs, s.QueueMemory)
		}
		ts.worker(t, "f").grabNone()
	})

	t.Run("RunningJobRunsOn", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		a := startSubmit(ts, SubmitRequest{Function: "f", Payload: []byte("x"), Priority: protocol.Normal})
		waitFor(t, "the job to be queued", func() bool { return ts.Stats().Jobs == 1 })
		w := ts.worker(t, "f")
		h, _, _ := w.grab()
		a.cancel()
		if _, err := a.wait(t); !errors.Is(err, context.Canceled) {
			t.Errorf("Submit: %v, want context.Canceled", err)
		}
		if ji, ok := ts.Job(h); !ok || ji.Clients != 0 || ji.State != JobRunning {
			t.Errorf("job after the cancel: %+v %v; want running, no client", ji, ok)
		}
		w.send(protocol.WorkComplete, h, "done")
		w.sync()
		if s := ts.Stats(); s.Jobs != 0 || s.Completed != 1 {
			t.Errorf("after WORK_COMPLETE: %d jobs, %d completed", s.Jobs, s.Completed)
		}
	})

	t.Run("OtherClientKeepsIt", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		c := ts.dial(t)
		h := c.submit(protocol.SubmitJob, "f", "u", "x")
		a := startSubmit(ts, SubmitRequest{Function: "f", Unique: "u", Payload: []byte("x"), Priority: protocol.Normal})
		waitFor(t, "the Submit to join the job", func() bool { ji, _ := ts.Job(h); return ji.Clients == 2 })
		a.cancel()
		if res, err := a.wait(t); !errors.Is(err, context.Canceled) || res.Handle != h {
			t.Errorf("Submit: %+v, %v; want handle %s and context.Canceled", res, err, h)
		}
		if ji, ok := ts.Job(h); !ok || ji.Clients != 1 {
			t.Fatalf("job after the cancel: %+v %v; want it with one client", ji, ok)
		}
		w := ts.worker(t, "f")
		hw, _, _ := w.grab()
		w.send(protocol.WorkComplete, hw, "r")
		c.expect(protocol.WorkComplete, h, "r")
	})

	t.Run("DoneBeforeTheCall", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := ts.Submit(ctx, SubmitRequest{Function: "f", Priority: protocol.Normal, Background: true}); !errors.Is(err, context.Canceled) {
			t.Errorf("Submit: %v, want context.Canceled", err)
		}
		if s := ts.Stats(); s.Submitted != 0 {
			t.Errorf("submitted %d, want 0", s.Submitted)
		}
	})
}

// TestSubmitStoreWriteFirst: a background Submit with a Store returns
// only once the job's record is written, and with a failed write returns
// QUEUE_ERROR, no handle and no job.
func TestSubmitStoreWriteFirst(t *testing.T) {
	t.Parallel()
	t.Run("Held", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		g := newAddGate(st)
		ts := startServer(t, func(o *Options) { o.Store = st })
		t.Cleanup(g.open)
		a := startSubmit(ts, SubmitRequest{Function: "f", Unique: "u", Payload: []byte("x"), Priority: protocol.Normal, Background: true})
		g.wait(t, 1)
		if a.returned() {
			t.Fatalf("Submit returned while the Store.Add was held: %+v, %v", a.res, a.err)
		}
		g.open()
		res, err := a.wait(t)
		if err != nil || res.Handle != "H:test:1" || st.len() != 1 {
			t.Errorf("Submit: %+v, %v with %d records; want H:test:1 and one record", res, err, st.len())
		}
	})
	t.Run("Fails", func(t *testing.T) {
		t.Parallel()
		st := newMemStore()
		st.failAdd = errors.New("disk full")
		ts := startServer(t, func(o *Options) { o.Store = st })
		res, err := ts.Submit(context.Background(), SubmitRequest{Function: "f", Payload: []byte("x"), Priority: protocol.Normal, Background: true})
		var ep *protocol.ErrorPacket
		if !errors.As(err, &ep) || ep.Code != protocol.CodeQueueError || res.Handle != "" {
			t.Errorf("Submit: %+v, %v; want no handle and QUEUE_ERROR", res, err)
		}
		if s := ts.Stats(); s.Jobs != 0 || s.Submitted != 0 || s.QueueMemory != 0 {
			t.Errorf("after the failed write: %+v", s)
		}
	})
}

// TestSubmitClose: Close ends a waiting Submit with ErrServerClosed and
// waits for it; a Submit after Shutdown began is refused.
func TestSubmitClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	a := startSubmit(ts, SubmitRequest{Function: "f", Payload: []byte("x"), Priority: protocol.Normal})
	waitFor(t, "the job to be queued", func() bool { return ts.Stats().Jobs == 1 })
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if !a.returned() {
		t.Error("Close returned before the waiting Submit")
	}
	if _, err := a.wait(t); !errors.Is(err, ErrServerClosed) {
		t.Errorf("waiting Submit: %v, want ErrServerClosed", err)
	}
	if _, err := ts.Submit(context.Background(), SubmitRequest{Function: "f", Priority: protocol.Normal, Background: true}); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Submit after Close: %v, want ErrServerClosed", err)
	}
}
