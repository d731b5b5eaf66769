package embedded

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/sirupsen/logrus"
)

// Large payloads (issue 10, item 7: one 50 MiB job raised gserverd's RSS
// by 200-330 MB). Pebble copies a value into its batch, hands the batch
// to its log writer block by block, and a batch that large becomes a
// memtable of its own, flushed at once into a table: the value is copied
// again into a table block and then into its compressed form. A job of
// Options.BlobSize bytes or more is therefore not put in pebble: Add
// writes its payload to a file of its own in the blobs directory (from
// the caller's buffer, no copy), fsyncs it as the sync mode says, and
// only then hands the job to the writer, whose record refers to the file
// by id, size and checksum. Replay reads the file into the job's Data.
//
// Crash safety:
//   - The file is complete (and with Sync: always or interval, fsynced,
//     and the directory fsynced by the writer) before the record that
//     refers to it is written, so a record never names a file that a
//     crash the sync mode covers could lose.
//   - A file with no record (a crash between the two, a failed commit) is
//     an orphan: Open removes it.
//   - A record whose file is missing or has the wrong size is damage:
//     Open refuses the store with a *DamageError, or with AcceptDamage
//     drops those jobs, as with a damaged log. A file whose contents do
//     not match the checksum fails Replay.
//   - A deleted (or replaced) job's file is removed once the delete is as
//     durable as the sync mode makes it: at once with Sync: always and
//     none, after the next fsync of the log with Sync: interval.

// blobDirName is the subdirectory of the store's directory holding the
// payload files.
const blobDirName = "blobs"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// blobPath returns the path of payload file id.
func (s *Store) blobPath(id uint64) string {
	return filepath.Join(s.blobDir, fmt.Sprintf("%016x.blob", id))
}

// parseBlobName returns the id of a payload file's name.
func parseBlobName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".blob")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 64)
	return id, err == nil && id != 0
}

// writeBlobs writes the payload of every job of r of Options.BlobSize
// bytes or more to its own file and records it in r.blobs. On error
// nothing written is left behind.
func (s *Store) writeBlobs(r *request) error {
	for i := range r.jobs {
		if len(r.jobs[i].Data) < s.opts.BlobSize {
			continue
		}
		if r.blobs == nil {
			r.blobs = make([]blobRef, len(r.jobs))
		}
		b, err := s.writeBlob(r.jobs[i].Data)
		if err != nil {
			s.removeBlobs(r.blobIDs())
			return err
		}
		r.blobs[i] = b
	}
	return nil
}

// writeBlob writes data to a new payload file, fsynced unless Sync:
// none. It refuses (ErrNoSpace) when the file would leave less than
// Options.Headroom free, counting the files being written.
func (s *Store) writeBlob(data []byte) (blobRef, error) {
	size := int64(len(data))
	inflight := s.blobBytes.Add(size)
	defer s.blobBytes.Add(-size)
	if free, _, err := s.space.free(); err == nil && free-inflight < s.opts.Headroom {
		return blobRef{}, ErrNoSpace
	}
	b := blobRef{id: s.blobSeq.Add(1), size: size}
	path := s.blobPath(b.id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if isNoSpace(err) {
			return blobRef{}, ErrNoSpace
		}
		return blobRef{}, fmt.Errorf("embedded: create payload file: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && s.opts.Sync != SyncNone {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		if isNoSpace(err) {
			return blobRef{}, ErrNoSpace
		}
		return blobRef{}, fmt.Errorf("embedded: write payload file: %w", err)
	}
	b.sum = crc32.Checksum(data, crcTable)
	return b, nil
}

// errBlobDamaged says a payload file does not hold what its record says.
var errBlobDamaged = errors.New("payload file missing or damaged")

// readBlob reads payload file b.
func (s *Store) readBlob(b blobRef) ([]byte, error) {
	path := s.blobPath(b.id)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBlobDamaged, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBlobDamaged, path, err)
	}
	if st.Size() != b.size {
		return nil, fmt.Errorf("%w: %s has %d bytes, want %d", errBlobDamaged, path, st.Size(), b.size)
	}
	data := make([]byte, b.size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBlobDamaged, path, err)
	}
	if crc32.Checksum(data, crcTable) != b.sum {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", errBlobDamaged, path)
	}
	return data, nil
}

// removeBlobs removes payload files; a missing one is no error.
func (s *Store) removeBlobs(ids []uint64) {
	for _, id := range ids {
		if err := os.Remove(s.blobPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.WithError(err).Warn("store: remove payload file")
		}
	}
}

