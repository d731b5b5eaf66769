package interop

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

var handleRE = regexp.MustCompile(`^H:[^:\x00]+:[0-9]+$`)

// submit sends a SUBMIT_* packet and returns the handle from JOB_CREATED.
func (c *rawConn) submit(typ protocol.Type, args ...string) string {
	c.t.Helper()
	c.send(typ, args...)
	p := c.expectType(protocol.JobCreated)
	if len(p.args) != 1 || !handleRE.MatchString(p.args[0]) {
		c.t.Fatalf("JOB_CREATED %q: want one handle H:<host>:<n>", p.args)
	}
	return p.args[0]
}

// grab registers fn and grabs one job, expecting JOB_ASSIGN.
func (c *rawConn) grab(fn string) pkt {
	c.t.Helper()
	c.send(protocol.CanDo, fn)
	c.send(protocol.GrabJob)
	return c.expectType(protocol.JobAssign)
}

func rawChecks() []check {
	return []check{
		// Checklist (A) "12-byte header; \0REQ in, \0RES out; big-endian type
		// and size; NUL-separated args with the last arg raw" and (A) "ECHO
		// with any payload".
		{name: "Framing/EchoExactBytes", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			for _, payload := range []string{"hello", "", "a\x00b\x00\x00c", strings.Repeat("z", 70000)} {
				c.send(protocol.EchoReq, payload)
				p := c.readPacket()
				want := protocol.AppendPacketString(nil, protocol.Res, protocol.EchoRes, payload)
				if !bytes.Equal(p.raw, want) {
					t.Fatalf("ECHO %d bytes: got %q..., want %q...", len(payload), trunc(p.raw), trunc(want))
				}
			}
		}},
		// Checklist (B) "Payloads up to the configured limit": 20 MiB ECHO.
		{name: "Limits/Echo20MiB", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			payload := bytes.Repeat([]byte("0123456789abcdef"), (20<<20)/16)
			c.write(protocol.AppendPacket(nil, protocol.Req, protocol.EchoReq, payload))
			p := c.expectType(protocol.EchoRes)
			if len(p.args) != 1 || p.args[0] != string(payload) {
				t.Fatalf("20 MiB echo came back with %d bytes", len(p.args[0]))
			}
		}},
		// Checklist (A) "Per-packet text/binary detection on the first byte;
		// CRLF and LF both accepted; pipelined text commands".
		{name: "Framing/MixedTextAndBinary", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			var b []byte
			b = append(b, "version\r\n"...)
			b = protocol.AppendPacketString(b, protocol.Req, protocol.EchoReq, "mid")
			b = append(b, "VERSION\n"...)
			b = append(b, "   status\r\n"...)
			b = protocol.AppendPacketString(b, protocol.Req, protocol.EchoReq, "end")
			c.write(b)
			v := c.line()
			if !regexp.MustCompile(`^OK [^\r\n ]+\n$`).MatchString(v) {
				t.Fatalf("version on a binary connection: %q, want \"OK <version>\\n\"", v)
			}
			c.expect(protocol.EchoRes, "mid")
			if v2 := c.line(); v2 != v {
				t.Fatalf("VERSION (upper case) = %q, want %q", v2, v)
			}
			if got, want := c.line(), protocol.ReplyUnknownCommand(""); got != want {
				t.Fatalf("leading space: %q, want %q", got, want)
			}
			c.expect(protocol.EchoRes, "end")
		}},
		// Checklist (B) "Bad magic or type 0 / >=43 -> close the connection".
		{name: "Framing/BadMagicCloses", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.write([]byte("\x00REX\x00\x00\x00\x10\x00\x00\x00\x01x"))
			if got := c.expectClosed(); len(got) != 0 {
				t.Fatalf("bad magic: got %v before close, want nothing", got)
			}
		}},
		{name: "Framing/Type0Closes", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.write(protocol.AppendPacket(nil, protocol.Req, 0))
			if got := c.expectClosed(); len(got) != 0 {
				t.Fatalf("type 0: got %v before close", got)
			}
		}},
		{name: "Framing/Type43Closes", run: func(t *testing.T, e *env) {
			for _, typ := range []protocol.Type{43, 9999} {
				c := dial(t, e.addr())
				c.write(protocol.AppendPacket(nil, protocol.Req, typ))
				if got := c.expectClosed(); len(got) != 0 {
					t.Fatalf("type %d: got %v before close", typ, got)
				}
			}
		}},
		// Checklist (B) "\0RES magic -> ERROR INVALID_MAGIC"; the connection
		// stays open after an ERROR (section 1.5).
		{name: "Errors/ResMagicInvalidMagic", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.write(protocol.AppendPacketString(nil, protocol.Res, protocol.EchoReq, "x"))
			c.expectError(protocol.CodeInvalidMagic, protocol.TextRequestMagicExpected)
			c.barrier()
		}},
		// Checklist (B) "Response types, UNUSED, ALL_YOURS, SCHED -> ERROR
		// INVALID_COMMAND "Command not expected"".
		{name: "Errors/NotRequestsInvalidCommand", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			for _, typ := range []protocol.Type{protocol.Unused, protocol.Noop, protocol.JobCreated, protocol.NoJob,
				protocol.JobAssign, protocol.EchoRes, protocol.Error, protocol.StatusRes, protocol.AllYours,
				protocol.OptionRes, protocol.JobAssignUniq, protocol.JobAssignAll, protocol.StatusResUnique} {
				// With the type's full argument layout: gearmand waits for
				// missing NUL-terminated fields before it looks at the type.
				args := make([]string, typ.Args())
				for i := range args {
					args[i] = "a"
				}
				c.send(typ, args...)
				c.expectError(protocol.CodeInvalidCommand, protocol.TextCommandNotExpected)
			}
			fn := e.names.fn("sched")
			c.send(protocol.SubmitJobSched, fn, "", "1", "2", "3", "4", "5", "data")
			c.expectError(protocol.CodeInvalidCommand, protocol.TextCommandNotExpected)
			c.barrier()
		}},
		// Checklist (B) "the 8 KiB bound on NUL-terminated arguments": 8000
		// bytes accepted, 9000 closes the connection (gserverd may send
		// ERROR ARGUMENT_TOO_LARGE first; see the gserverd-only check).
		{name: "Limits/ArgsBound", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("big") + strings.Repeat("f", 8000-20)
			c.submit(protocol.SubmitJobBg, fn, "", "x")
			c2 := dial(t, e.addr())
			c2.send(protocol.SubmitJobBg, strings.Repeat("f", 9000), "", "x")
			for _, p := range c2.expectClosed() {
				if p.typ != protocol.Error || p.args[0] != protocol.CodeArgumentTooLarge {
					t.Fatalf("9000-byte function: got %v before close", p)
				}
			}
			// gearmand: a packet without an opaque payload (CAN_DO's name)
			// must fit the 8 KiB buffer too; 9000 bytes closes.
			c3 := dial(t, e.addr())
			c3.send(protocol.CanDo, strings.Repeat("c", 9000))
			for _, p := range c3.expectClosed() {
				if p.typ != protocol.Error || p.args[0] != protocol.CodeArgumentTooLarge {
					t.Fatalf("CAN_DO of 9000 bytes: got %v before close", p)
				}
			}
			c4 := dial(t, e.addr())
			c4.send(protocol.CanDo, strings.Repeat("c", 8000))
			c4.barrier()
		}},
		{name: "Limits/ArgsBoundErrorBeforeClose", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.send(protocol.SubmitJobBg, strings.Repeat("f", 9000), "", "x")
			got := c.expectClosed()
			if len(got) != 1 || got[0].typ != protocol.Error || got[0].args[0] != protocol.CodeArgumentTooLarge {
				t.Fatalf("9000-byte function: got %v before close, want one ERROR ARGUMENT_TOO_LARGE", got)
			}
		}},
		// Checklist: a text line over 8 KiB closes the connection (section 1.3).
		{name: "Limits/LongTextLineCloses", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.write([]byte(strings.Repeat("s", 9000) + "\n"))
			c.expectClosed()
		}},
		// Checklist (B) "Payloads up to the configured limit (default 64 MiB)"
		// and issue 2's acceptance: a 4 GiB size header is refused and the
		// server does not allocate it.
		{name: "Limits/FourGiBHeaderNotAllocated", gserverdOnly: true, run: func(t *testing.T, e *env) {
			before := rssKiB(t, e.srv.Cmd.Process.Pid)
			c := dial(t, e.addr())
			c.write([]byte("\x00REQ\x00\x00\x00\x07\xff\xff\xff\xfffn\x00\x00data"))
			got := c.expectClosed()
			if len(got) != 1 || got[0].typ != protocol.Error {
				t.Fatalf("4 GiB header: got %v before close, want one ERROR", got)
			}
			if after := rssKiB(t, e.srv.Cmd.Process.Pid); after-before > 64<<10 {
				t.Fatalf("RSS grew from %d KiB to %d KiB", before, after)
			}
			dial(t, e.addr()).barrier()
		}},
		{name: "Limits/PayloadOverDefaultLimit", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			size := 64<<20 + 1
			c.write(protocol.AppendHeader(nil, protocol.Req, protocol.EchoReq, size))
			got := c.expectClosed()
			if len(got) != 1 || got[0].typ != protocol.Error {
				t.Fatalf("64 MiB + 1 header: got %v before close, want one ERROR", got)
			}
		}},
		// Checklist (B) "unique up to 64 bytes kept whole (section 0)" and
		// section 1.5 "Unique value too large".
		{name: "Limits/Unique65TooLarge", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.send(protocol.SubmitJobBg, e.names.fn("u65"), strings.Repeat("u", 65), "x")
			c.expectError(protocol.CodeArgumentTooLarge, protocol.TextUniqueTooLarge)
			c.barrier()
		}},
		{name: "Limits/Unique64KeptWhole", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			u := strings.Repeat("k", 63) + "Z"
			fn := e.names.fn("u64")
			c.submit(protocol.SubmitJobBg, fn, u, "x")
			found := false
			for _, l := range c.adminList("show unique jobs") {
				found = found || l == u
			}
			if !found {
				t.Fatalf("show unique jobs does not list the 64-byte unique whole")
			}
			c.send(protocol.GetStatusUnique, u)
			c.expect(protocol.StatusResUnique, u, "1", "0", "0", "0", "0")
		}},
		// Checklist (A) "All 7 SUBMIT variants plus EPOCH and REDUCE(_BG) ->
		// JOB_CREATED" and (B) "Handle format H:<host>:<n>".
		{name: "Client/AllSubmitVariants", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("variants")
			seen := map[string]bool{}
			for _, typ := range []protocol.Type{protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHigh,
				protocol.SubmitJobHighBg, protocol.SubmitJobLow, protocol.SubmitJobLowBg} {
				h := c.submit(typ, fn, "", typ.String())
				if seen[h] {
					t.Fatalf("%s reused handle %s", typ, h)
				}
				seen[h] = true
			}
			seen[c.submit(protocol.SubmitJobEpoch, fn, "", strconv.FormatInt(time.Now().Unix()+3600, 10), "epoch")] = true
			seen[c.submit(protocol.SubmitReduceJob, fn, "", "reducer", "", "reduce")] = true
			seen[c.submit(protocol.SubmitReduceJobBackground, fn, "", "reducer", "", "reduce-bg")] = true
			if len(seen) != 9 {
				t.Fatalf("9 submits gave %d distinct handles", len(seen))
			}
			if got := statusOf(t, e.addr(), fn); got != fn+"\t9\t0\t0" {
				t.Fatalf("status line %q, want %q", got, fn+"\t9\t0\t0")
			}
		}},
		// Checklist (A) "GET_STATUS -> STATUS_RES exact format, including
		// unknown = 0,0,0,0".
		{name: "Client/GetStatus", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.send(protocol.GetStatus, "H:nohost:999999")
			c.expect(protocol.StatusRes, "H:nohost:999999", "0", "0", "0", "0")
			fn := e.names.fn("gs")
			h := c.submit(protocol.SubmitJobBg, fn, "", "x")
			c.send(protocol.GetStatus, h)
			c.expect(protocol.StatusRes, h, "1", "0", "0", "0")
			w := dial(t, e.addr())
			w.grab(fn)
			c.send(protocol.GetStatus, h)
			c.expect(protocol.StatusRes, h, "1", "1", "0", "0")
			w.send(protocol.WorkStatus, h, "3", "10")
			w.barrier()
			// GET_STATUS works from any connection, the worker's too (4.10).
			w.send(protocol.GetStatus, h)
			w.expect(protocol.StatusRes, h, "1", "1", "3", "10")
			w.send(protocol.WorkComplete, h, "done")
			w.barrier()
			c.send(protocol.GetStatus, h)
			c.expect(protocol.StatusRes, h, "0", "0", "0", "0")
		}},
		// Checklist (A) "GET_STATUS_UNIQUE -> STATUS_RES_UNIQUE (first field =
		// unique, 6th = client count)".
		{name: "Client/GetStatusUnique", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			u := e.names.fn("uniq")
			c.send(protocol.GetStatusUnique, u)
			c.expect(protocol.StatusResUnique, u, "0", "0", "0", "0", "0")
			fn := e.names.fn("gsu")
			c.submit(protocol.SubmitJob, fn, u, "x")
			c2 := dial(t, e.addr())
			c2.submit(protocol.SubmitJob, fn, u, "y")
			c.send(protocol.GetStatusUnique, u)
			c.expect(protocol.StatusResUnique, u, "1", "0", "0", "0", "2")
		}},
		// Checklist (A) "OPTION_REQ exceptions (case-insensitive, echoed as
		// sent) and the UNKNOWN_OPTION error".
		{name: "Client/OptionReq", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.send(protocol.OptionReq, "exceptions")
			c.expect(protocol.OptionRes, "exceptions")
			c.send(protocol.OptionReq, "EXCEPTIONS")
			c.expect(protocol.OptionRes, "EXCEPTIONS")
			c.send(protocol.OptionReq, "nosuchoption")
			c.expectError(protocol.CodeUnknownOption, protocol.TextUnknownOption)
			c.barrier()
		}},
		// Checklist (B) "Coalescing on (function, unique), including running
		// jobs; empty unique never coalesces; - coalesces by payload. The
		// first submit's payload, priority and BG flag win."
		{name: "Client/Coalescing", run: func(t *testing.T, e *env) {
			fn := e.names.fn("co")
			c1, c2, c3 := dial(t, e.addr()), dial(t, e.addr()), dial(t, e.addr())
			h1 := c1.submit(protocol.SubmitJob, fn, "same", "first")
			if h := c2.submit(protocol.SubmitJobHigh, fn, "same", "second"); h != h1 {
				t.Fatalf("same (function, unique): handles %s and %s", h1, h)
			}
			if h := c3.submit(protocol.SubmitJob, fn+"_other", "same", "x"); h == h1 {
				t.Fatalf("same unique, other function coalesced")
			}
			e1 := c3.submit(protocol.SubmitJob, fn, "", "e")
			if e2 := c3.submit(protocol.SubmitJob, fn, "", "e"); e1 == e2 {
				t.Fatalf("empty unique coalesced: %s", e1)
			}
			d1 := c3.submit(protocol.SubmitJob, fn, "-", "payload-x")
			if d2 := c3.submit(protocol.SubmitJob, fn, "-", "payload-x"); d1 != d2 {
				t.Fatalf("unique - with the same payload: %s and %s", d1, d2)
			}
			if d3 := c3.submit(protocol.SubmitJob, fn, "-", "payload-y"); d3 == d1 {
				t.Fatalf("unique - with another payload coalesced")
			}
			w := dial(t, e.addr())
			a := w.grab(fn)
			if a.args[0] != h1 || a.args[2] != "first" {
				t.Fatalf("worker got %v, want %s with the first payload", a, h1)
			}
			// A submit coalescing into the running job attaches too.
			c4 := dial(t, e.addr())
			if h := c4.submit(protocol.SubmitJob, fn, "same", "late"); h != h1 {
				t.Fatalf("submit while running: %s, want %s", h, h1)
			}
			// Checklist (B) "Forward WORK_DATA/WARNING/STATUS/COMPLETE/FAIL
			// to all attached clients".
			w.send(protocol.WorkData, h1, "d\x00ata")
			w.send(protocol.WorkWarning, h1, "warn")
			w.send(protocol.WorkStatus, h1, "1", "2")
			w.send(protocol.WorkComplete, h1, "res\x00ult")
			for _, c := range []*rawConn{c1, c2, c4} {
				c.expect(protocol.WorkData, h1, "d\x00ata")
				c.expect(protocol.WorkWarning, h1, "warn")
				c.expect(protocol.WorkStatus, h1, "1", "2")
				c.expect(protocol.WorkComplete, h1, "res\x00ult")
			}
			// Once complete, the unique is free again.
			if h := c1.submit(protocol.SubmitJob, fn, "same", "again"); h == h1 {
				t.Fatalf("unique not freed after completion")
			}
		}},
		{name: "Client/WorkFailToAllClients", run: func(t *testing.T, e *env) {
			fn := e.names.fn("fail")
			c1, c2 := dial(t, e.addr()), dial(t, e.addr())
			h := c1.submit(protocol.SubmitJob, fn, "u", "x")
			c2.submit(protocol.SubmitJob, fn, "u", "x")
			w := dial(t, e.addr())
			w.grab(fn)
			w.send(protocol.WorkFail, h)
			c1.expect(protocol.WorkFail, h)
			c2.expect(protocol.WorkFail, h)
		}},
		// Checklist (B) "WORK_EXCEPTION -> WORK_FAIL for non-exception clients".
		// The body differs (section 0): compared without a trailing NUL here.
		{name: "Client/WorkException", run: func(t *testing.T, e *env) {
			fn := e.names.fn("exc")
			withExc, without := dial(t, e.addr()), dial(t, e.addr())
			withExc.send(protocol.OptionReq, "exceptions")
			withExc.expect(protocol.OptionRes, "exceptions")
			h := withExc.submit(protocol.SubmitJob, fn, "u", "x")
			without.submit(protocol.SubmitJob, fn, "u", "x")
			w := dial(t, e.addr())
			w.grab(fn)
			w.send(protocol.WorkException, h, "boom")
			withExc.expect(protocol.WorkException, h, "boom")
			p := without.expectType(protocol.WorkFail)
			if strings.TrimSuffix(p.args[0], "\x00") != h {
				t.Fatalf("WORK_FAIL body %q, want the handle %q", p.args[0], h)
			}
		}},
		{name: "Client/ExceptionFailHasNoTrailingNUL", gserverdOnly: true, run: func(t *testing.T, e *env) {
			fn := e.names.fn("exc0")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			w := dial(t, e.addr())
			w.grab(fn)
			w.send(protocol.WorkException, h, "boom")
			c.expect(protocol.WorkFail, h) // body HANDLE, gearmand sends HANDLE\0
		}},
		// Checklist (B) "On worker death: silent requeue, retry counting".
		{name: "Client/WorkerDeathRequeue", run: func(t *testing.T, e *env) {
			fn := e.names.fn("death")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			w := dial(t, e.addr())
			w.grab(fn)
			w.c.Close()
			w2 := dial(t, e.addr())
			w2.send(protocol.CanDo, fn)
			waitFor(t, "requeue", func() bool {
				w2.send(protocol.GrabJob)
				p := w2.readPacket()
				if p.typ == protocol.NoJob {
					return false
				}
				if p.typ != protocol.JobAssign || p.args[0] != h {
					t.Fatalf("second worker got %v", p)
				}
				return true
			})
			retries := ""
			for _, l := range c.adminList("show jobs") {
				if f := strings.Split(l, "\t"); f[0] == h {
					retries = f[1]
				}
			}
			if retries != "1" {
				t.Fatalf("show jobs retries for %s = %q, want 1", h, retries)
			}
			c.barrier() // the client was told nothing
			w2.send(protocol.WorkComplete, h, "ok")
			c.expect(protocol.WorkComplete, h, "ok")
		}},
		// Checklist (A) "CAN_DO (duplicates tolerated), CANT_DO and
		// RESET_ABILITIES (both requeue held jobs)" and (A) "WORK_* accepted
		// only from the owning connection, else ERROR JOB_NOT_FOUND with the
		// exact texts".
		{name: "Worker/CantDoRequeuesAndLateResult", run: func(t *testing.T, e *env) {
			for _, drop := range []protocol.Type{protocol.CantDo, protocol.ResetAbilities} {
				fn := e.names.fn("cantdo")
				c := dial(t, e.addr())
				h := c.submit(protocol.SubmitJob, fn, "", "x")
				w := dial(t, e.addr())
				w.send(protocol.CanDo, fn)
				w.grab(fn)
				if got := statusOf(t, e.addr(), fn); got != fn+"\t1\t1\t2" {
					t.Fatalf("duplicate CAN_DO: status %q, want workers 2", got)
				}
				if drop == protocol.CantDo {
					w.send(protocol.CantDo, fn)
				} else {
					w.send(protocol.ResetAbilities)
				}
				w.send(protocol.WorkComplete, h, "late")
				w.expectError(protocol.CodeJobNotFound, protocol.TextWorkResultNotFound)
				if got := statusOf(t, e.addr(), fn); got != fn+"\t1\t0\t0" {
					t.Fatalf("after %s: status %q, want 1 queued, 0 running, 0 workers", drop, got)
				}
			}
		}},
		{name: "Worker/WorkFromOtherConnection", run: func(t *testing.T, e *env) {
			fn := e.names.fn("owner")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			w := dial(t, e.addr())
			w.grab(fn)
			o := dial(t, e.addr())
			o.send(protocol.WorkStatus, h, "1", "2")
			o.expectError(protocol.CodeJobNotFound, protocol.TextWorkResultNotFound)
			o.send(protocol.WorkComplete, h, "x")
			o.expectError(protocol.CodeJobNotFound, protocol.TextWorkResultNotFound)
			o.send(protocol.WorkFail, h)
			o.expectError(protocol.CodeJobNotFound, protocol.TextWorkResultNotFound)
			o.send(protocol.WorkData, h, "x")
			o.expectError(protocol.CodeJobNotFound, protocol.TextJobDoesNotExist)
			o.send(protocol.WorkWarning, h, "x")
			o.expectError(protocol.CodeJobNotFound, protocol.TextJobDoesNotExist)
			o.send(protocol.WorkException, h, "x")
			o.expectError(protocol.CodeJobNotFound, protocol.TextExceptionNotFound)
			c.barrier()
			w.send(protocol.WorkComplete, h, "real")
			c.expect(protocol.WorkComplete, h, "real")
		}},
		// Checklist (A) "A worker may hold several jobs".
		{name: "Worker/HoldsSeveralJobs", run: func(t *testing.T, e *env) {
			fn := e.names.fn("several")
			c := dial(t, e.addr())
			h1 := c.submit(protocol.SubmitJob, fn, "", "1")
			h2 := c.submit(protocol.SubmitJob, fn, "", "2")
			w := dial(t, e.addr())
			w.grab(fn)
			w.send(protocol.GrabJob)
			w.expectType(protocol.JobAssign)
			if got := statusOf(t, e.addr(), fn); got != fn+"\t2\t2\t1" {
				t.Fatalf("status %q, want 2 running", got)
			}
			w.send(protocol.WorkComplete, h2, "b")
			w.send(protocol.WorkComplete, h1, "a")
			c.expect(protocol.WorkComplete, h2, "b")
			c.expect(protocol.WorkComplete, h1, "a")
		}},
		// Checklist (A) "GRAB_JOB / _UNIQ / _ALL -> JOB_ASSIGN / _UNIQ / _ALL
		// or NO_JOB. _ALL falls back to _UNIQ for jobs without a reducer."
		{name: "Worker/GrabVariants", run: func(t *testing.T, e *env) {
			fn := e.names.fn("grab")
			w := dial(t, e.addr())
			w.send(protocol.GrabJob)
			w.expect(protocol.NoJob) // no functions at all
			w.send(protocol.CanDo, fn)
			for _, g := range []protocol.Type{protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll} {
				w.send(g)
				w.expect(protocol.NoJob)
			}
			c := dial(t, e.addr())
			h1 := c.submit(protocol.SubmitJobBg, fn, "u1", "p1")
			w.send(protocol.GrabJobUniq)
			w.expect(protocol.JobAssignUniq, h1, fn, "u1", "p1")
			h2 := c.submit(protocol.SubmitJobBg, fn, "", "p2")
			w.send(protocol.GrabJobAll)
			w.expect(protocol.JobAssignUniq, h2, fn, "", "p2")
			h3 := c.submit(protocol.SubmitReduceJobBackground, fn, "u3", "red", "", "p3")
			w.send(protocol.GrabJobAll)
			w.expect(protocol.JobAssignAll, h3, fn, "u3", "red", "p3")
			h4 := c.submit(protocol.SubmitReduceJob, fn, "u4", "red", "", "p4")
			w.send(protocol.GrabJob)
			w.expect(protocol.JobAssign, h4, fn, "p4")
		}},
		// Checklist (A) "PRE_SLEEP -> immediate NOOP if work is pending. At
		// most one NOOP per sleep."
		{name: "Worker/PreSleepNoop", run: func(t *testing.T, e *env) {
			fn := e.names.fn("sleep")
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJobBg, fn, "", "pending")
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.send(protocol.PreSleep)
			w.expect(protocol.Noop)
			w.send(protocol.GrabJob)
			w.expectType(protocol.JobAssign)
			w.send(protocol.GrabJob)
			w.expect(protocol.NoJob)
			w.send(protocol.PreSleep)
			w.barrier() // asleep, nothing pending: no NOOP
			c.submit(protocol.SubmitJobBg, fn, "", "a")
			w.expect(protocol.Noop)
			c.submit(protocol.SubmitJobBg, fn, "", "b")
			c.barrier()
			w.barrier() // no second NOOP before the next GRAB_JOB
			w.send(protocol.GrabJob)
			w.expectType(protocol.JobAssign)
		}},
		// A worker that never sent PRE_SLEEP gets no NOOP (4.4 item 4).
		{name: "Worker/NoNoopWithoutPreSleep", run: func(t *testing.T, e *env) {
			fn := e.names.fn("awake")
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.barrier()
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJobBg, fn, "", "x")
			c.barrier()
			w.barrier()
		}},
		// Checklist (B) "CAN_DO_TIMEOUT in ms, minimum 1000; requeue on
		// expiry; late results -> JOB_NOT_FOUND".
		{name: "Worker/CanDoTimeout", run: func(t *testing.T, e *env) {
			fn := e.names.fn("cdt")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			w := dial(t, e.addr())
			w.send(protocol.CanDoTimeout, fn, "200")
			w.send(protocol.GrabJob)
			w.expectType(protocol.JobAssign)
			start := time.Now()
			w2 := dial(t, e.addr())
			w2.send(protocol.CanDo, fn)
			w2.send(protocol.PreSleep)
			w2.expect(protocol.Noop) // woken by the requeue
			if el := time.Since(start); el < 900*time.Millisecond {
				t.Fatalf("requeued after %v: timeout 200 ms must be raised to 1000 ms", el)
			}
			w2.send(protocol.GrabJob)
			if p := w2.readPacket(); p.typ == protocol.NoJob && !e.tg.gserverd() {
				// gearmand 1.1.20, under load, answers the GRAB_JOB that
				// follows the requeue's NOOP with NO_JOB now and then, and
				// a worker that sleeps again is not woken within 10 s, as if
				// the job had left its queue. Likely the race of its timeout
				// handler (_server_job_timeout, gearman/gearmand#301). What
				// gearmand does reliably is checked above; gserverd must
				// hand the job over and answer the late result.
				t.Logf("gearmand answered NO_JOB after the requeue's NOOP (its CAN_DO_TIMEOUT race); the rest is checked on gserverd")
				return
			} else if p.typ != protocol.JobAssign || strings.Join(p.args, "\x00") != strings.Join([]string{h, fn, "x"}, "\x00") {
				t.Fatalf("got %v (raw %q), want JOB_ASSIGN %q", p, p.raw, []string{h, fn, "x"})
			}
			w.send(protocol.WorkComplete, h, "late")
			w.expectError(protocol.CodeJobNotFound, protocol.TextWorkResultNotFound)
			c.barrier() // the client was not told
			w2.send(protocol.WorkComplete, h, "ok")
			c.expect(protocol.WorkComplete, h, "ok")
		}},
		// Checklist (B) "Priority HIGH > NORMAL > LOW, FIFO within a level".
		{name: "Worker/PriorityWithinFunction", run: func(t *testing.T, e *env) {
			fn := e.names.fn("prio")
			c := dial(t, e.addr())
			for _, j := range []struct {
				typ  protocol.Type
				data string
			}{{protocol.SubmitJobLowBg, "low1"}, {protocol.SubmitJobBg, "norm1"}, {protocol.SubmitJobHighBg, "high1"},
				{protocol.SubmitJobLowBg, "low2"}, {protocol.SubmitJobBg, "norm2"}, {protocol.SubmitJobHighBg, "high2"}} {
				c.submit(j.typ, fn, "", j.data)
			}
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			var got []string
			for range 6 {
				w.send(protocol.GrabJob)
				got = append(got, w.expectType(protocol.JobAssign).args[2])
			}
			if want := "high1 high2 norm1 norm2 low1 low2"; strings.Join(got, " ") != want {
				t.Fatalf("order %q, want %q", strings.Join(got, " "), want)
			}
		}},
		// Checklist (B) "Across functions: the HEAD policy of section 0
		// (global priority, round-robin among equal priorities)".
		{name: "Worker/PriorityAcrossFunctions", gserverdOnly: true, run: func(t *testing.T, e *env) {
			pa, pb, pc := e.names.fn("pa"), e.names.fn("pb"), e.names.fn("pc")
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJobLowBg, pa, "", "pa-low")
			c.submit(protocol.SubmitJobHighBg, pb, "", "pb-high")
			c.submit(protocol.SubmitJobBg, pc, "", "pc-normal")
			w := dial(t, e.addr())
			for _, f := range []string{pa, pb, pc} {
				w.send(protocol.CanDo, f)
			}
			var got []string
			for range 3 {
				w.send(protocol.GrabJob)
				got = append(got, w.expectType(protocol.JobAssign).args[2])
			}
			if want := "pb-high pc-normal pa-low"; strings.Join(got, " ") != want {
				t.Fatalf("order %q, want %q", strings.Join(got, " "), want)
			}
			ra, rb := e.names.fn("ra"), e.names.fn("rb")
			for i := range 2 {
				c.submit(protocol.SubmitJobBg, ra, "", fmt.Sprint("ra", i))
				c.submit(protocol.SubmitJobBg, rb, "", fmt.Sprint("rb", i))
			}
			w2 := dial(t, e.addr())
			w2.send(protocol.CanDo, ra)
			w2.send(protocol.CanDo, rb)
			got = nil
			for range 4 {
				w2.send(protocol.GrabJob)
				got = append(got, w2.expectType(protocol.JobAssign).args[2])
			}
			// Round-robin between equal priorities: never the same function twice in a row.
			for i := 1; i < 4; i++ {
				if got[i][:2] == got[i-1][:2] {
					t.Fatalf("order %q: not round-robin", got)
				}
			}
		}},
		// Checklist (B) "Epoch jobs: not runnable before when".
		{name: "Worker/EpochNotBeforeWhen", run: func(t *testing.T, e *env) {
			fn := e.names.fn("epoch")
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJobEpoch, fn, "", strconv.FormatInt(time.Now().Unix()+3600, 10), "later")
			c.submit(protocol.SubmitJobEpoch, fn, "", "abc", "garbage-now") // non-numeric = 0 = now
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.send(protocol.GrabJob)
			if a := w.expectType(protocol.JobAssign); a.args[2] != "garbage-now" {
				t.Fatalf("got %v, want the due job", a)
			}
			w.send(protocol.GrabJob)
			w.expect(protocol.NoJob)
		}},
		// Checklist (B) "wake sleeping workers at when (HEAD). Do not block
		// other jobs (1.1.20 bug)".
		{name: "Worker/EpochWakesAndDoesNotBlock", gserverdOnly: true, run: func(t *testing.T, e *env) {
			fn := e.names.fn("epochw")
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJobEpoch, fn, "", strconv.FormatInt(time.Now().Unix()+3600, 10), "future")
			hl := c.submit(protocol.SubmitJobLowBg, fn, "", "low")
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.send(protocol.GrabJob)
			w.expect(protocol.JobAssign, hl, fn, "low")
			fn2 := e.names.fn("epochw2")
			when := time.Now().Unix() + 2
			h := c.submit(protocol.SubmitJobEpoch, fn2, "", strconv.FormatInt(when, 10), "due")
			w2 := dial(t, e.addr())
			w2.send(protocol.CanDo, fn2)
			w2.send(protocol.GrabJob)
			w2.expect(protocol.NoJob)
			w2.send(protocol.PreSleep)
			w2.expect(protocol.Noop)
			if now := time.Now().Unix(); now < when {
				t.Fatalf("NOOP at %d, before when %d", now, when)
			}
			w2.send(protocol.GrabJob)
			w2.expect(protocol.JobAssign, h, fn2, "due")
		}},
		// Checklist (B) "SET_CLIENT_ID shown in workers".
		{name: "Worker/SetClientID", run: func(t *testing.T, e *env) {
			fn := e.names.fn("cid")
			id := e.names.fn("client-id")
			w := dial(t, e.addr())
			w.send(protocol.SetClientID, id)
			w.send(protocol.CanDo, fn)
			w.barrier()
			found := ""
			for _, l := range dial(t, e.addr()).adminList("workers") {
				if strings.Contains(l, " "+id+" ") {
					found = l
				}
			}
			if !regexp.MustCompile(`^[0-9]+ 127\.0\.0\.1 ` + regexp.QuoteMeta(id) + ` : ` + regexp.QuoteMeta(fn) + `$`).MatchString(found) {
				t.Fatalf("workers line %q, want \"FD 127.0.0.1 %s : %s\"", found, id, fn)
			}
		}},
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
