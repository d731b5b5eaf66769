package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gworkerd/gworkerd/server/store"
)

// codecVersion is the first byte of every stored job: 2 since records
// carry their store.Job.Version; records of format 1 (written by older
// gserverds, without it) are still read, with Version 0.
const (
	codecVersion   = 2
	codecVersionV1 = 1
)

// encodeJob appends j's record to b:
//
//	format(1) uvarint(len fn) fn uvarint(len key) key uvarint(len reducer) reducer
//	varint(priority) varint(when) varint(version) data...
//
// Format 1 is the same without varint(version).
func encodeJob(b []byte, j *store.Job) []byte {
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(len(j.Function)))
	b = append(b, j.Function...)
	b = binary.AppendUvarint(b, uint64(len(j.Key)))
	b = append(b, j.Key...)
	b = binary.AppendUvarint(b, uint64(len(j.Reducer)))
	b = append(b, j.Reducer...)
	b = binary.AppendVarint(b, int64(j.Priority))
	b = binary.AppendVarint(b, j.When)
	b = binary.AppendVarint(b, j.Version)
	return append(b, j.Data...)
}

// encodedLen is the length of encodeJob's record of j.
func encodedLen(j *store.Job) int {
	uv := func(n int) int {
		var b [binary.MaxVarintLen64]byte
		return binary.PutUvarint(b[:], uint64(n)) + n
	}
	var b [binary.MaxVarintLen64]byte
	return 1 + uv(len(j.Function)) + uv(len(j.Key)) + uv(len(j.Reducer)) +
		binary.PutVarint(b[:], int64(j.Priority)) + binary.PutVarint(b[:], j.When) +
		binary.PutVarint(b[:], j.Version) + len(j.Data)
}

var errCorrupt = errors.New("corrupt job record")

// decodeJob parses a record made by encodeJob, or by an older gserverd
// (format 1); the job owns its memory.
func decodeJob(b []byte) (store.Job, error) {
	var j store.Job
	if len(b) == 0 || (b[0] != codecVersion && b[0] != codecVersionV1) {
		return j, fmt.Errorf("%w: unknown version", errCorrupt)
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
	var err error
	if j.Function, err = str(); err != nil {
		return j, err
	}
	if j.Key, err = str(); err != nil {
		return j, err
	}
	if j.Reducer, err = str(); err != nil {
		return j, err
	}
	p, err := num()
	if err != nil {
		return j, err
	}
	j.Priority = int(p)
	if j.When, err = num(); err != nil {
		return j, err
	}
	if format == codecVersion {
		if j.Version, err = num(); err != nil {
			return j, err
		}
	}
	if len(b) > 0 {
		j.Data = append([]byte(nil), b...)
	}
	return j, nil
}