// syncBlobDir fsyncs the payload directory, so that the files created
// in it survive a machine crash.
func (s *Store) syncBlobDir() error {
	d, err := os.Open(s.blobDir)
	if err != nil {
		return fmt.Errorf("embedded: sync %s: %w", s.blobDir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("embedded: sync %s: %w", s.blobDir, err)
	}
	return nil
}

// unlinkLater removes payload files of deleted jobs once the deletes
// are as durable as the sync mode makes them. Run only.
func (s *Store) unlinkLater(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	if s.opts.Sync != SyncInterval {
		s.removeBlobs(ids)
		return
	}
	s.unlinkMu.Lock()
	s.unlink = append(s.unlink, ids...)
	s.unlinkMu.Unlock()
}

// takeUnlink returns the payload files unlinkLater holds: their deletes
// are written to the log (write(2)); an fsync of the log started after
// this call makes them durable.
func (s *Store) takeUnlink() []uint64 {
	s.unlinkMu.Lock()
	defer s.unlinkMu.Unlock()
	ids := s.unlink
	s.unlink = nil
	return ids
}

// putUnlink gives back files takeUnlink took, when the fsync failed.
func (s *Store) putUnlink(ids []uint64) {
	s.unlinkMu.Lock()
	s.unlink = append(s.unlink, ids...)
	s.unlinkMu.Unlock()
}

// checkBlobs runs at Open, once pebble has replayed its log: it removes
// the payload files no record refers to, and finds the records whose file
// is missing or short. Those are damage: a *DamageError, or with
// AcceptDamage the jobs are dropped (their records deleted; in a
// read-only store, skipped by Replay). The same pass over the index sets
// keyMark.
func (s *Store) checkBlobs() error {
	entries, err := os.ReadDir(s.blobDir)
	if err != nil {
		return fmt.Errorf("embedded: read %s: %w", s.blobDir, err)
	}
	files := map[uint64]int64{}
	var maxID uint64
	for _, e := range entries {
		id, ok := parseBlobName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue // removed meanwhile: nobody else writes here
		}
		files[id] = st.Size()
		maxID = max(maxID, id)
	}
	type lostJob struct {
		ik   []byte
		seq  uint64
		blob blobRef
		why  error
	}
	var lost []lostJob
	used := map[uint64]bool{}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: indexPrefix, UpperBound: jobPrefix})
	if err != nil {
		return fmt.Errorf("embedded: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		e, err := parseIndexValue(it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("embedded: corrupt index entry %x", it.Key())
		}
		s.raiseKeyMark(it.Key())
		seq, blob := e.seq, e.blob
		if blob.id == 0 {
			continue
		}
		used[blob.id] = true
		maxID = max(maxID, blob.id)
		size, ok := files[blob.id]
		switch {
		case !ok:
			lost = append(lost, lostJob{append([]byte(nil), it.Key()...), seq, blob, fmt.Errorf("%w: no such file", errBlobDamaged)})
		case size != blob.size:
			lost = append(lost, lostJob{append([]byte(nil), it.Key()...), seq, blob,
				fmt.Errorf("%w: %d bytes, want %d", errBlobDamaged, size, blob.size)})
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded: scan: %w", err)
	}
	s.blobSeq.Store(maxID)
	var orphans []uint64
	for id := range files {
		if !used[id] {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) > 0 {
		s.log.WithField("files", len(orphans)).Info("store: removing payload files of jobs never stored (a crash or a failed write)")
		s.removeBlobs(orphans)
	}
	if len(lost) == 0 {
		return nil
	}
	first := s.blobPath(lost[0].blob.id)
	l := s.log.WithFields(logrus.Fields{"file": first, "lost_jobs": len(lost)}).WithError(lost[0].why)
	if !s.opts.AcceptDamage {
		l.Error("store payload files missing or damaged; refusing to open the store")
		return &DamageError{File: first, Offset: -1, LostJobs: len(lost), Err: lost[0].why}
	}
	l.Error("store payload files missing or damaged: opening the store without those jobs, as told")
	if s.readOnly {
		s.skip = map[uint64]bool{}
		for _, j := range lost {
			s.skip[j.seq] = true
		}
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, j := range lost {
		if err := b.Delete(jobKey(j.seq), nil); err != nil {
			return fmt.Errorf("embedded: drop damaged jobs: %w", err)
		}
		if err := b.Delete(j.ik, nil); err != nil {
			return fmt.Errorf("embedded: drop damaged jobs: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: drop damaged jobs: %w", err)
	}
	for _, j := range lost {
		if _, ok := files[j.blob.id]; ok {
			path := s.blobPath(j.blob.id)
			if err := os.Rename(path, path+".damaged"); err != nil {
				s.log.WithError(err).Warn("store: keep damaged payload file")
			}
		}
	}
	return nil
}
