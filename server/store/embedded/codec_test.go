package embedded

import (
	"bytes"
	"encoding/binary"
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
		{store.Job{Function: "f", Key: "k", Priority: 1, Data: []byte("v"), Version: 1<<62 + 12345}, blobRef{}},
		{store.Job{Function: "f", Key: store.NewKey(time.Unix(0, 0), 7), Priority: 0, When: -1}, blobRef{}},
		{store.Job{Function: string(make([]byte, 200)), Key: string(make([]byte, 300)), Priority: -70, When: 1 << 62, Data: make([]byte, 1<<16)}, blobRef{}},
		// A large job: the record names its payload file, Data stays out.
		{store.Job{Function: "f", Key: "k", Priority: 1, When: 3, Reducer: "r"}, blobRef{id: 1, size: 50 << 20, sum: 0xdeadbeef}},
		{store.Job{Function: "f", Key: "k", Version: 1<<62 + 12345}, blobRef{id: 9, size: 1 << 20, sum: 7}},
		{store.Job{Function: "f", Version: -1}, blobRef{id: 1<<64 - 1, size: maxBlobSize, sum: 0}},
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
		if got.Function != j.Function || got.Key != j.Key || got.Priority != j.Priority || got.When != j.When ||
			got.Reducer != j.Reducer || got.Version != j.Version || !bytes.Equal(got.Data, j.Data) || blob != tc.blob {
			t.Errorf("round trip = %+v %+v, want %+v %+v", got, blob, j, tc.blob)
		}
		e := indexEntry{seq: 42, version: j.Version, blob: blobRef{id: tc.blob.id, size: tc.blob.size}}
		ie, err := parseIndexValue(e.encode())
		if err != nil || ie != e {
			t.Errorf("index entry round trip = %+v %v, want %+v", ie, err, e)
		}
	}
}

// TestCodecFormats pins the records' first byte and the index entries'
// lengths: format 2 for a payload inline, format 3 for a payload in a
// file, both with the version; 16- and 32-byte index entries.
func TestCodecFormats(t *testing.T) {
	j := store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Version: 3, Data: []byte("data")}
	inline := []byte{2, 2, 'f', 'n', 3, 'k', 'e', 'y', 1, 'r', 2, 10, 6, 'd', 'a', 't', 'a'}
	if b := encodeJob(nil, &j, blobRef{}); !bytes.Equal(b, inline) {
		t.Errorf("inline record = %x, want %x", b, inline)
	}
	file := []byte{3, 2, 'f', 'n', 3, 'k', 'e', 'y', 1, 'r', 2, 10, 6, 4, 0x80, 0x01, 0, 0, 0, 9}
	if b := encodeJob(nil, &j, blobRef{id: 4, size: 128, sum: 9}); !bytes.Equal(b, file) {
		t.Errorf("payload-file record = %x, want %x", b, file)
	}
	if n := len(indexEntry{seq: 1, version: 2}.encode()); n != 16 {
		t.Errorf("index entry of an inline job: %d bytes, want 16", n)
	}
	if n := len(indexEntry{seq: 1, version: 2, blob: blobRef{id: 3, size: 4}}.encode()); n != 32 {
		t.Errorf("index entry of a job with a payload file: %d bytes, want 32", n)
	}
}

// TestCodecFormat1 reads a record as gserverd wrote it before records
// carried a version (format 1, bytes written out here): it decodes, with
// Version 0; so does an 8-byte index entry (seq only).
func TestCodecFormat1(t *testing.T) {
	old := []byte{1, 2, 'f', 'n', 3, 'k', 'e', 'y', 1, 'r', 2, 10, 'd', 'a', 't', 'a'}
	j, blob, err := decodeJob(old)
	if err != nil {
		t.Fatalf("decode a format-1 record: %v", err)
	}
	want := store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Data: []byte("data")}
	if j.Function != want.Function || j.Key != want.Key || j.Reducer != want.Reducer || j.Priority != want.Priority ||
		j.When != want.When || j.Version != 0 || !bytes.Equal(j.Data, want.Data) || blob != (blobRef{}) {
		t.Fatalf("format-1 record = %+v %+v, want %+v", j, blob, want)
	}
	e, err := parseIndexValue(binary.BigEndian.AppendUint64(nil, 77))
	if err != nil || e != (indexEntry{seq: 77}) {
		t.Fatalf("8-byte index entry = %+v %v, want seq 77", e, err)
	}
}

