package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gworkerd/gworkerd/server/store"
)

// The first byte of every stored job is its record's format.
const (
	// formatV1: the payload follows the header in the record; no
	// version. Written by gserverds from before versioned deletes; read
	// only, with Version 0.
	formatV1 = 1
	// formatInline: the payload follows the header and the job's
	// store.Job.Version in the record.
	formatInline = 2
	// formatBlob: the payload is in its own file (blob.go); the record
	// ends with the job's version and the file's id, size and checksum.
	formatBlob = 3
)

// blobRef names the payload file of a large job: id 0 means none.
type blobRef struct {
	id   uint64
	size int64
	sum  uint32 // CRC-32C of the payload
}

// encodeJob appends j's record to b:
//
//	format(1) uvarint(len fn) fn uvarint(len key) key uvarint(len reducer) reducer
//	varint(priority) varint(when) varint(version) data...
//
// with format 2, or, when blob names the payload's file, format 3 and
// the same header followed by uvarint(id) uvarint(size) crc32c(4,
// big-endian) instead of the data. Format 1 (read only) is format 2
// without varint(version).
func encodeJob(b []byte, j *store.Job, blob blobRef) []byte {
	format := byte(formatInline)
	if blob.id != 0 {
		format = formatBlob
	}
	b = append(b, format)
	b = binary.AppendUvarint(b, uint64(len(j.Function)))
	b = append(b, j.Function...)
	b = binary.AppendUvarint(b, uint64(len(j.Key)))
	b = append(b, j.Key...)
	b = binary.AppendUvarint(b, uint64(len(j.Reducer)))
	b = append(b, j.Reducer...)
	b = binary.AppendVarint(b, int64(j.Priority))
	b = binary.AppendVarint(b, j.When)
	b = binary.AppendVarint(b, j.Version)
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
		binary.PutVarint(b[:], int64(j.Priority)) + binary.PutVarint(b[:], j.When) +
		binary.PutVarint(b[:], j.Version)
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

// decodeJob parses a record made by encodeJob, or by an older gserverd
// (format 1); the job owns its memory. For a record whose payload is in
// a file, the job has no Data and blob names the file.
func decodeJob(b []byte) (j store.Job, blob blobRef, err error) {
	if len(b) == 0 || (b[0] != formatV1 && b[0] != formatInline && b[0] != formatBlob) {
		return j, blob, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	format := b[0]
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
	if format != formatV1 {
		if j.Version, err = num(); err != nil {
			return j, blob, err
		}
	}
	if format == formatBlob {
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

// indexEntry is the value of a job's index key: the seq of the job's
// record, its store.Job.Version, and for a job whose payload is in a
// file, the file's id and size (so that deleting the job and checking
// the files at Open need not read the job's record; the checksum is in
// the record only).
type indexEntry struct {
	seq     uint64
	version int64
	blob    blobRef
}

// encode returns e's encoding, 8 bytes big-endian each:
//
//	seq version              (16 bytes) a job with its payload inline
//	seq version id size      (32 bytes) a job with a payload file
//
// Entries written by gserverds from before versioned deletes hold the
// seq only (8 bytes; version 0), and are still read.
func (e indexEntry) encode() []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 32), e.seq)
	v = binary.BigEndian.AppendUint64(v, uint64(e.version))
	if e.blob.id == 0 {
		return v
	}
	v = binary.BigEndian.AppendUint64(v, e.blob.id)
	return binary.BigEndian.AppendUint64(v, uint64(e.blob.size))
}

// parseIndexValue parses an index entry of any of encode's lengths, or
// of 8 bytes (seq only).
func parseIndexValue(v []byte) (indexEntry, error) {
	var e indexEntry
	switch len(v) {
	case 8:
		e.seq = binary.BigEndian.Uint64(v)
	case 16:
		e.seq = binary.BigEndian.Uint64(v)
		e.version = int64(binary.BigEndian.Uint64(v[8:]))
	case 32:
		id := binary.BigEndian.Uint64(v[16:])
		size := binary.BigEndian.Uint64(v[24:])
		if id == 0 || size > maxBlobSize {
			return indexEntry{}, errCorrupt
		}
		e.seq = binary.BigEndian.Uint64(v)
		e.version = int64(binary.BigEndian.Uint64(v[8:]))
		e.blob = blobRef{id: id, size: int64(size)}
	default:
		return indexEntry{}, errCorrupt
	}
	return e, nil
}
