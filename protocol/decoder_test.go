package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// validArgs returns one argument list per packet type with the layout of
// docs/PROTOCOL.md section 2: t.Args() arguments, all but the last free of NUL,
// the last an opaque payload that contains NULs.
func validArgs(t Type) []string {
	n := t.Args()
	if n == 0 {
		return nil
	}
	args := make([]string, n)
	for i := 0; i < n-1; i++ {
		args[i] = fmt.Sprintf("%s-f%d", strings.ToLower(t.String()), i)
	}
	args[n-1] = "pay\x00load\x00" + t.String()
	return args
}

// validPacket encodes one valid packet of type t, with the magic its
// direction uses.
func validPacket(t Type) []byte {
	m := Res
	if t.IsRequest() {
		m = Req
	}
	return AppendPacketString(nil, m, t, validArgs(t)...)
}

// allValid returns a valid packet of every type 1..42.
func allValid() [][]byte {
	var out [][]byte
	for t := CanDo; t <= MaxType; t++ {
		out = append(out, validPacket(t))
	}
	return out
}

// textLines are admin lines as clients send them: LF and CRLF.
var textLines = []string{
	"status\n",
	"version\r\n",
	"show unique jobs\n",
	"   status\n",
	"create function newfn\r\n",
	"\n",
	"\r\n",
}

// ownFrame is a Frame copied out of the decoder's buffers.
type ownFrame struct {
	Text  bool
	Line  string
	Magic Magic
	Type  Type
	Args  []string
	// Skipped: the payload was refused by the admit function.
	Skipped bool
}

func own(f Frame) ownFrame {
	o := ownFrame{Text: f.Text, Line: string(f.Line), Skipped: f.Skipped}
	if !f.Text {
		o.Magic, o.Type = f.Packet.Magic, f.Packet.Type
		for _, a := range f.Packet.Args {
			o.Args = append(o.Args, string(a))
		}
	}
	return o
}

func (o ownFrame) String() string {
	if o.Text {
		return fmt.Sprintf("text %q", o.Line)
	}
	if o.Skipped {
		return fmt.Sprintf("%s %s skipped", o.Magic, o.Type)
	}
	return fmt.Sprintf("%s %s %q", o.Magic, o.Type, o.Args)
}

// feed decodes every chunk in turn and returns the frames, copied, and the
// first error.
func feed(d *Decoder, chunks ...[]byte) ([]ownFrame, error) {
	var out []ownFrame
	for _, c := range chunks {
		for len(c) > 0 {
			n, f, ok, err := d.Next(c)
			if n < 0 || n > len(c) {
				return out, fmt.Errorf("Next consumed %d of %d bytes", n, len(c))
			}
			c = c[n:]
			if err != nil {
				return out, err
			}
			if ok {
				out = append(out, own(f))
			} else if len(c) > 0 {
				return out, fmt.Errorf("Next returned no frame with %d bytes left", len(c))
			}
		}
	}
	return out, nil
}