func TestCodecCorrupt(t *testing.T) {
	good := encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Version: 9, Data: []byte("d")}, blobRef{})
	for n := range len(good) - len("d") { // every truncation inside the header
		if _, _, err := decodeJob(good[:n]); err == nil {
			t.Errorf("decode of %d-byte truncation succeeded", n)
		}
	}
	big := encodeJob(nil, &store.Job{Function: "fn", Key: "key", Version: 1 << 40}, blobRef{id: 7, size: 1 << 30, sum: 1})
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
	for _, b := range [][]byte{{0}, {4}, {9}} {
		if _, _, err := decodeJob(b); err == nil {
			t.Errorf("decode of unknown format %d succeeded", b[0])
		}
	}
	tooBig := indexEntry{seq: 1, blob: blobRef{id: 1, size: maxBlobSize + 1}}.encode()
	noID := append(make([]byte, 24), 0, 0, 0, 0, 0, 0, 0, 1) // a size, file id 0
	for _, v := range [][]byte{nil, make([]byte, 7), make([]byte, 9), make([]byte, 24), make([]byte, 31), make([]byte, 33), noID, tooBig} {
		if _, err := parseIndexValue(v); err == nil {
			t.Errorf("parseIndexValue(%x) succeeded", v)
		}
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add(encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Version: 3, Data: []byte("d")}, blobRef{}))
	f.Add(encodeJob(nil, &store.Job{Function: "fn", Key: "key", Reducer: "r", Priority: 1, When: 5, Version: 3}, blobRef{id: 3, size: 1 << 20, sum: 9}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{1, 2, 'f', 'n', 3, 'k', 'e', 'y', 1, 'r', 2, 10, 'd', 'a', 't', 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, blob, err := decodeJob(b)
		if err != nil {
			return
		}
		if blob.id != 0 && (j.Data != nil || blob.size < 0 || blob.size > maxBlobSize) {
			t.Fatalf("large job record decoded with data %d bytes, size %d", len(j.Data), blob.size)
		}
		again, blob2, err := decodeJob(encodeJob(nil, &j, blob))
		if err != nil || again.Function != j.Function || again.Key != j.Key || again.Reducer != j.Reducer ||
			again.Priority != j.Priority || again.When != j.When || again.Version != j.Version ||
			!bytes.Equal(again.Data, j.Data) || blob2 != blob {
			t.Fatalf("re-encode mismatch: %+v %+v vs %+v %+v (%v)", again, blob2, j, blob, err)
		}
	})
}

func FuzzParseIndexValue(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint64(nil, 1))
	f.Add(indexEntry{seq: 1, version: 1 << 62}.encode())
	f.Add(indexEntry{seq: 1 << 40, version: 7, blob: blobRef{id: 5, size: 50 << 20}}.encode())
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := parseIndexValue(v)
		if err != nil {
			return
		}
		if e.blob.id != 0 && (e.blob.size < 0 || e.blob.size > maxBlobSize) {
			t.Fatalf("blob size %d out of bounds", e.blob.size)
		}
		// An 8-byte entry (seq only) is written again as 16 bytes.
		b := e.encode()
		if len(v) != 8 && !bytes.Equal(b, v) {
			t.Fatalf("re-encode of %x = %x", v, b)
		}
		if again, err := parseIndexValue(b); err != nil || again != e {
			t.Fatalf("parse of re-encoded %x = %+v %v, want %+v", b, again, err, e)
		}
	})
}
