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
			got.When != j.When || got.Reducer != j.Reducer || !bytes.Equal(got.Data, j.Data) {
			t.Errorf("round trip = %+v, want %+v", got, j)
		}
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
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJob(b)
		if err != nil {
			return
		}
		again, err := decodeJob(encodeJob(nil, &j))
		if err != nil || again.Function != j.Function || again.Key != j.Key || !bytes.Equal(again.Data, j.Data) {
			t.Fatalf("re-encode mismatch: %+v vs %+v (%v)", again, j, err)
		}
	})
}
