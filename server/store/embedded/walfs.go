package embedded

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/vfs"
)

// walFS is the filesystem of a store with Sync: interval or none. Such a
// store still commits every batch with pebble.Sync, so that Commit
// returns only once pebble's log writer has handed the batch to the
// kernel with write(2): a crash of the process then loses nothing that
// Add acknowledged. (With pebble.NoSync, Commit returns while the batch
// may still sit in the writer's 32 KiB block buffer, which a SIGKILL
// loses.) What walFS changes is the fsync: the log files' Sync, SyncData
// and SyncTo return at once, and the real fsync happens in syncAll, which
// the store's syncer calls every SyncInterval (Sync: interval), or never
// (Sync: none). Everything else (tables, MANIFEST, directories) is synced
// as pebble asks, so the database stays consistent after a machine crash.
type walFS struct {
	vfs.FS
	fsync bool // false with Sync: none: log files are never fsynced

	syncs atomic.Uint64 // log fsyncs done, for tests

	mu    sync.Mutex // guards files
	files map[*walFile]struct{}
}

func newWALFS(fs vfs.FS, fsync bool) *walFS {
	return &walFS{FS: fs, fsync: fsync, files: map[*walFile]struct{}{}}
}

// isLog reports whether name is one of pebble's write-ahead logs
// ("000123.log").
func isLog(name string) bool { return strings.HasSuffix(name, ".log") }

// Create creates a file; a log file is tracked.
func (fs *walFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil || !isLog(name) {
		return f, err
	}
	return fs.track(f), nil
}

// ReuseForWrite recycles an old log file as a new one; it is tracked.
func (fs *walFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	if err != nil || !isLog(newname) {
		return f, err
	}
	return fs.track(f), nil
}

func (fs *walFS) track(f vfs.File) *walFile {
	w := &walFile{File: f, fs: fs}
	fs.mu.Lock()
	fs.files[w] = struct{}{}
	fs.mu.Unlock()
	return w
}

// syncAll fsyncs every open log file written since its last fsync. It
// returns the first error; the failing file also returns it from its
// next Sync, so that pebble fails the commits that follow.
func (fs *walFS) syncAll() error {
	fs.mu.Lock()
	files := make([]*walFile, 0, len(fs.files))
	for f := range fs.files {
		files = append(files, f)
	}
	fs.mu.Unlock()
	var first error
	for _, f := range files {
		if err := f.fsync(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// walFile is one log file. Pebble's log writer calls Write and Sync from
// its flush goroutine, one at a time; the store's syncer calls fsync.
type walFile struct {
	vfs.File
	fs    *walFS
	dirty atomic.Bool // written since the last fsync

	mu     sync.Mutex // serialises fsync and Close; guards closed and err
	closed bool
	err    error // a failed fsync, returned by every later Sync
}

// Write writes p with write(2), as the wrapped file does.
func (f *walFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.dirty.Store(true)
	return n, err
}

// Sync defers the fsync to syncAll: the data is with the kernel already.
func (f *walFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// SyncData is Sync.
func (f *walFile) SyncData() error { return f.Sync() }

// SyncTo is Sync; it never reports a full sync.
func (f *walFile) SyncTo(int64) (bool, error) { return false, f.Sync() }

// fsync syncs the file if it was written since the last fsync.
func (f *walFile) fsync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.err != nil || !f.fs.fsync || !f.dirty.Swap(false) {
		return f.err
	}
	if err := f.File.Sync(); err != nil {
		f.err = err
		return err
	}
	f.fs.syncs.Add(1)
	return nil
}

// Close fsyncs what is still unsynced (not with Sync: none) and closes
// the file: pebble closes a log when it switches to a new one.
func (f *walFile) Close() error {
	err := f.fsync()
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.fs.mu.Lock()
	delete(f.fs.files, f)
	f.fs.mu.Unlock()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}