func equalFrames(a, b []ownFrame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

// Checklist (A) "Argument counts per type as in command.cc, including
// SUBMIT_REDUCE_JOB's 4 NUL-terminated fields".
func TestTypeArgsMatchCommandCC(t *testing.T) {
	t.Parallel()
	// argc + data from libgearman/command.cc, as docs/PROTOCOL.md section 2 lists.
	want := map[Type]int{
		CanDo: 1, CantDo: 1, ResetAbilities: 0, PreSleep: 0, Unused: 0, Noop: 0,
		SubmitJob: 3, JobCreated: 1, GrabJob: 0, NoJob: 0, JobAssign: 3,
		WorkStatus: 3, WorkComplete: 2, WorkFail: 1, GetStatus: 1, EchoReq: 1,
		EchoRes: 1, SubmitJobBg: 3, Error: 2, StatusRes: 5, SubmitJobHigh: 3,
		SetClientID: 1, CanDoTimeout: 2, AllYours: 0, WorkException: 2,
		OptionReq: 1, OptionRes: 1, WorkData: 2, WorkWarning: 2, GrabJobUniq: 0,
		JobAssignUniq: 4, SubmitJobHighBg: 3, SubmitJobLow: 3, SubmitJobLowBg: 3,
		SubmitJobSched: 8, SubmitJobEpoch: 4, SubmitReduceJob: 5,
		SubmitReduceJobBackground: 5, GrabJobAll: 0, JobAssignAll: 5,
		GetStatusUnique: 1, StatusResUnique: 6,
	}
	for typ := Type(0); typ <= MaxType+1; typ++ {
		if got := typ.Args(); got != want[typ] {
			t.Errorf("%s.Args() = %d, want %d", typ, got, want[typ])
		}
	}
	if !SubmitReduceJob.Valid() || Type(0).Valid() || (MaxType + 1).Valid() {
		t.Errorf("Valid: want 1..42 only")
	}
	// Not requests: gearmand answers ERROR INVALID_COMMAND.
	for _, typ := range []Type{Unused, Noop, JobCreated, NoJob, JobAssign, EchoRes, Error,
		StatusRes, AllYours, OptionRes, JobAssignUniq, SubmitJobSched, JobAssignAll, StatusResUnique} {
		if typ.IsRequest() {
			t.Errorf("%s.IsRequest() = true, want false", typ)
		}
	}
}

// Checklist (A) "12-byte header; \0REQ in, \0RES out; big-endian type and
// size; NUL-separated args with the last arg raw".
func TestEncodeHeaderBytes(t *testing.T) {
	t.Parallel()
	got := AppendPacketString(nil, Req, SubmitJob, "reverse", "", "a\x00b")
	want := []byte("\x00REQ\x00\x00\x00\x07\x00\x00\x00\x0creverse\x00\x00a\x00b")
	if !bytes.Equal(got, want) {
		t.Errorf("SUBMIT_JOB = %q, want %q", got, want)
	}
	got = AppendPacket(nil, Res, Noop)
	if want := []byte("\x00RES\x00\x00\x00\x06\x00\x00\x00\x00"); !bytes.Equal(got, want) {
		t.Errorf("NOOP = %q, want %q", got, want)
	}
	// SUBMIT_REDUCE_JOB: FUNC\0UNIQ\0REDUCER\0AGGREGATOR\0DATA.
	got = AppendPacketString(nil, Req, SubmitReduceJob, "f", "u", "r", "", "d")
	if want := []byte("\x00REQ\x00\x00\x00\x25\x00\x00\x00\x08f\x00u\x00r\x00\x00d"); !bytes.Equal(got, want) {
		t.Errorf("SUBMIT_REDUCE_JOB = %q, want %q", got, want)
	}
	var w bytes.Buffer
	if err := WritePacket(&w, Req, EchoReq, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if want := AppendPacketString(nil, Req, EchoReq, "x"); !bytes.Equal(w.Bytes(), want) {
		t.Errorf("WritePacket = %q, want %q", w.Bytes(), want)
	}
}

// Decoder tests per state: start (text/binary detection), header,
// payload and text line.
func TestDecoderStates(t *testing.T) {
	t.Parallel()
	submit := AppendPacketString(nil, Req, SubmitJob, "fn", "uniq", "da\x00ta")
	tests := []struct {
		name    string
		chunks  []string
		want    []string // ownFrame.String() of each frame
		pending bool
	}{
		{"start/empty", []string{""}, nil, false},
		{"start/text on non-NUL byte", []string{"status\n"}, []string{`text "status"`}, false},
		{"start/binary on NUL byte", []string{string(submit)}, []string{`REQ SUBMIT_JOB ["fn" "uniq" "da\x00ta"]`}, false},
		{"header/one byte", []string{"\x00"}, nil, true},
		{"header/eleven bytes", []string{string(submit[:11])}, nil, true},
		{"header/complete, no payload yet", []string{string(submit[:12])}, nil, true},
		{"header/zero size completes", []string{string(AppendPacket(nil, Req, GrabJob))}, []string{`REQ GRAB_JOB []`}, false},
		{"header/RES magic decodes", []string{string(AppendPacketString(nil, Res, EchoRes, "x"))}, []string{`RES ECHO_RES ["x"]`}, false},
		{"payload/partial", []string{string(submit[:15])}, nil, true},
		{"payload/in two", []string{string(submit[:15]), string(submit[15:])}, []string{`REQ SUBMIT_JOB ["fn" "uniq" "da\x00ta"]`}, false},
		{"payload/short: fewer args", []string{string(AppendPacketString(nil, Req, SubmitJob, "fn"))}, []string{`REQ SUBMIT_JOB ["fn"]`}, false},
		{"payload/ignored for zero-arg type", []string{string(AppendPacketString(nil, Req, GrabJob, "junk"))}, []string{`REQ GRAB_JOB []`}, false},
		{"payload/empty last arg", []string{string(AppendPacketString(nil, Req, SubmitJob, "fn", "", ""))}, []string{`REQ SUBMIT_JOB ["fn" "" ""]`}, false},
		{"payload/one-arg type keeps NULs", []string{string(AppendPacketString(nil, Req, CanDo, "a\x00b"))}, []string{`REQ CAN_DO ["a\x00b"]`}, false},
		{"line/partial", []string{"stat"}, nil, true},
		{"line/in pieces", []string{"st", "at", "us\r", "\n"}, []string{`text "status"`}, false},
		{"line/CRLF stripped", []string{"version\r\n"}, []string{`text "version"`}, false},
		{"line/only one CR stripped", []string{"x\r\r\n"}, []string{`text "x\r"`}, false},
		{"line/empty", []string{"\n"}, []string{`text ""`}, false},
		{"line/leading space kept", []string{"   status\n"}, []string{`text "   status"`}, false},
		{"line/pipelined", []string{"version\nstatus\r\nworkers\n"}, []string{`text "version"`, `text "status"`, `text "workers"`}, false},
		{"mixed text then binary", []string{"version\n" + string(submit) + "status\n"},
			[]string{`text "version"`, `REQ SUBMIT_JOB ["fn" "uniq" "da\x00ta"]`, `text "status"`}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := NewDecoder(Limits{})
			var chunks [][]byte
			for _, c := range tc.chunks {
				chunks = append(chunks, []byte(c))
			}
			frames, err := feed(d, chunks...)
			if err != nil {
				t.Fatalf("feed: %v", err)
			}
			var got []string
			for _, f := range frames {
				got = append(got, f.String())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("frames = %q, want %q", got, tc.want)
			}
			if d.Pending() != tc.pending {
				t.Errorf("Pending() = %v, want %v", d.Pending(), tc.pending)
			}
		})
	}
}

// Checklist (A) "Per-packet text/binary detection on the first byte; CRLF
// and LF both accepted; pipelined text commands" and "Argument counts per
// type ... SUBMIT_REDUCE_JOB's 4 NUL-terminated fields": every valid type
// and text line, cut at every offset, decodes to the same frames.
func TestDecoderSplitEveryOffset(t *testing.T) {
	t.Parallel()
	var stream []byte
	for i, p := range allValid() {
		stream = append(stream, p...)
		stream = append(stream, textLines[i%len(textLines)]...)
	}
	whole, err := feed(NewDecoder(Limits{}), stream)
	if err != nil {
		t.Fatalf("whole stream: %v", err)
	}
	if want := int(MaxType) + int(MaxType); len(whole) != want {
		t.Fatalf("whole stream gave %d frames, want %d", len(whole), want)
	}
	// Each packet decodes to its type and its arguments.
	for _, f := range whole {
		if f.Text {
			continue
		}
		want := validArgs(f.Type)
		if strings.Join(f.Args, "|") != strings.Join(want, "|") || len(f.Args) != len(want) {
			t.Errorf("%s args = %q, want %q", f.Type, f.Args, want)
		}
	}
	for i := 0; i <= len(stream); i++ {
		got, err := feed(NewDecoder(Limits{}), stream[:i], stream[i:])
		if err != nil {
			t.Fatalf("split at %d: %v", i, err)
		}
		if !equalFrames(got, whole) {
			t.Fatalf("split at %d: frames differ\n got %v\nwant %v", i, got, whole)
		}
	}
	// Byte by byte.
	chunks := make([][]byte, len(stream))
	for i := range stream {
		chunks[i] = stream[i : i+1]
	}
	got, err := feed(NewDecoder(Limits{}), chunks...)
	if err != nil || !equalFrames(got, whole) {
		t.Fatalf("byte by byte: err %v, frames equal %v", err, equalFrames(got, whole))
	}
}

// SUBMIT_REDUCE_JOB and its BACKGROUND variant have four NUL-terminated
// fields: the aggregator (PROTOCOL omits it) must not end up in the data.
func TestDecoderReduceJobFields(t *testing.T) {
	t.Parallel()
	for _, typ := range []Type{SubmitReduceJob, SubmitReduceJobBackground} {
		b := AppendPacketString(nil, Req, typ, "count", "u1", "sum", "", "a\x00b\x00c")
		got, err := feed(NewDecoder(Limits{}), b)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: frames %v, err %v", typ, got, err)
		}
		want := []string{"count", "u1", "sum", "", "a\x00b\x00c"}
		if strings.Join(got[0].Args, "|") != strings.Join(want, "|") {
			t.Errorf("%s args = %q, want %q", typ, got[0].Args, want)
		}
	}
}

