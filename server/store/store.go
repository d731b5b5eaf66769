// Package store defines how gserverd persists background jobs: the Store
// interface every backend implements, and the Job record it keeps.
//
// Backends live in sub-packages; storetest is the conformance suite every
// backend passes.
package store

import (
	"context"
	"errors"
	"time"
)

// Job is one persisted background job.
type Job struct {
	// Function is the function name.
	Function string
	// Key identifies the job within its function. For a job with a
	// non-empty unique it is the unique itself (the gearmand key); for a
	// job with an empty unique the server makes a fresh key with NewKey, so
	// such jobs never overwrite each other. Unique() recovers the unique.
	Key string
	// Priority is 0 (high), 1 (normal) or 2 (low), gearmand's values.
	Priority int
	// Data is the job's payload.
	Data []byte
	// When is the unix time before which the job must not run; 0 = now.
	When int64
	// Reducer is the reducer of a SUBMIT_REDUCE_JOB_BACKGROUND job.
	Reducer string
	// Version orders the writes of one (Function, Key): the server gives
	// every record it adds a version above every version it gave before
	// (also across restarts), so that a Delete can spare the records
	// added after it was decided (Ref.Version). 0 means none: a record
	// written by gearmand, by an older gserverd, or by an import. Replay
	// returns it as stored.
	Version int64
}

// Ref names a stored job, (function, key), for Delete.
type Ref struct {
	Function string
	Key      string
	// Version makes the delete conditional: it removes the stored record
	// only if that record's Job.Version is lower, so a delete that
	// reaches the store late (a call that timed out on the server's side
	// but was executed by the database afterwards, or one reordered with
	// an Add) cannot remove the record of a newer job with the same
	// reference, added with a higher version. Records without a version
	// (0) are older than any. A Version of 0 removes the record whatever
	// its version.
	Version int64
}

// Ref returns the job's reference (Version 0: unconditional).
func (j *Job) Ref() Ref { return Ref{Function: j.Function, Key: j.Key} }

// Removes reports whether a Delete of r removes a stored record whose
// version is stored: the rule every backend applies.
func (r Ref) Removes(stored int64) bool { return r.Version == 0 || stored < r.Version }

// Store persists background jobs. Implementations are safe for
// concurrent use. Add and Delete return only once the change is durable
// to the degree the backend's sync setting promises.
type Store interface {
	// Add stores jobs. A job whose (Function, Key) is already stored
	// replaces the stored one. Add must not modify the jobs' Data: the
	// server shares those bytes with the job it keeps in memory.
	Add(ctx context.Context, jobs ...Job) error
	// Delete removes jobs, each only if its stored version is lower than
	// the ref's Version (see Ref.Version). Deleting a job that is not
	// stored, or whose stored version is not lower, is not an error.
	Delete(ctx context.Context, refs ...Ref) error
	// Replay calls fn for every stored job, in the order they were added
	// where the backend keeps one. It stops at fn's first error.
	Replay(ctx context.Context, fn func(Job) error) error
	// Close releases the store.
	Close() error
}

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store: closed")

// emptyUniquePrefix marks keys made for jobs whose unique is empty.
const emptyUniquePrefix = "~gserverd-empty~"

// NewKey returns a fresh key for a job with an empty unique, distinct from
// every key made before (across restarts too: it embeds the time).
func NewKey(now time.Time, seq uint64) string {
	return emptyUniquePrefix + now.UTC().Format("20060102T150405.000000000") + "-" + uitoa(seq)
}

// Unique returns the unique of a job from its key: "" for a key made by NewKey.
func (j *Job) Unique() string { return UniqueOf(j.Key) }

// UniqueOf returns the unique a key stands for: "" for a key made by NewKey.
func UniqueOf(key string) string {
	if len(key) >= len(emptyUniquePrefix) && key[:len(emptyUniquePrefix)] == emptyUniquePrefix {
		return ""
	}
	return key
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
