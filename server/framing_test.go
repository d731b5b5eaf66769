package server

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/protocol"
)

// TestChecklist/Framing: docs/PROTOCOL.md section 7, "Framing".
func TestChecklistFraming(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.Limits.MaxPayload = 1 << 20 })

	t.Run("Framing/HeaderBigEndianReqInResOutLastArgRaw", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		// ECHO: the reply is exactly "\0RES", type 17, size, payload.
		payload := "a\x00b\x00\x00c"
		c.send(protocol.EchoReq, payload)
		var want []byte
		want = append(want, 0, 'R', 'E', 'S', 0, 0, 0, 17)
		want = binary.BigEndian.AppendUint32(want, uint32(len(payload)))
		want = append(want, payload...)
		got := make([]byte, len(want))
		c.readFull(got)
		if !bytes.Equal(got, want) {
			t.Fatalf("got % x, want % x", got, want)
		}
		// The last argument of JOB_ASSIGN is raw: NULs in the payload survive.
		w := ts.worker(t, "hdr")
		c.submit(protocol.SubmitJobBg, "hdr", "", "x\x00y\x00")
		h, fn, data := w.grab()
		if !strings.HasPrefix(h, "H:test:") || fn != "hdr" || data != "x\x00y\x00" {
			t.Fatalf("JOB_ASSIGN %q %q %q", h, fn, data)
		}
	})

	t.Run("Framing/SplitAtEveryOffset", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		pkt := protocol.AppendPacketString(nil, protocol.Req, protocol.EchoReq, "split me")
		text := []byte("version\r\n")
		stream := append(append([]byte{}, pkt...), text...)
		for cut := 1; cut < len(stream); cut++ {
			c.write(stream[:cut])
			c.write(stream[cut:])
			c.expect(protocol.EchoRes, "split me")
			if l := c.readLine(); l != "OK 1.1.20+ds\n" {
				t.Fatalf("cut %d: version reply %q", cut, l)
			}
		}
	})

	t.Run("Framing/TextAndBinaryMixedCRLFAndLFPipelined", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		var b []byte
		b = append(b, "version\n"...)
		b = protocol.AppendPacketString(b, protocol.Req, protocol.EchoReq, "bin")
		b = append(b, "VERSION\r\n"...)
		b = append(b, "verbose\nversion\n"...)
		c.write(b)
		if l := c.readLine(); l != "OK 1.1.20+ds\n" {
			t.Fatalf("LF: %q", l)
		}
		c.expect(protocol.EchoRes, "bin")
		for _, want := range []string{"OK 1.1.20+ds\n", "OK ERROR\n", "OK 1.1.20+ds\n"} {
			if l := c.readLine(); l != want {
				t.Fatalf("got %q, want %q", l, want)
			}
		}
	})

	t.Run("Framing/ArgumentCountsIncludingReduceFourFields", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		w := ts.worker(t, "argc-map")
		// SUBMIT_REDUCE_JOB: FUNC, UNIQ, REDUCER, AGGREGATOR, DATA.
		c.send(protocol.SubmitReduceJobBackground, "argc-map", "u-red", "reducer", "agg", "da\x00ta")
		h := c.expectType(protocol.JobCreated)[0]
		w.send(protocol.GrabJobAll)
		w.expect(protocol.JobAssignAll, h, "argc-map", "u-red", "reducer", "da\x00ta")
		// Too few arguments: ERROR INVALID_PACKET, and the connection stays.
		for _, tc := range []struct {
			typ  protocol.Type
			args []string
		}{
			{protocol.SubmitJob, []string{"only-function"}},
			{protocol.SubmitJobBg, []string{"f"}},
			{protocol.SubmitReduceJob, []string{"f", "u", "r", "data-no-aggregator"}},
			{protocol.SubmitJobEpoch, []string{"f", "u", "data"}},
			{protocol.WorkStatus, []string{"H:test:1", "1"}},
			{protocol.WorkComplete, []string{"H:test:1"}},
			{protocol.CanDoTimeout, []string{"f"}},
		} {
			c.send(tc.typ, tc.args...)
			c.expectError(protocol.CodeInvalidPacket, textTooFewArgs)
		}
		c.sync()
	})

	closing := []struct {
		name string
		hdr  []byte
	}{
		{"Framing/BadMagicClosesConnection", []byte("\x00XYZ\x00\x00\x00\x10\x00\x00\x00\x00")},
		{"Framing/Type0ClosesConnection", []byte("\x00REQ\x00\x00\x00\x00\x00\x00\x00\x00")},
		{"Framing/Type43ClosesConnection", []byte("\x00REQ\x00\x00\x00\x2b\x00\x00\x00\x00")},
		{"Framing/Type9999ClosesConnection", []byte("\x00REQ\x00\x00\x27\x0f\x00\x00\x00\x00")},
	}
	for _, tc := range closing {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ts.dial(t)
			c.sync()
			c.write(tc.hdr)
			c.expectClosed()
		})
	}

	t.Run("Framing/ResMagicGivesInvalidMagic", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.write(protocol.AppendPacketString(nil, protocol.Res, protocol.EchoReq, "x"))
		c.expectError("INVALID_MAGIC", "Request magic expected")
		c.sync()
	})

	t.Run("Framing/NonRequestTypesGiveInvalidCommand", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		for _, typ := range []protocol.Type{
			protocol.Unused, protocol.Noop, protocol.JobCreated, protocol.NoJob, protocol.JobAssign,
			protocol.EchoRes, protocol.Error, protocol.StatusRes, protocol.AllYours, protocol.OptionRes,
			protocol.JobAssignUniq, protocol.SubmitJobSched, protocol.JobAssignAll, protocol.StatusResUnique,
		} {
			args := make([]string, typ.Args())
			c.send(typ, args...)
			c.expectError("INVALID_COMMAND", "Command not expected")
		}
		c.sync()
	})

	// Checklist (B) "ERROR bodies use the exact CODE strings in §1.5."
	t.Run("Framing/ErrorCodesExact", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		tests := []struct {
			typ        protocol.Type
			args       []string
			code, text string
		}{
			{protocol.WorkStatus, []string{"H:test:999999", "1", "2"}, "JOB_NOT_FOUND", "Job given in work result not found"},
			{protocol.WorkComplete, []string{"H:test:999999", ""}, "JOB_NOT_FOUND", "Job given in work result not found"},
			{protocol.WorkFail, []string{"H:test:999999"}, "JOB_NOT_FOUND", "Job given in work result not found"},
			{protocol.WorkData, []string{"H:test:999999", "d"}, "JOB_NOT_FOUND", "Job does not exist on server"},
			{protocol.WorkWarning, []string{"H:test:999999", "d"}, "JOB_NOT_FOUND", "Job does not exist on server"},
			{protocol.WorkException, []string{"H:test:999999", "d"}, "JOB_NOT_FOUND", "An exception was received for a job that does not exist"},
			{protocol.WorkFail, []string{strings.Repeat("h", 64)}, "ARGUMENT_TOO_LARGE", "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf"},
			{protocol.OptionReq, []string{"bogus"}, "UNKNOWN_OPTION", "Server does not recognize given option"},
			{protocol.SubmitJob, []string{"f", strings.Repeat("u", 65), ""}, "ARGUMENT_TOO_LARGE", "Unique value too large"},
		}
		for _, tc := range tests {
			c.send(tc.typ, tc.args...)
			c.expectError(tc.code, tc.text)
		}
		c.sync()
	})

	t.Run("Framing/PayloadUpToLimitAccepted", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		big := strings.Repeat("p", 1<<20)
		c.send(protocol.EchoReq, big)
		c.expect(protocol.EchoRes, big)
	})

	t.Run("Framing/PayloadOverLimitErrorThenClose", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.write(protocol.AppendHeader(nil, protocol.Req, protocol.EchoReq, 1<<20+1))
		c.expectError(protocol.CodeArgumentTooLarge, textPayloadTooLarge)
		c.expectClosed()
	})

	t.Run("Framing/ArgsUnder8KiBAccepted", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		fn := strings.Repeat("f", 8000)
		c.submit(protocol.SubmitJobBg, fn, "", "d")
	})

	t.Run("Framing/ArgsOver8KiBErrorThenClose", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.send(protocol.SubmitJobBg, strings.Repeat("f", 9000), "", "d")
		c.expectError(protocol.CodeArgumentTooLarge, textArgsTooLarge)
		c.expectClosed()
		c2 := ts.dial(t)
		// CAN_DO carries no opaque data: its whole payload is bounded too
		// (gearmand closes on a 9000-byte CAN_DO).
		c2.send(protocol.CanDo, strings.Repeat("f", 9000))
		c2.expectError(protocol.CodeArgumentTooLarge, textArgsTooLarge)
		c2.expectClosed()
	})

	t.Run("Framing/TextLineOver8KiBCloses", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		c.sendLine(strings.Repeat("x", 9000) + "\n")
		c.expectClosed()
	})

	t.Run("Framing/Unique64KeptWhole65TooLarge", func(t *testing.T) {
		t.Parallel()
		c := ts.dial(t)
		u64 := strings.Repeat("U", 64)
		h := c.submit(protocol.SubmitJobBg, "u64", u64, "d")
		c.send(protocol.GetStatusUnique, u64)
		c.expect(protocol.StatusResUnique, u64, "1", "0", "0", "0", "0")
		if h2 := c.submit(protocol.SubmitJobBg, "u64", u64, "other"); h2 != h {
			t.Fatalf("64-byte unique did not coalesce: %s vs %s", h2, h)
		}
		w := ts.worker(t, "u64")
		w.send(protocol.GrabJobUniq)
		w.expect(protocol.JobAssignUniq, h, "u64", u64, "d")
		c.send(protocol.SubmitJob, "u64", u64+"X", "d")
		c.expectError("ARGUMENT_TOO_LARGE", "Unique value too large")
	})
}

func (c *tconn) readFull(b []byte) {
	c.t.Helper()
	for n := 0; n < len(b); {
		m, err := c.br.Read(b[n:])
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		n += m
	}
}

// TestHugeSizeHeaderNotAllocated sends a header announcing 4 GiB - 1 and
// checks that the server answers and closes without allocating it.
func TestHugeSizeHeaderNotAllocated(t *testing.T) {
	ts := startServer(t, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := ts.dial(t)
	c.write(protocol.AppendHeader(nil, protocol.Req, protocol.SubmitJob, 0xffffffff))
	c.expectError(protocol.CodeArgumentTooLarge, textPayloadTooLarge)
	c.expectClosed()
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
		t.Fatalf("server allocated %d bytes for a 4 GiB header", grown)
	}
}