// Encode/decode round trip for every type, from Packet.Append.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for typ := CanDo; typ <= MaxType; typ++ {
		enc := validPacket(typ)
		d := NewDecoder(Limits{})
		n, f, ok, err := d.Next(enc)
		if err != nil || !ok || n != len(enc) {
			t.Fatalf("%s: n=%d ok=%v err=%v", typ, n, ok, err)
		}
		if f.Text || f.Packet.Type != typ {
			t.Fatalf("%s: got frame %v", typ, own(f))
		}
		clone := f.Packet.Clone()
		again := clone.Append(nil)
		if !bytes.Equal(again, enc) {
			t.Errorf("%s: re-encoded %q, want %q", typ, again, enc)
		}
		// Clone owns its bytes: overwriting the input leaves it intact.
		for i := range enc {
			enc[i] = 'x'
		}
		if got := clone.Append(nil); !bytes.Equal(got, again) {
			t.Errorf("%s: Clone shares the decoder's input", typ)
		}
	}
	// A Packet with a zero magic encodes as a request.
	p := Packet{Type: EchoReq, Args: [][]byte{[]byte("hi")}}
	if got, want := p.Append(nil), AppendPacketString(nil, Req, EchoReq, "hi"); !bytes.Equal(got, want) {
		t.Errorf("zero magic: %q, want %q", got, want)
	}
}

