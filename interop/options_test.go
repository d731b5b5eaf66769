package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// ownServer starts a server of e's target with extra flags, for checks
// that need an option set; it returns an env for it.
func ownServer(t *testing.T, e *env, args ...string) *env {
	t.Helper()
	return &env{tg: e.tg, srv: e.tg.start(t, args...), names: e.names}
}

// optionChecks start their own server with a command-line option.
func optionChecks() []check {
	return []check{
		// Checklist (B) "Handle format H:<host>:<n> and the
		// --job-handle-prefix option"; the counter starts at 1.
		{name: "JobHandlePrefix", run: func(t *testing.T, e *env) {
			s := ownServer(t, e, "--job-handle-prefix=GX")
			c := dial(t, s.addr())
			fn := s.names.fn("prefix")
			for _, want := range []string{"GX:1", "GX:2"} {
				c.send(protocol.SubmitJobBg, fn, "", "x")
				c.expect(protocol.JobCreated, want)
			}
			// A coalesced submit does not use up a number.
			c.send(protocol.SubmitJobBg, fn, "u", "x")
			c.expect(protocol.JobCreated, "GX:3")
			c.send(protocol.SubmitJobBg, fn, "u", "x")
			c.expect(protocol.JobCreated, "GX:3")
			c.send(protocol.SubmitJobBg, fn, "", "x")
			c.expect(protocol.JobCreated, "GX:4")
		}},
		// Checklist (B) "On worker death: ... WORK_FAIL to clients when the
		// retry limit is hit" (-j 2: at most 2 attempts in 1.1.20 and HEAD).
		{name: "JobRetries", run: func(t *testing.T, e *env) {
			s := ownServer(t, e, "-j", "2")
			fn := s.names.fn("retry")
			c := dial(t, s.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			for attempt := 1; attempt <= 2; attempt++ {
				w := dial(t, s.addr())
				w.send(protocol.CanDo, fn)
				waitFor(t, "job to be requeued", func() bool {
					w.send(protocol.GrabJob)
					p := w.readPacket()
					if p.typ == protocol.JobAssign {
						return true
					}
					if p.typ != protocol.NoJob {
						t.Fatalf("attempt %d: got %v", attempt, p)
					}
					return false
				})
				w.c.Close()
			}
			c.expect(protocol.WorkFail, h)
			w := dial(t, s.addr())
			w.send(protocol.CanDo, fn)
			w.send(protocol.GrabJob)
			w.expect(protocol.NoJob)
		}},
		// Checklist (A) "--worker-wakeup limit with rotation".
		{name: "WorkerWakeup", run: func(t *testing.T, e *env) {
			s := ownServer(t, e, "-w", "1")
			fn := s.names.fn("wake")
			ws := make([]*rawConn, 3)
			for i := range ws {
				ws[i] = dial(t, s.addr())
				ws[i].send(protocol.CanDo, fn)
				ws[i].send(protocol.PreSleep)
				ws[i].barrier()
			}
			c := dial(t, s.addr())
			woken := map[int]int{}
			for job := range 3 {
				c.submit(protocol.SubmitJobBg, fn, "", "x")
				got := -1
				for i, w := range ws {
					// Each worker's next packet is the NOOP or the barrier.
					w.send(protocol.EchoReq, "b")
					p := w.readPacket()
					if p.typ == protocol.Noop {
						if got >= 0 {
							t.Fatalf("job %d: workers %d and %d both got NOOP with -w 1", job, got, i)
						}
						got = i
						w.expect(protocol.EchoRes, "b")
					} else if p.typ != protocol.EchoRes {
						t.Fatalf("worker %d: got %v", i, p)
					}
				}
				if got < 0 {
					t.Fatalf("job %d: no worker got a NOOP", job)
				}
				woken[got]++
				// The woken worker takes the job and sleeps again.
				ws[got].send(protocol.GrabJob)
				ws[got].expectType(protocol.JobAssign)
				ws[got].send(protocol.PreSleep)
				ws[got].barrier()
			}
			if len(woken) < 2 {
				t.Fatalf("NOOPs went to %v: no rotation", woken)
			}
		}},
		// Checklist (B) "WORK_EXCEPTION ... clients that enabled exceptions
		// (or all clients with --exceptions)".
		{name: "ExceptionsFlag", run: func(t *testing.T, e *env) {
			s := ownServer(t, e, "--exceptions")
			fn := s.names.fn("excflag")
			c := dial(t, s.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			w := dial(t, s.addr())
			w.grab(fn)
			w.send(protocol.WorkException, h, "boom")
			c.expect(protocol.WorkException, h, "boom")
		}},
		// Checklist (B) "shutdown [graceful]: only with --admin-shutdown, only
		// from loopback (section 0)".
		{name: "AdminShutdown", gserverdOnly: true, run: func(t *testing.T, e *env) {
			s := ownServer(t, e, "--admin-shutdown")
			c := dial(t, s.addr())
			c.write([]byte("shutdown\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("shutdown: %q", got)
			}
			select {
			case <-s.srv.Done():
			case <-time.After(wait):
				t.Fatalf("server still running after shutdown")
			}
		}},
		// Section 0: "background submit coalesced into a foreground job: the
		// job becomes background" and survives its clients.
		{name: "BackgroundCoalescedIntoForeground", gserverdOnly: true, run: func(t *testing.T, e *env) {
			fn := e.names.fn("fgbg")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJob, fn, "fgbg", "x")
			b := dial(t, e.addr())
			if hb := b.submit(protocol.SubmitJobBg, fn, "fgbg", "y"); hb != h {
				t.Fatalf("BG submit did not coalesce: %s vs %s", hb, h)
			}
			c.c.Close()
			b.barrier()
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			waitFor(t, "the job after the client left", func() bool {
				w.send(protocol.GrabJob)
				p := w.readPacket()
				if p.typ == protocol.JobAssign && p.args[0] == h {
					return true
				}
				t.Fatalf("grab after the foreground client left: %v, want JOB_ASSIGN %s", p, h)
				return false
			})
		}},
		// Section 1.5: WORK_FAIL with a handle of 64 bytes or more.
		{name: "WorkFailHandleTooLarge", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.send(protocol.WorkFail, "H:"+strings.Repeat("h", 70))
			c.expectError(protocol.CodeArgumentTooLarge, protocol.TextHandleTooLarge)
			c.barrier()
		}},
	}
}
