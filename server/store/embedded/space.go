package embedded

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/vfs"
	"golang.org/x/sys/unix"
)

// spaceFS is the filesystem under every store. It lets the store check,
// before each commit, that the filesystem has room for it (Store.room):
// pebble treats a failed write of its log as fatal (its commit pipeline
// is broken after it, and it calls Logger.Fatalf), so a store on a full
// disk must refuse writes before pebble attempts them.
//
// For that it tracks the log file pebble writes now: how much of it is
// already allocated on disk (a recycled log keeps its old size) and how
// much pebble wrote into it. It also turns pebble's preallocation of log
// files (fallocate of 110% of the memtable size) into a no-op, so that
// the free space the filesystem reports is space nobody holds.
type spaceFS struct {
	vfs.FS
	dir string // the store's directory, for statfs

	mu  sync.Mutex
	cur *spaceFile // the newest log file; guarded by mu
}

func newSpaceFS(fs vfs.FS, dir string) *spaceFS {
	return &spaceFS{FS: fs, dir: dir}
}

// Create creates a file; a log file becomes the current log.
func (fs *spaceFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil || !isLog(name) {
		return f, err
	}
	return fs.setLog(f, 0), nil
}

// ReuseForWrite recycles an old log file as the current log; its blocks
// are allocated already.
func (fs *spaceFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	if err != nil || !isLog(newname) {
		return f, err
	}
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return fs.setLog(f, size), nil
}

func (fs *spaceFS) setLog(f vfs.File, alloc int64) *spaceFile {
	sf := &spaceFile{File: f, alloc: alloc}
	fs.mu.Lock()
	fs.cur = sf
	fs.mu.Unlock()
	return sf
}

// logSlack returns the bytes of the current log that are allocated on
// disk but not written yet: pebble can write that much without the
// filesystem giving it a new block.
func (fs *spaceFS) logSlack() int64 {
	fs.mu.Lock()
	cur := fs.cur
	fs.mu.Unlock()
	if cur == nil {
		return 0
	}
	return max(0, cur.alloc-cur.written.Load())
}

// free returns the bytes an unprivileged writer may still allocate on the
// store's filesystem, and the filesystem's size.
func (fs *spaceFS) free() (free, size int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(fs.dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", fs.dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// spaceFile is a file of spaceFS; for the current log it counts the
// bytes written. Pebble's log writer writes from one goroutine; the store
// reads written from its writer goroutine.
type spaceFile struct {
	vfs.File
	alloc   int64 // bytes allocated when the file was opened
	written atomic.Int64
}

// Write writes p and counts it.
func (f *spaceFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.written.Add(int64(n))
	return n, err
}

// Preallocate does nothing: log space is accounted by Store.room.
func (f *spaceFile) Preallocate(int64, int64) error { return nil }

// isNoSpace reports whether err says the filesystem is full (or the
// user's quota is used up).
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