func frameErr(t *testing.T, err error, want error) *FrameError {
	t.Helper()
	var fe *FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FrameError", err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if fe.Error() == "" {
		t.Errorf("empty error text")
	}
	return fe
}

// Checklist (B) "Bad magic or type 0 / >=43 -> close the connection": the
// decoder reports a FrameError the server closes on.
func TestDecoderFramingErrors(t *testing.T) {
	t.Parallel()
	hdr := func(magic string, typ, size uint32) []byte {
		b := []byte(magic)
		return append(b, byte(typ>>24), byte(typ>>16), byte(typ>>8), byte(typ),
			byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
	}
	tests := []struct {
		name string
		in   []byte
		want error
		typ  Type
	}{
		{"bad magic REX", hdr("\x00REX", 1, 0), ErrBadMagic, 0},
		{"bad magic zeros", hdr("\x00\x00\x00\x00", 1, 0), ErrBadMagic, 0},
		{"bad magic lower case", hdr("\x00req", 1, 0), ErrBadMagic, 0},
		{"type 0", hdr("\x00REQ", 0, 0), ErrBadType, 0},
		{"type 43", hdr("\x00REQ", 43, 0), ErrBadType, 43},
		{"type 9999", hdr("\x00REQ", 9999, 0), ErrBadType, 9999},
		{"type 0xffffffff", hdr("\x00RES", 0xffffffff, 5), ErrBadType, 0xffffffff},
		{"payload 4 GiB", hdr("\x00REQ", uint32(SubmitJob), 0xffffffff), ErrPayloadTooLarge, SubmitJob},
		{"payload limit+1", hdr("\x00REQ", uint32(EchoReq), DefaultMaxPayload+1), ErrPayloadTooLarge, EchoReq},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := feed(NewDecoder(Limits{}), tc.in)
			fe := frameErr(t, err, tc.want)
			if fe.Packet != tc.typ {
				t.Errorf("FrameError.Packet = %d, want %d", fe.Packet, tc.typ)
			}
		})
	}
	// The limit itself is accepted (the header passes; payload pending).
	d := NewDecoder(Limits{MaxPayload: 100})
	if _, err := feed(d, hdr("\x00REQ", uint32(EchoReq), 100)); err != nil || !d.Pending() {
		t.Errorf("size == limit: err %v pending %v", err, d.Pending())
	}
	if _, err := feed(NewDecoder(Limits{MaxPayload: 100}), hdr("\x00REQ", uint32(EchoReq), 101)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("size == limit+1: err %v, want ErrPayloadTooLarge", err)
	}
}

