package embedded

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// ErrNoSpace is returned by Add (and, on a filesystem fuller still, by
// Delete) when the store's filesystem lacks the room the write and
// pebble's own work after it (flushing the log, compacting) need. Nothing
// was written; the same call succeeds once space is freed. It matches
// syscall.ENOSPC with errors.Is.
var ErrNoSpace = fmt.Errorf("embedded: not enough free space: %w", syscall.ENOSPC)

// ErrFailed is returned by every write after pebble failed a commit: the
// database cannot take writes any more until it is opened again.
var ErrFailed = errors.New("embedded: store failed after a write error; restart to reopen it")

// DamageError is returned by Open when a write-ahead log is damaged (valid
// records follow an unreadable part, so opening the store would drop
// every job written from the damage on), or when the payload file of a
// large job is missing or short. Options.AcceptDamage opens it anyway.
type DamageError struct {
	// File is the damaged log, or the first missing or damaged payload
	// file.
	File string
	// Offset is where reading the log stopped; -1 for a payload file.
	Offset int64
	// LostJobs is the number of jobs added in the part of the log that
	// would be dropped (some may have been deleted later), or -1 when it
	// cannot be told.
	LostJobs int
	// Err is what the reader found at Offset.
	Err error
}

func (e *DamageError) Error() string {
	lost := "an unknown number of"
	if e.LostJobs >= 0 {
		lost = fmt.Sprint(e.LostJobs)
	}
	if e.Offset < 0 {
		return fmt.Sprintf("embedded: payload file %s (%v): %s stored jobs have lost their payload file", e.File, e.Err, lost)
	}
	return fmt.Sprintf("embedded: write-ahead log %s is damaged at offset %d (%v): %s jobs stored after it would be lost", e.File, e.Offset, e.Err, lost)
}

func (e *DamageError) Unwrap() error { return e.Err }

// LockedError is returned by Open when another process has the store
// open (pebble's lock on the directory is held). It matches
// syscall.EAGAIN with errors.Is.
type LockedError struct {
	// Dir is the store's directory.
	Dir string
	// PID is the process holding the lock, 0 when it cannot be told
	// (no /proc/locks, or the holder is in another pid namespace).
	PID int
	// Comm is that process's command name, "" when unknown.
	Comm string
	// Err is the lock's error.
	Err error
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "process " + strconv.Itoa(e.PID)
		if e.Comm != "" {
			who += " (" + e.Comm + ")"
		}
	}
	return fmt.Sprintf("embedded: %s is in use by %s", e.Dir, who)
}

func (e *LockedError) Unwrap() error { return e.Err }
