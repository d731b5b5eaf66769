package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/record"
	"github.com/sirupsen/logrus"
)

// Pebble replays a write-ahead log up to its first unreadable record and
// takes the rest for the unwritten tail a crash leaves, logging that at
// debug level only; opening then flushes what it read, so the loss is
// permanent. A tail never has readable records of the same log after the
// unreadable one, while damage in the middle of a log does. checkLogs
// reads every log before pebble opens the store and tells the two apart.

// logBlock is the block size of pebble's log format: every block starts
// with a chunk header, so reading can resume at any block boundary.
const logBlock = 32 << 10

// logScan is what scanLog found in one log.
type logScan struct {
	damaged bool
	offset  int64 // where reading stopped
	err     error // why
	lost    int   // jobs added from offset on, or -1 when unknown
}

// checkLogs scans the logs in dir. A damaged one is logged at error level
// and, unless accept, returned as a *DamageError.
func checkLogs(dir string, accept bool, log logrus.FieldLogger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("embedded: read %s: %w", dir, err)
	}
	type logFile struct {
		name string
		num  uint64
	}
	var logs []logFile
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !isLog(name) {
			continue
		}
		num, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64)
		if err != nil {
			continue
		}
		logs = append(logs, logFile{name, num})
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].num < logs[j].num })
	for _, lf := range logs {
		path := filepath.Join(dir, lf.name)
		sc, err := scanLog(path, lf.num)
		if err != nil {
			return err
		}
		if !sc.damaged {
			continue
		}
		lost := "unknown"
		if sc.lost >= 0 {
			lost = strconv.Itoa(sc.lost)
		}
		l := log.WithFields(logrus.Fields{"file": path, "offset": sc.offset, "lost_jobs": lost}).WithError(sc.err)
		if !accept {
			l.Error("store log damaged: readable records follow an unreadable part; refusing to open the store")
			return &DamageError{File: path, Offset: sc.offset, LostJobs: sc.lost, Err: sc.err}
		}
		l.WithField("copy", path+".damaged").Error("store log damaged: opening the store without the jobs stored from the damage on, as told; the log as found is kept in copy")
		if err := cutLog(path, sc.offset); err != nil {
			return err
		}
	}
	return nil
}

// cutLog keeps a copy of the log at path in path+".damaged" and truncates
// the log at offset, so that pebble reads it to the damage and no
// further (it refuses a log that is not the newest and does not end
// cleanly).
func cutLog(path string, offset int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("embedded: keep a copy of the damaged log: %w", err)
	}
	if err := os.WriteFile(path+".damaged", b, 0o600); err != nil {
		return fmt.Errorf("embedded: keep a copy of the damaged log: %w", err)
	}
	if err := os.Truncate(path, offset); err != nil {
		return fmt.Errorf("embedded: cut the damaged log: %w", err)
	}
	return nil
}

// scanLog reads the log at path, whose file number is num.
func scanLog(path string, num uint64) (logScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return logScan{}, fmt.Errorf("embedded: read log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return logScan{}, fmt.Errorf("embedded: read log: %w", err)
	}
	size := st.Size()

	var sc logScan
	var lastSeq uint64 // the highest job sequence number read before the damage
	rr := record.NewReader(f, pebble.FileNum(num))
	for {
		off := rr.Offset()
		seq, err := readRecord(rr)
		if errors.Is(err, io.EOF) {
			return sc, nil
		}
		if err != nil {
			sc.offset, sc.err = off, err
			break
		}
		lastSeq = max(lastSeq, seq)
	}

	// Look for readable records of this log after the stop, block by block.
	var after int     // records found
	var maxSeq uint64 // the highest job sequence number among them
	for blk := sc.offset/logBlock + 1; blk*logBlock < size; blk++ {
		start := blk * logBlock
		rr := record.NewReader(io.NewSectionReader(f, start, size-start), pebble.FileNum(num))
		for {
			seq, err := readRecord(rr)
			if err != nil {
				break
			}
			after++
			maxSeq = max(maxSeq, seq)
		}
		if end := start + rr.Offset(); end > start+logBlock {
			blk = end/logBlock - 1 // resume after what this reader read
		}
	}
	if after == 0 {
		return logScan{}, nil // an unwritten or torn tail
	}
	sc.damaged = true
	sc.lost = -1
	if maxSeq > lastSeq {
		// Sequence numbers go up by one per added job: the jobs added
		// between the last readable one and the last one after the damage.
		sc.lost = int(maxSeq - lastSeq)
	}
	return sc, nil
}

// readRecord reads the next record, a pebble batch, and returns the
// highest job sequence number it sets (0 if none).
func readRecord(rr *record.Reader) (uint64, error) {
	r, err := rr.Next()
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	br, _ := pebble.ReadBatch(b)
	var seq uint64
	for {
		kind, k, _, ok, err := br.Next()
		if err != nil {
			return 0, fmt.Errorf("embedded: corrupt batch: %w", err)
		}
		if !ok {
			return seq, nil
		}
		if kind == pebble.InternalKeyKindSet && len(k) == 9 && k[0] == jobPrefix[0] {
			seq = max(seq, binary.BigEndian.Uint64(k[1:]))
		}
	}
}