// Checklist (B) "Payloads up to the configured limit (default 64 MiB)":
// a 4 GiB size header is refused without allocating it, and an announced
// payload under the limit is buffered only as its bytes arrive.
func TestDecoderPayloadLimitDoesNotAllocate(t *testing.T) {
	hdr := AppendHeader(nil, Req, SubmitJob, 0)
	hdr[8], hdr[9], hdr[10], hdr[11] = 0xff, 0xff, 0xff, 0xff
	d := NewDecoder(Limits{})
	allocs := testing.AllocsPerRun(100, func() {
		d.st, d.hn = stStart, 0
		_, _, _, err := d.Next(hdr)
		if !errors.Is(err, ErrPayloadTooLarge) {
			t.Fatalf("err = %v, want ErrPayloadTooLarge", err)
		}
	})
	if allocs > 1 { // the *FrameError itself
		t.Errorf("4 GiB header: %v allocations per run, want at most 1", allocs)
	}

	// 60 MiB announced (under the 64 MiB default), 100 bytes sent.
	big := AppendHeader(nil, Req, EchoReq, 60<<20)
	big = append(big, bytes.Repeat([]byte("x"), 100)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d = NewDecoder(Limits{})
	if _, err := feed(d, big); err != nil || !d.Pending() {
		t.Fatalf("60 MiB announced: err %v pending %v", err, d.Pending())
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("60 MiB announced, 100 bytes sent: allocated %d bytes", grew)
	}
	if c := cap(d.buf); c > 64<<10 {
		t.Errorf("decoder buffer cap %d after 100 bytes", c)
	}
}

// TestDecoderLargePayloadAllocations (issue 10, memory): a payload that
// arrives in socket-sized pieces is assembled with allocations that add up
// to at most twice its size (append's growth by a quarter made about
// five), and the buffer ends exactly as large as the payload.
func TestDecoderLargePayloadAllocations(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		piece int
	}{
		{"24 MiB in 64 KiB pieces", 24 << 20, 64 << 10},
		{"just over 16 MiB in 1 MiB pieces", 16<<20 + 1, 1 << 20},
		{"9 MiB in 4 KiB pieces", 9 << 20, 4 << 10},
		{"just under 32 MiB in 64 KiB pieces", 32<<20 - 1, 64 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("x"), tt.size-len("f\x00u\x00"))
			pkt := AppendPacket(nil, Req, SubmitJobBg, []byte("f"), []byte("u"), data)
			d := NewDecoder(Limits{})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var got []byte
			for off := 0; off < len(pkt); {
				end := min(off+tt.piece, len(pkt))
				p := pkt[off:end]
				for len(p) > 0 {
					n, f, ok, err := d.Next(p)
					if err != nil {
						t.Fatalf("Next: %v", err)
					}
					p = p[n:]
					if ok {
						got = f.Packet.Args[2]
					}
				}
				off = end
			}
			runtime.ReadMemStats(&after)
			if !bytes.Equal(got, data) {
				t.Fatalf("payload of %d bytes decoded as %d bytes", len(data), len(got))
			}
			if c := cap(d.buf); c != tt.size {
				t.Errorf("buffer capacity %d, want the payload size %d", c, tt.size)
			}
			// The payload, the buffers it outgrew and a little slack.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(2*tt.size+64<<10) {
				t.Errorf("allocated %d bytes (%.2fx) for a %d-byte payload, want at most 2x", grew, float64(grew)/float64(tt.size), tt.size)
			}
		})
	}
}

