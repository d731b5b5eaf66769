package jobs

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrameRoundTripAtEverySplit(t *testing.T) {
	t.Parallel()
	want := JobFrame{Handle: "H:x:1", Function: "rev", Unique: "u\x00", Attempt: 2, Workload: []byte("a\x00b\xff")}
	wire := AppendJobFrame(nil, want)
	wire = AppendFrame(wire, FrameComplete, true, []byte("res\x00ult"))
	for split := 0; split <= len(wire); split++ {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(wire[:split]), bytes.NewReader(wire[split:])))
		f, err := ReadFrame(r, 0)
		if err != nil || f.Type != FrameJob {
			t.Fatalf("split %d: %v, %q", split, err, f.Type)
		}
		got, err := ParseJobFrame(f.Body)
		if err != nil || got.Handle != want.Handle || got.Unique != want.Unique || got.Attempt != 2 || !bytes.Equal(got.Workload, want.Workload) {
			t.Fatalf("split %d: %+v, %v", split, got, err)
		}
		f, err = ReadFrame(r, 0)
		if err != nil || f.Type != FrameComplete || string(f.Body) != "res\x00ult" {
			t.Fatalf("split %d: second frame %q %q %v", split, f.Type, f.Body, err)
		}
		if _, err := ReadFrame(r, 0); err != io.EOF {
			t.Fatalf("split %d: after the frames: %v, want EOF", split, err)
		}
	}
}

func TestFrameErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		wire string
		max  int
		want error
	}{
		{"too long", "C\x00\x00\x01\x00", 255, ErrFrame},
		{"4 GiB header not allocated", "C\xff\xff\xff\xff", 0, ErrFrame},
		{"cut body", "C\x00\x00\x00\x05abc", 0, io.ErrUnexpectedEOF},
		{"cut header", "C\x00\x00", 0, io.ErrUnexpectedEOF},
	} {
		_, err := ReadFrame(bufio.NewReader(strings.NewReader(tc.wire)), tc.max)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, body := range []string{"", "\x00\x00\x00\x09abc", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x00\x00"} {
		if _, err := ParseJobFrame([]byte(body)); !errors.Is(err, ErrFrame) {
			t.Errorf("ParseJobFrame(%q): %v, want ErrFrame", body, err)
		}
	}
	if _, _, err := ParseStatus([]byte("1234567")); !errors.Is(err, ErrFrame) {
		t.Errorf("ParseStatus of 7 bytes: %v", err)
	}
}

// FuzzReadFrame: any input reads as frames or fails cleanly, never
// allocating past the limit; a J frame that parses re-encodes the same.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendJobFrame(nil, JobFrame{Handle: "H:1", Function: "f", Attempt: 1, Workload: []byte("w")}))
	f.Add(AppendFrame(nil, FrameStatus, true, []byte{0, 0, 0, 1, 0, 0, 0, 2}))
	f.Add([]byte("C\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			fr, err := ReadFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(fr.Body) > 1<<16 {
				t.Fatalf("body of %d bytes past the limit", len(fr.Body))
			}
			if fr.Type == FrameJob {
				j, err := ParseJobFrame(fr.Body)
				if err != nil {
					continue
				}
				again, err := ParseJobFrame(AppendJobFrame(nil, j)[frameHeader:])
				if err != nil || again.Handle != j.Handle || !bytes.Equal(again.Workload, j.Workload) || again.Attempt != j.Attempt {
					t.Fatalf("round trip: %+v -> %+v, %v", j, again, err)
				}
			}
		}
	})
}
