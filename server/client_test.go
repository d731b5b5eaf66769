package server

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/protocol"
)

// TestChecklistClient: docs/PROTOCOL.md section 7, "Client side".
func TestChecklistClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)

	t.Run("Client/AllSubmitVariantsGiveJobCreated", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		tests := []struct {
			typ  protocol.Type
			args []string
		}{
			{protocol.SubmitJob, []string{"sv", "", "d"}},
			{protocol.SubmitJobBg, []string{"sv", "", "d"}},
			{protocol.SubmitJobHigh, []string{"sv", "", "d"}},
			{protocol.SubmitJobHighBg, []string{"sv", "", "d"}},
			{protocol.SubmitJobLow, []string{"sv", "", "d"}},
			{protocol.SubmitJobLowBg, []string{"sv", "", "d"}},
			{protocol.SubmitJobEpoch, []string{"sv", "", "0", "d"}},
			{protocol.SubmitReduceJob, []string{"sv", "", "red", "", "d"}},
			{protocol.SubmitReduceJobBackground, []string{"sv", "", "red", "", "d"}},
		}
		seen := map[string]bool{}
		for _, tc := range tests {
			c.send(tc.typ, tc.args...)
			h := c.expectType(protocol.JobCreated)[0]
			if seen[h] {
				t.Fatalf("%v: handle %s reused", tc.typ, h)
			}
			seen[h] = true
		}
		if got := ts.Stats().Submitted; got < uint64(len(tests)) {
			t.Fatalf("submitted %d", got)
		}
	})

	t.Run("Client/GetStatusExactFormat", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.send(protocol.GetStatus, "H:test:424242")
		c.expect(protocol.StatusRes, "H:test:424242", "0", "0", "0", "0")
		c.send(protocol.GetStatus, "nonsense")
		c.expect(protocol.StatusRes, "nonsense", "0", "0", "0", "0")
		h := c.submit(protocol.SubmitJob, "gs", "", "d")
		c.send(protocol.GetStatus, h)
		c.expect(protocol.StatusRes, h, "1", "0", "0", "0")
		w := ts.worker(t, "gs")
		w.grab()
		w.send(protocol.WorkStatus, h, "3", "7")
		c.expect(protocol.WorkStatus, h, "3", "7")
		c.send(protocol.GetStatus, h)
		c.expect(protocol.StatusRes, h, "1", "1", "3", "7")
		// A handle of 64 bytes or more gets no reply.
		c.send(protocol.GetStatus, strings.Repeat("h", 64))
		c.expectNothing()
	})

	t.Run("Client/GetStatusUniqueFirstFieldUniqueSixthClientCount", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c2 := ts.dial(t)
		c.send(protocol.GetStatusUnique, "nope")
		c.expect(protocol.StatusResUnique, "nope", "0", "0", "0", "0", "0")
		c.submit(protocol.SubmitJob, "gsu", "gsu-1", "d")
		c2.submit(protocol.SubmitJob, "gsu", "gsu-1", "d")
		c.send(protocol.GetStatusUnique, "gsu-1")
		c.expect(protocol.StatusResUnique, "gsu-1", "1", "0", "0", "0", "2")
	})

	t.Run("Client/OptionExceptionsCaseInsensitiveEchoedAndUnknownOption", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.send(protocol.OptionReq, "EXCEPTIONS")
		c.expect(protocol.OptionRes, "EXCEPTIONS")
		c.send(protocol.OptionReq, "exceptions")
		c.expect(protocol.OptionRes, "exceptions")
		c.send(protocol.OptionReq, "nope")
		c.expectError("UNKNOWN_OPTION", "Server does not recognize given option")
		c.send(protocol.OptionReq, strings.Repeat("e", 64))
		c.expectError("UNKNOWN_OPTION", "Server does not recognize given option")
	})

	t.Run("Client/EchoAnyPayload", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		for _, p := range []string{"", "x", "\x00", "a\x00b\x00", strings.Repeat("\xff\x00", 100000)} {
			c.send(protocol.EchoReq, p)
			c.expect(protocol.EchoRes, p)
		}
	})

	t.Run("Client/CoalescingFunctionUniqueRunningEmptyDashFirstWins", func(t *testing.T) {
		t.Parallel()
		a, b, bg := ts.dial(t), ts.dial(t), ts.dial(t)
		h1 := a.submit(protocol.SubmitJob, "co", "u1", "first")
		if h := b.submit(protocol.SubmitJobHigh, "co", "u1", "second"); h != h1 {
			t.Fatalf("same unique: %s != %s", h, h1)
		}
		if h := bg.submit(protocol.SubmitJobBg, "co", "u1", "third"); h != h1 {
			t.Fatalf("bg same unique: %s != %s", h, h1)
		}
		if h := a.submit(protocol.SubmitJob, "co-other", "u1", "x"); h == h1 {
			t.Fatal("same unique, other function coalesced")
		}
		e1 := a.submit(protocol.SubmitJob, "co", "", "same")
		if e2 := a.submit(protocol.SubmitJob, "co", "", "same"); e1 == e2 {
			t.Fatal("empty unique coalesced")
		}
		d1 := a.submit(protocol.SubmitJobBg, "co", "-", "payload-A")
		if d2 := b.submit(protocol.SubmitJobBg, "co", "-", "payload-A"); d2 != d1 {
			t.Fatalf("'-' with the same payload: %s != %s", d2, d1)
		}
		if d3 := b.submit(protocol.SubmitJobBg, "co", "-", "payload-B"); d3 == d1 {
			t.Fatal("'-' with another payload coalesced")
		}
		// The first submit's payload and priority win: the job is NORMAL
		// with payload "first" (the HIGH submit did not raise it, so a
		// HIGH job submitted later runs before it); it is now background
		// too (section 0).
		hi := b.submit(protocol.SubmitJobHigh, "co", "u-high", "high")
		w := ts.worker(t, "co")
		w.send(protocol.GrabJobUniq)
		w.expect(protocol.JobAssignUniq, hi, "co", "u-high", "high")
		w.send(protocol.WorkComplete, hi, "")
		b.expect(protocol.WorkComplete, hi, "")
		w.send(protocol.GrabJobUniq)
		w.expect(protocol.JobAssignUniq, h1, "co", "u1", "first")
		// Coalescing into a running job.
		c := ts.dial(t)
		if h := c.submit(protocol.SubmitJob, "co", "u1", "late"); h != h1 {
			t.Fatalf("running job: %s != %s", h, h1)
		}
		w.send(protocol.WorkComplete, h1, "done")
		for _, cl := range []*tconn{a, b, c} {
			cl.expect(protocol.WorkComplete, h1, "done")
		}
		bg.expectNothing()
		// The unique is free again.
		if h := a.submit(protocol.SubmitJob, "co", "u1", "again"); h == h1 {
			t.Fatal("completed job's unique still coalesces")
		}
	})

	t.Run("Client/ForwardToAllClientsAndExceptionAsFailWithoutNUL", func(t *testing.T) {
		t.Parallel()
		plain, exc := ts.dial(t), ts.dial(t)
		exc.send(protocol.OptionReq, "exceptions")
		exc.expect(protocol.OptionRes, "exceptions")
		h := plain.submit(protocol.SubmitJob, "fw", "fw-1", "d")
		exc.submit(protocol.SubmitJob, "fw", "fw-1", "d")
		w := ts.worker(t, "fw")
		w.grab()
		w.send(protocol.WorkData, h, "da\x00ta")
		w.send(protocol.WorkWarning, h, "warn")
		w.send(protocol.WorkStatus, h, "1", "2")
		w.send(protocol.WorkException, h, "boom")
		for _, c := range []*tconn{plain, exc} {
			c.expect(protocol.WorkData, h, "da\x00ta")
			c.expect(protocol.WorkWarning, h, "warn")
			c.expect(protocol.WorkStatus, h, "1", "2")
		}
		exc.expect(protocol.WorkException, h, "boom")
		// Section 0: the body is HANDLE, without gearmand's trailing NUL.
		plain.expect(protocol.WorkFail, h)
		h2 := plain.submit(protocol.SubmitJob, "fw", "", "d")
		w.grab()
		w.send(protocol.WorkFail, h2)
		plain.expect(protocol.WorkFail, h2)
	})

	t.Run("Client/ExceptionsOptionForAllConnections", func(t *testing.T) {
		t.Parallel()
		ts2 := startServer(t, func(o *Options) { o.Exceptions = true })
		c := ts2.dial(t)
		h := c.submit(protocol.SubmitJob, "ex", "", "d")
		w := ts2.worker(t, "ex")
		w.grab()
		w.send(protocol.WorkException, h, "boom")
		c.expect(protocol.WorkException, h, "boom")
	})

	t.Run("Client/WorkerDeathSilentRequeueRetriesAndFailAtLimit", func(t *testing.T) {
		t.Parallel()
		ts2 := startServer(t, func(o *Options) { o.JobRetries = 2 })
		c := ts2.dial(t)
		h := c.submit(protocol.SubmitJob, "wd", "", "d")
		w1 := ts2.worker(t, "wd")
		w1.grab()
		w1.send(protocol.WorkStatus, h, "1", "2")
		c.expect(protocol.WorkStatus, h, "1", "2")
		_ = w1.nc.Close()
		// Requeued silently with its status reset and one retry.
		admin := ts2.dial(t)
		waitFor(t, "requeue", func() bool { return ts2.Stats().Requeued == 1 })
		if got := admin.admin("show jobs"); got != h+"\t1\t0\t0\n.\n" {
			t.Fatalf("show jobs %q", got)
		}
		c.send(protocol.GetStatus, h)
		c.expect(protocol.StatusRes, h, "1", "0", "0", "0")
		w2 := ts2.worker(t, "wd")
		if h2, _, _ := w2.grab(); h2 != h {
			t.Fatalf("regrabbed %s, want %s", h2, h)
		}
		_ = w2.nc.Close()
		// Second failure reaches JobRetries=2: the client gets WORK_FAIL.
		c.expect(protocol.WorkFail, h)
		w3 := ts2.worker(t, "wd")
		w3.grabNone()
	})

	t.Run("Client/WorkerDeathUnlimitedRetriesByDefault", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		h := c.submit(protocol.SubmitJob, "wd-unl", "", "d")
		for i := range 5 {
			w := ts.worker(t, "wd-unl")
			if h2, _, _ := w.grab(); h2 != h {
				t.Fatalf("attempt %d: %s", i, h2)
			}
			_ = w.nc.Close()
			waitFor(t, "requeue", func() bool {
				st := statusOf(ts.Server, "wd-unl")
				return st.Running == 0 && st.Normal == 1
			})
		}
		c.expectNothing()
	})

	t.Run("Client/HandleFormatAndPrefixOption", func(t *testing.T) {
		t.Parallel()
		ts2 := startServer(t, func(o *Options) { o.JobHandlePrefix = "GX" })
		c := ts2.dial(t)
		for i := 1; i <= 3; i++ {
			if h := c.submit(protocol.SubmitJobBg, "hf", "", "d"); h != "GX:"+strconv.Itoa(i) {
				t.Fatalf("handle %q, want GX:%d", h, i)
			}
		}
		o := DefaultOptions()
		o.JobHandlePrefix = ""
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !strings.HasPrefix(s.prefix, "H:") {
			t.Fatalf("default prefix %q", s.prefix)
		}
	})
}

func statusOf(s *Server, fn string) FunctionStats {
	for _, f := range s.Stats().Functions {
		if f.Name == fn {
			return f
		}
	}
	return FunctionStats{}
}
