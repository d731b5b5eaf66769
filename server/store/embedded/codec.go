package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gworkerd/gworkerd/server/store"
)

// The first byte of every stored job says how its payload is kept.
const (
	// codecInline: the payload follows the header in the record.
	codecInline = 1
	// codecBlob: the payload is in its own file (blob.go); the record
	// ends with the file's id, size and checksum.
	codecBlob = 2
)

// blobRef names the payload file of a large job: id 0 means none.
type blobRef struct {
	id   uint64
	size int64
	sum  uint32 // CRC-32C of the payload
}

// encodeJob appends j's record to b:
//
//	version(1) uvarint(len fn) fn uvarint(len key) key uvarint(len reducer) reducer
//	varint(priority) varint(when) data...
//
// or, when blob names the payload's file, version 2 and the same header
// followed by uvarint(id) uvarint(size) crc32c(4, big-endian) instead of
// the data.
func encodeJob(b []byte, j *store.Job, blob blobRef) []byte {
	version := byte(codecInline)
	if blob.id != 0 {
		version = codecBlob
	}
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(j.Function)))
	b = append(b, j.Function...)
	b = binary.AppendUvarint(b, uint64(len(j.Key)))
	b = append(b, j.Key...)
	b = binary.AppendUvarint(b, uint64(len(j.Reducer)))
	b = append(b, j.Reducer...)
	b = binary.AppendVarint(b, int64(j.Priority))
	b = binary.AppendVarint(b, j.When)
	if blob.id != 0 {
		b = binary.AppendUvarint(b, blob.id)
		b = binary.AppendUvarint(b, uint64(blob.size))
		return binary.BigEndian.AppendUint32(b, blob.sum)
	}
	return append(b, j.Data...)
}

// encodedLen is the length of encodeJob's record of j.
func encodedLen(j *store.Job, blob blobRef) int {
	var b [binary.MaxVarintLen64]byte
	uv := func(n uint64) int { return binary.PutUvarint(b[:], n) }
	n := 1 + uv(uint64(len(j.Function))) + len(j.Function) + uv(uint64(len(j.Key))) + len(j.Key) +
		uv(uint64(len(j.Reducer))) + len(j.Reducer) +
		binary.PutVarint(b[:], int64(j.Priority)) + binary.PutVarint(b[:], j.When)
	if blob.id != 0 {
		return n + uv(blob.id) + uv(uint64(blob.size)) + 4
	}
	return n + len(j.Data)
}

var errCorrupt = errors.New("corrupt job record")

// maxBlobSize bounds the payload size a record may claim, so that a
// corrupt record cannot make Replay allocate without bound (the protocol
// caps a packet far below it).
const maxBlobSize = 1 << 40

// decodeJob parses a record made by encodeJob; the job owns its memory.
// For a record whose payload is in a file, the job has no Data and blob
// names the file.
func decodeJob(b []byte) (j store.Job, blob blobRef, err error) {
	if len(b) == 0 || (b[0] != codecInline && b[0] != codecBlob) {
		return j, blob, fmt.Errorf("%w: unknown version", errCorrupt)
	}
	version := b[0]
	b = b[1:]
	str := func() (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", errCorrupt
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	num := func() (int64, error) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, errCorrupt
		}
		b = b[k:]
		return v, nil
	}
	unum := func() (uint64, error) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, errCorrupt
		}
		b = b[k:]
		return v, nil
	}
	if j.Function, err = str(); err != nil {
		return j, blob, err
	}
	if j.Key, err = str(); err != nil {
		return j, blob, err
	}
	if j.Reducer, err = str(); err != nil {
		return j, blob, err
	}
	p, err := num()
	if err != nil {
		return j, blob, err
	}
	j.Priority = int(p)
	if j.When, err = num(); err != nil {
		return j, blob, err
	}
	if version == codecBlob {
		id, err := unum()
		if err != nil || id == 0 {
			return j, blob, errCorrupt
		}
		size, err := unum()
		if err != nil || size > maxBlobSize || len(b) != 4 {
			return j, blob, errCorrupt
		}
		return j, blobRef{id: id, size: int64(size), sum: binary.BigEndian.Uint32(b)}, nil
	}
	if len(b) > 0 {
		j.Data = append([]byte(nil), b...)
	}
	return j, blob, nil
}

// indexValue is the value of a job's index entry: its sequence number,
// and for a job whose payload is in a file, the file's id and size (so
// that deleting the job and checking the files at Open need not read
// the job's record).
func indexValue(seq uint64, blob blobRef) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 24), seq)
	if blob.id == 0 {
		return v
	}
	v = binary.BigEndian.AppendUint64(v, blob.id)
	return binary.BigEndian.AppendUint64(v, uint64(blob.size))
}

// parseIndexValue parses indexValue's encoding; the blob's checksum is
// not in it.
func parseIndexValue(v []byte) (seq uint64, blob blobRef, err error) {
	switch len(v) {
	case 8:
		return binary.BigEndian.Uint64(v), blob, nil
	case 24:
		blob.id = binary.BigEndian.Uint64(v[8:])
		size := binary.BigEndian.Uint64(v[16:])
		if blob.id == 0 || size > maxBlobSize {
			return 0, blobRef{}, errCorrupt
		}
		blob.size = int64(size)
		return binary.BigEndian.Uint64(v), blob, nil
	}
	return 0, blobRef{}, errCorrupt
}
