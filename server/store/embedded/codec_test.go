package embedded

import (
	"bytes"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []store.Job{
		{},
		{Function: "f", Key: "k", Priority: 2, Data: []byte{0, 1, 2}, When: 1700000000, Reducer: "r"},
		{Function: "f", Key: "k", Priority: 1, Data: []byte("v"), Version: 1<<62 + 12345},
		{Function: "f", Key: store.NewKey(time.Unix(0, 0), 7), Priority: 0, When: -1},
		{Function: string(make([]byte, 200)), Key: string(make([]byte, 300)), Priority: -70, When: 1 << 62, Data: make([]byte, 1<<16)},
	}
	for _, j := range tests {
		b := encodeJob(nil, &j)
		if n := encodedLen(&j); n != len(b) {
			t.Errorf("encodedLen(%+v) = %d, want %d", j, n, len(b))
		}
		got, err := decodeJob(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", j, err)
		}
		if got.Function != j.Function || got.Key != j.Key || got.Priority != j.Priority ||
			got.When != j.When || got.Reducer != j.Reducer || got.Version != j.Version || !bytes.Equal(got.Data, j.Data) {
			t.Errorf("round trip = %+v, want %+v", got, j)
		}
	}
}

// TestCodecFormat1 reads a record as gserverd wrote it before records
// carried a version (format 1, bytes written out here): it decodes, with
// Version 0.
func TestCodecFormat1(t *testing.T) {
	old := []byte{1, 2, 'f', 'n', 3, 'k', 'e', 'y', 1, 'r', 2, 10, 'd', 'a', 't', 'a'}
	j, err := decodeJob(old)
	if err != nil {
		t.Fatalf("decode a format-1 record: %v", err)
	}
	want := store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Data: []byte("data")}
	if j.Function != want.Function || j.Key != want.Key || j.Reducer != want.Reducer || j.Priority != want.Priority ||
		j.When != want.When || j.Version != 0 || !bytes.Equal(j.Data, want.Data) {
		t.Fatalf("format-1 record = %+v, want %+v", j, want)
	}
}

func TestCodecCorrupt(t *testing.T) {
	good := encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Data: []byte("d")})
	for n := range len(good) - len("d") { // every truncation inside the header
		if _, err := decodeJob(good[:n]); err == nil {
			t.Errorf("decode of %d-byte truncation succeeded", n)
		}
	}
	if _, err := decodeJob([]byte{9}); err == nil {
		t.Error("decode of unknown version succeeded")
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add(encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Data: []byte("d")}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{1, 2, 'f', 'n', 3, 'k', 'e', 'y', 1, 'r', 2, 10, 'd', 'a', 't', 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJob(b)
		if err != nil {
			return
		}
		again, err := decodeJob(encodeJob(nil, &j))
		if err != nil || again.Function != j.Function || again.Key != j.Key || again.Version != j.Version || !bytes.Equal(again.Data, j.Data) {
			t.Fatalf("re-encode mismatch: %+v vs %+v (%v)", again, j, err)
		}
	})
}