// TestDecoderAdmit (issue 10, memory): a payload the admit function
// refuses is read and discarded without being buffered, at every split
// offset, and the packets after it decode normally; payloads up to the
// minimum are not asked about.
func TestDecoderAdmit(t *testing.T) {
	big := AppendPacketString(nil, Req, SubmitJobBg, "f", "u", strings.Repeat("x", 3000))
	small := AppendPacketString(nil, Req, SubmitJob, "f", "", "tiny")
	stream := slices.Concat(big, small, []byte("status\n"), big)
	want := []ownFrame{
		{Magic: Req, Type: SubmitJobBg, Skipped: true},
		{Magic: Req, Type: SubmitJob, Args: []string{"f", "", "tiny"}},
		{Text: true, Line: "status"},
		{Magic: Req, Type: SubmitJobBg, Skipped: true},
	}
	for cut := 0; cut <= len(stream); cut++ {
		d := NewDecoder(Limits{})
		var asked []uint32
		d.SetAdmit(100, func(typ Type, size uint32) bool {
			asked = append(asked, size)
			return typ != SubmitJobBg
		})
		got, err := feed(d, stream[:cut], stream[cut:])
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("cut %d: frames\n got %v\nwant %v", cut, got, want)
		}
		if !reflect.DeepEqual(asked, []uint32{uint32(len(big) - HeaderSize), uint32(len(big) - HeaderSize)}) {
			t.Fatalf("cut %d: admit asked about sizes %v, want the two big payloads only", cut, asked)
		}
		if c := cap(d.buf); c > 64 {
			t.Fatalf("cut %d: buffer grew to %d bytes for refused payloads", cut, c)
		}
	}
}

// Checklist (B) "the 8 KiB bound on NUL-terminated arguments".
func TestDecoderArgsLimit(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("f", 9000)
	tests := []struct {
		name  string
		in    []byte
		split int // feed in two at this offset (0: whole)
		want  error
	}{
		{"SUBMIT_JOB_BG 9000-byte function", AppendPacketString(nil, Req, SubmitJobBg, long, "", "x"), 0, ErrArgsTooLarge},
		{"SUBMIT_JOB_BG 8000-byte function", AppendPacketString(nil, Req, SubmitJobBg, long[:8000], "", "x"), 0, nil},
		{"SUBMIT_JOB 8000-byte function and payload 1 MiB", AppendPacketString(nil, Req, SubmitJob, long[:8000], "", strings.Repeat("d", 1<<20)), 4000, nil},
		{"SUBMIT_JOB args exactly at the limit", AppendPacketString(nil, Req, SubmitJob, long[:DefaultMaxArgs-2], "", "x"), 0, nil},
		{"SUBMIT_JOB args one over the limit", AppendPacketString(nil, Req, SubmitJob, long[:DefaultMaxArgs-1], "", "x"), 0, ErrArgsTooLarge},
		{"SUBMIT_JOB no NUL, fed in two", AppendPacketString(nil, Req, SubmitJob, long+"nonul"), 8500, ErrArgsTooLarge},
		// Types without opaque data are bounded whole, as in gearmand.
		{"CAN_DO 9000-byte name", AppendPacketString(nil, Req, CanDo, long), 0, ErrArgsTooLarge},
		{"CAN_DO 8000-byte name", AppendPacketString(nil, Req, CanDo, long[:8000]), 0, nil},
		{"CAN_DO name exactly at the limit", AppendPacketString(nil, Req, CanDo, long[:DefaultMaxArgs]), 0, nil},
		{"GET_STATUS 9000-byte handle", AppendPacketString(nil, Req, GetStatus, long), 0, ErrArgsTooLarge},
		{"GRAB_JOB with a 9000-byte body", AppendPacketString(nil, Req, GrabJob, long), 0, ErrArgsTooLarge},
		{"WORK_STATUS over the limit", AppendPacketString(nil, Req, WorkStatus, "H:x:1", "1", long), 0, ErrArgsTooLarge},
		{"ECHO_REQ 9000 bytes is opaque data", AppendPacketString(nil, Req, EchoReq, long), 0, nil},
		{"WORK_COMPLETE 9000-byte result", AppendPacketString(nil, Req, WorkComplete, "H:x:1", long), 0, nil},
		{"CAN_DO_TIMEOUT 9000-byte function", AppendPacketString(nil, Req, CanDoTimeout, long, "1000"), 0, ErrArgsTooLarge},
		{"REDUCE four fields over 8 KiB", AppendPacketString(nil, Req, SubmitReduceJob, long[:3000], long[:3000], long[:3000], "", "d"), 0, ErrArgsTooLarge},
		{"REDUCE four fields under 8 KiB", AppendPacketString(nil, Req, SubmitReduceJob, long[:2000], long[:2000], long[:2000], "", "d"), 0, nil},
		{"SUBMIT_JOB short packet under the limit", AppendPacketString(nil, Req, SubmitJob, long[:100]), 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chunks := [][]byte{tc.in}
			if tc.split > 0 {
				chunks = [][]byte{tc.in[:tc.split], tc.in[tc.split:]}
			}
			frames, err := feed(NewDecoder(Limits{}), chunks...)
			if tc.want != nil {
				frameErr(t, err, tc.want)
				return
			}
			if err != nil || len(frames) != 1 {
				t.Fatalf("frames %d, err %v", len(frames), err)
			}
		})
	}
	// Bounded before buffering: the error comes once MaxArgs bytes without
	// the needed NULs have arrived, not when the 1 MiB payload is complete.
	in := AppendHeader(nil, Req, SubmitJob, 1<<20)
	in = append(in, long...)
	d := NewDecoder(Limits{})
	_, err := feed(d, in)
	frameErr(t, err, ErrArgsTooLarge)

	// A type without opaque data is refused from its header alone.
	d = NewDecoder(Limits{})
	n, _, _, err := d.Next(AppendHeader(nil, Req, CanDo, 1<<20))
	if fe := frameErr(t, err, ErrArgsTooLarge); fe.Packet != CanDo || n != HeaderSize {
		t.Errorf("CAN_DO header of 1 MiB: FrameError %+v after %d bytes", fe, n)
	}
}

