// Package queuefile moves queues between stores: Export writes every
// stored job as JSON lines, Import reads them back into any store, and
// ImportGearmandSQLite reads the queue file of gearmand's libsqlite3 plugin.
// They back `gserverd queue export|import [--from-gearmand-sqlite FILE]`.
//
// One line per job:
//
//	{"function":"resize","key":"u1","priority":1,"when":0,"reducer":"","data":"aGVsbG8="}
//
// data is base64. A function, key or reducer that is not valid UTF-8 is
// written base64-encoded in function_b64, key_b64 or reducer_b64 instead,
// so every byte survives. A line is at most MaxLine bytes.
//
// A record's store.Job.Version is not written: it only orders the
// server's adds and deletes within one store, so imported jobs have none
// (0, older than any delete), like the jobs gearmand writes.
//
// The SQLite file is read with modernc.org/sqlite, a pure-Go SQLite (no
// cgo, no sqlite3 program needed), opened read-only.
package queuefile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gworkerd/gworkerd/server/store"
)

// MaxLine bounds one line of a queue file: a 64 MiB payload in base64 plus
// the other fields.
const MaxLine = 96 << 20

// batchJobs and batchBytes bound one Add during Import.
const (
	batchJobs  = 1000
	batchBytes = 16 << 20
)

// ErrLineTooLong is returned for a line longer than MaxLine.
var ErrLineTooLong = errors.New("queuefile: line too long")

type line struct {
	Function    string `json:"function,omitempty"`
	FunctionB64 []byte `json:"function_b64,omitempty"`
	Key         string `json:"key"`
	KeyB64      []byte `json:"key_b64,omitempty"`
	Priority    int    `json:"priority"`
	When        int64  `json:"when"`
	Reducer     string `json:"reducer,omitempty"`
	ReducerB64  []byte `json:"reducer_b64,omitempty"`
	Data        []byte `json:"data"`
}

// split stores s in str, or in b64 when it is not valid UTF-8.
func split(s string, str *string, b64 *[]byte) {
	if utf8.ValidString(s) {
		*str = s
	} else {
		*b64 = []byte(s)
	}
}

func join(str string, b64 []byte) string {
	if b64 != nil {
		return string(b64)
	}
	return str
}

// MarshalJob returns the JSON line of j, without the newline.
func MarshalJob(j store.Job) ([]byte, error) {
	var l line
	split(j.Function, &l.Function, &l.FunctionB64)
	split(j.Key, &l.Key, &l.KeyB64)
	split(j.Reducer, &l.Reducer, &l.ReducerB64)
	l.Priority, l.When, l.Data = j.Priority, j.When, j.Data
	if l.Data == nil {
		l.Data = []byte{}
	}
	return json.Marshal(&l)
}

// UnmarshalJob parses one JSON line.
func UnmarshalJob(b []byte) (store.Job, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return store.Job{}, err
	}
	if dec.More() {
		return store.Job{}, errors.New("trailing data after the job")
	}
	j := store.Job{
		Function: join(l.Function, l.FunctionB64),
		Key:      join(l.Key, l.KeyB64),
		Reducer:  join(l.Reducer, l.ReducerB64),
		Priority: l.Priority,
		When:     l.When,
	}
	if len(l.Data) > 0 {
		j.Data = l.Data
	}
	if j.Function == "" {
		return j, errors.New("empty function")
	}
	if j.Priority < 0 || j.Priority > 2 {
		return j, fmt.Errorf("priority %d: want 0, 1 or 2", j.Priority)
	}
	return j, nil
}

// Export writes every job of s to w, one JSON line each, in replay order,
// and returns how many it wrote.
func Export(ctx context.Context, s store.Store, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	n := 0
	err := s.Replay(ctx, func(j store.Job) error {
		b, err := MarshalJob(j)
		if err != nil {
			return fmt.Errorf("queuefile: export job %q: %w", j.Key, err)
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("queuefile: export: %w", err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("queuefile: export: %w", err)
	}
	return n, nil
}

// Import adds every job read from r to s, in batches, and returns how many
// it added. Blank lines are skipped. On a bad line it stops and names the
// line; the jobs before it are already stored.
func Import(ctx context.Context, r io.Reader, s store.Store) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var (
		batch []store.Job
		size  int
		n     int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.Add(ctx, batch...); err != nil {
			return fmt.Errorf("queuefile: import: %w", err)
		}
		n += len(batch)
		batch, size = batch[:0], 0
		return nil
	}
	for lineNo := 1; ; lineNo++ {
		b, err := readLine(br, MaxLine)
		if errors.Is(err, io.EOF) && len(b) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return n, fmt.Errorf("queuefile: import line %d: %w", lineNo, err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		j, perr := UnmarshalJob(b)
		if perr != nil {
			return n, fmt.Errorf("queuefile: import line %d: %w", lineNo, perr)
		}
		batch = append(batch, j)
		size += len(j.Data)
		if len(batch) >= batchJobs || size >= batchBytes {
			if err := flush(); err != nil {
				return n, err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	return n, flush()
}

// readLine reads one line without its newline, at most MaxLine bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(out)+len(chunk) > max+1 {
			return nil, ErrLineTooLong
		}
		out = append(out, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return out, err
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(out, []byte{'\n'}), []byte{'\r'}), nil
	}
}
