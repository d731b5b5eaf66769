package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fuzzLimits are small so the fuzzer reaches every limit quickly.
var fuzzLimits = Limits{MaxPayload: 4096, MaxArgs: 300, MaxLine: 200}

// FuzzDecoder feeds arbitrary bytes, cut at an arbitrary offset, and
// checks: no panic; whole and cut input give the same frames and error;
// the decoder never buffers more than its limits; every decoded packet
// re-encodes to bytes that decode to the same packet, and encode again to
// the same bytes.
func FuzzDecoder(f *testing.F) {
	for _, p := range allValid() {
		f.Add(p, uint16(5))
	}
	for _, l := range textLines {
		f.Add([]byte(l), uint16(1))
	}
	var all []byte
	for i, p := range allValid() {
		all = append(all, p...)
		all = append(all, textLines[i%len(textLines)]...)
	}
	f.Add(all, uint16(len(all)/2))
	f.Add(AppendPacketString(nil, Req, SubmitReduceJob, "f", "u", "r", "", "d"), uint16(13))
	f.Add([]byte("\x00REQ\x00\x00\x00\x07\xff\xff\xff\xff"), uint16(0))
	f.Add([]byte("\x00REX\x00\x00\x00\x07\x00\x00\x00\x00"), uint16(3))
	f.Add([]byte("\x00REQ\x00\x00\x00\x2b\x00\x00\x00\x00"), uint16(3))

	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		whole, errWhole := fuzzFeed(t, NewDecoder(fuzzLimits), data)
		at := int(cut) % (len(data) + 1)
		split, errSplit := fuzzFeed(t, NewDecoder(fuzzLimits), data[:at], data[at:])
		if !equalFrames(whole, split) {
			t.Fatalf("cut at %d: frames differ\nwhole %v\nsplit %v", at, whole, split)
		}
		if (errWhole == nil) != (errSplit == nil) || (errWhole != nil && !sameSentinel(errWhole, errSplit)) {
			t.Fatalf("cut at %d: errors differ: %v / %v", at, errWhole, errSplit)
		}
		for _, fr := range whole {
			if fr.Text {
				if len(fr.Line)+1 > fuzzLimits.MaxLine || strings.Contains(fr.Line, "\n") {
					t.Fatalf("text line %q breaks the line limit or holds LF", fr.Line)
				}
				continue
			}
			if len(fr.Args) > fr.Type.Args() {
				t.Fatalf("%s has %d args, max %d", fr.Type, len(fr.Args), fr.Type.Args())
			}
			p := Packet{Magic: fr.Magic, Type: fr.Type}
			for _, a := range fr.Args {
				p.Args = append(p.Args, []byte(a))
			}
			enc := p.Append(nil)
			again, err := fuzzFeed(t, NewDecoder(fuzzLimits), enc)
			if err != nil || len(again) != 1 || !equalFrames(again, []ownFrame{fr}) {
				t.Fatalf("re-encoding %v gave %v, %v", fr, again, err)
			}
			p2 := Packet{Magic: again[0].Magic, Type: again[0].Type}
			for _, a := range again[0].Args {
				p2.Args = append(p2.Args, []byte(a))
			}
			if enc2 := p2.Append(nil); !bytes.Equal(enc, enc2) {
				t.Fatalf("encoding not stable: %q then %q", enc, enc2)
			}
		}
	})
}

// fuzzFeed is feed with a check of the decoder's buffer bound after every
// call.
func fuzzFeed(t *testing.T, d *Decoder, chunks ...[]byte) ([]ownFrame, error) {
	t.Helper()
	var out []ownFrame
	bound := max(int(fuzzLimits.MaxPayload), fuzzLimits.MaxLine)
	for _, c := range chunks {
		for len(c) > 0 {
			n, f, ok, err := d.Next(c)
			if n < 0 || n > len(c) {
				t.Fatalf("Next consumed %d of %d bytes", n, len(c))
			}
			if len(d.buf) > bound {
				t.Fatalf("decoder buffers %d bytes, bound %d", len(d.buf), bound)
			}
			c = c[n:]
			if err != nil {
				var fe *FrameError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a *FrameError", err)
				}
				return out, err
			}
			if ok {
				out = append(out, own(f))
			} else if len(c) > 0 {
				t.Fatalf("Next returned no frame with %d bytes left", len(c))
			}
		}
	}
	return out, nil
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{ErrBadMagic, ErrBadType, ErrPayloadTooLarge, ErrArgsTooLarge, ErrLineTooLong} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

// FuzzParseCommand checks ParseCommand on any line: no panic, a lower-case
// name without blanks, and the words of the line preserved.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"status", "STATUS", "   status", "show unique jobs", "cancel job H:vm:1",
		"create function newfn", "maxqueue f 1 2 3", "", " ", "\r", "\t", "version\r", "ünïcode Ǆ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c := ParseCommand([]byte(line))
		if c.Name != strings.ToLower(c.Name) || strings.ContainsAny(c.Name, " \t\r\n") {
			t.Fatalf("name %q", c.Name)
		}
		words := strings.Fields(line)
		got := c.Args
		if c.Name != "" {
			got = append([]string{words[0]}, c.Args...)
			if c.Name != strings.ToLower(words[0]) {
				t.Fatalf("name %q, first word %q", c.Name, words[0])
			}
		}
		if strings.Join(got, "\x00") != strings.Join(words, "\x00") || len(got) != len(words) {
			t.Fatalf("words %q, parsed %#v", words, c)
		}
		if len(line) > 0 && line[0] == ' ' && c.Name != "" {
			t.Fatalf("leading space gave name %q", c.Name)
		}
	})
}

// FuzzDecoderAdmit feeds arbitrary bytes to a decoder whose admit
// function refuses some payloads, and checks that whole and cut input
// give the same frames and error, and that a skipped packet has no
// arguments.
func FuzzDecoderAdmit(f *testing.F) {
	for _, p := range allValid() {
		f.Add(p, uint16(5))
	}
	f.Add(AppendPacketString(nil, Req, SubmitJobBg, "f", "u", strings.Repeat("x", 40)), uint16(20))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		dec := func() *Decoder {
			d := NewDecoder(fuzzLimits)
			d.SetAdmit(16, func(typ Type, size uint32) bool { return (uint32(typ)+size)%2 == 0 })
			return d
		}
		whole, errWhole := fuzzFeed(t, dec(), data)
		at := int(cut) % (len(data) + 1)
		split, errSplit := fuzzFeed(t, dec(), data[:at], data[at:])
		if !equalFrames(whole, split) {
			t.Fatalf("cut at %d: frames differ\nwhole %v\nsplit %v", at, whole, split)
		}
		if (errWhole == nil) != (errSplit == nil) || (errWhole != nil && !sameSentinel(errWhole, errSplit)) {
			t.Fatalf("cut at %d: errors differ: %v / %v", at, errWhole, errSplit)
		}
		for _, fr := range whole {
			if fr.Skipped && len(fr.Args) != 0 {
				t.Fatalf("skipped %v has arguments", fr)
			}
		}
	})
}