// Checklist: "A text line longer than about 8 KiB closes the connection".
func TestDecoderLineLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chunks []string
		want   error
	}{
		{"8191 bytes + LF", []string{strings.Repeat("a", DefaultMaxLine-1) + "\n"}, nil},
		{"8192 bytes + LF", []string{strings.Repeat("a", DefaultMaxLine) + "\n"}, ErrLineTooLong},
		{"8192 bytes no LF", []string{strings.Repeat("a", DefaultMaxLine)}, ErrLineTooLong},
		{"8191 bytes no LF pending", []string{strings.Repeat("a", DefaultMaxLine-1)}, nil},
		{"in pieces over the limit", []string{strings.Repeat("a", 5000), strings.Repeat("a", 5000)}, ErrLineTooLong},
		{"in pieces, LF after the limit", []string{strings.Repeat("a", 8000), strings.Repeat("a", 300) + "\n"}, ErrLineTooLong},
		{"in pieces under the limit", []string{strings.Repeat("a", 4000), strings.Repeat("a", 4000) + "\n"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var chunks [][]byte
			for _, c := range tc.chunks {
				chunks = append(chunks, []byte(c))
			}
			_, err := feed(NewDecoder(Limits{}), chunks...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			frameErr(t, err, tc.want)
		})
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	var stream []byte
	for i, p := range allValid() {
		stream = append(stream, p...)
		stream = append(stream, textLines[i%len(textLines)]...)
	}
	want, err := feed(NewDecoder(Limits{}), stream)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream),
		"one byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(stream)),
	} {
		rd := NewReader(r, Limits{})
		var got []ownFrame
		for {
			f, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, own(f))
		}
		if !equalFrames(got, want) {
			t.Errorf("%s: frames differ", name)
		}
		if rd.Buffered() != 0 {
			t.Errorf("%s: Buffered() = %d at EOF", name, rd.Buffered())
		}
	}
	// EOF in the middle of a frame.
	for _, in := range []string{"\x00RE", string(validPacket(SubmitJob)[:20]), "stat"} {
		_, err := NewReader(strings.NewReader(in), Limits{}).Next()
		if err != io.ErrUnexpectedEOF {
			t.Errorf("truncated %q: err %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
	// A framing error is returned as is.
	_, err = NewReader(strings.NewReader("\x00REQ\x00\x00\x00\x2b\x00\x00\x00\x00"), Limits{}).Next()
	if !errors.Is(err, ErrBadType) {
		t.Errorf("type 43: err %v, want ErrBadType", err)
	}
}

func BenchmarkDecoder(b *testing.B) {
	var stream []byte
	for _, p := range allValid() {
		stream = append(stream, p...)
	}
	d := NewDecoder(Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		p := stream
		for len(p) > 0 {
			n, _, _, err := d.Next(p)
			if err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
	}
}

func TestValidFunctionName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"", true},
		{"resize", true},
		{"with space", true},
		{"naïve→函数", true},
		{"~!@#$%^&*()", true},
		{"x\ny", false},
		{"x\ty", false},
		{"x\r", false},
		{"\x00", false},
		{"\x1f", false},
		{"x\x7f", false},
		{"\x1b[31m", false},
	} {
		if got := ValidFunctionName([]byte(tc.name)); got != tc.want {
			t.Errorf("ValidFunctionName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
