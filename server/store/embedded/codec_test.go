package embedded

import (
	"bytes"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []struct {
		job  store.Job
		blob blobRef
	}{
		{store.Job{}, blobRef{}},
		{store.Job{Function: "f", Key: "k", Priority: 2, Data: []byte{0, 1, 2}, When: 1700000000, Reducer: "r"}, blobRef{}},
		{store.Job{Function: "f", Key: store.NewKey(time.Unix(0, 0), 7), Priority: 0, When: -1}, blobRef{}},
		{store.Job{Function: string(make([]byte, 200)), Key: string(make([]byte, 300)), Priority: -70, When: 1 << 62, Data: make([]byte, 1<<16)}, blobRef{}},
		// A large job: the record names its payload file, Data stays out.
		{store.Job{Function: "f", Key: "k", Priority: 1, When: 3, Reducer: "r"}, blobRef{id: 1, size: 50 << 20, sum: 0xdeadbeef}},
		{store.Job{Function: "f"}, blobRef{id: 1<<64 - 1, size: maxBlobSize, sum: 0}},
	}
	for _, tc := range tests {
		j := tc.job
		b := encodeJob(nil, &j, tc.blob)
		if n := encodedLen(&j, tc.blob); n != len(b) {
			t.Errorf("encodedLen(%+v, %+v) = %d, want %d", j, tc.blob, n, len(b))
		}
		got, blob, err := decodeJob(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", j, err)
		}
		if got.Function != j.Function || got.Key != j.Key || got.Priority != j.Priority ||
			got.When != j.When || got.Reducer != j.Reducer || !bytes.Equal(got.Data, j.Data) || blob != tc.blob {
			t.Errorf("round trip = %+v %+v, want %+v %+v", got, blob, j, tc.blob)
		}
		seq, iblob, err := parseIndexValue(indexValue(42, tc.blob))
		if err != nil || seq != 42 || iblob.id != tc.blob.id || iblob.size != tc.blob.size {
			t.Errorf("index value round trip = %d %+v %v, want 42 %+v", seq, iblob, err, tc.blob)
		}
	}
}

func TestCodecCorrupt(t *testing.T) {
	good := encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Data: []byte("d")}, blobRef{})
	for n := range len(good) - len("d") { // every truncation inside the header
		if _, _, err := decodeJob(good[:n]); err == nil {
			t.Errorf("decode of %d-byte truncation succeeded", n)
		}
	}
	big := encodeJob(nil, &store.Job{Function: "fn", Key: "key"}, blobRef{id: 7, size: 1 << 30, sum: 1})
	for n := range len(big) { // every truncation of a large job's record
		if _, _, err := decodeJob(big[:n]); err == nil {
			t.Errorf("decode of %d-byte truncation of a large job's record succeeded", n)
		}
	}
	if _, _, err := decodeJob(append(big, 0)); err == nil {
		t.Error("decode of a large job's record with a trailing byte succeeded")
	}
	if _, _, err := decodeJob(encodeJob(nil, &store.Job{}, blobRef{id: 7, size: maxBlobSize + 1})); err == nil {
		t.Error("decode of a payload file larger than maxBlobSize succeeded")
	}
	if _, _, err := decodeJob([]byte{9}); err == nil {
		t.Error("decode of unknown version succeeded")
	}
	for _, v := range [][]byte{nil, make([]byte, 7), make([]byte, 16), make([]byte, 24), append(make([]byte, 16), 0xff, 0, 0, 0, 0, 0, 0, 0)} {
		if _, _, err := parseIndexValue(v); err == nil {
			t.Errorf("parseIndexValue(%x) succeeded", v)
		}
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add(encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Data: []byte("d")}, blobRef{}))
	f.Add(encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5}, blobRef{id: 3, size: 1 << 20, sum: 9}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, blob, err := decodeJob(b)
		if err != nil {
			return
		}
		if blob.id != 0 && (j.Data != nil || blob.size < 0 || blob.size > maxBlobSize) {
			t.Fatalf("large job record decoded with data %d bytes, size %d", len(j.Data), blob.size)
		}
		again, blob2, err := decodeJob(encodeJob(nil, &j, blob))
		if err != nil || again.Function != j.Function || again.Key != j.Key || !bytes.Equal(again.Data, j.Data) || blob2 != blob {
			t.Fatalf("re-encode mismatch: %+v %+v vs %+v %+v (%v)", again, blob2, j, blob, err)
		}
	})
}

func FuzzParseIndexValue(f *testing.F) {
	f.Add(indexValue(1, blobRef{}))
	f.Add(indexValue(1<<40, blobRef{id: 5, size: 50 << 20}))
	f.Fuzz(func(t *testing.T, v []byte) {
		seq, blob, err := parseIndexValue(v)
		if err != nil {
			return
		}
		if blob.id != 0 && (blob.size < 0 || blob.size > maxBlobSize) {
			t.Fatalf("blob size %d out of bounds", blob.size)
		}
		if !bytes.Equal(indexValue(seq, blob), v) {
			t.Fatalf("re-encode of %x = %x", v, indexValue(seq, blob))
		}
	})
}
