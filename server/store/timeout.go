package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is returned (wrapped) by a store made by WithTimeout when the
// backend did not answer in time.
var ErrTimeout = errors.New("store: timed out")

// WithTimeout returns st with a deadline on every call, so that a database
// that stops answering (packets dropped, not reset) cannot hang a caller:
// Add and Delete end after d, and Replay ends when d passes without the
// backend delivering a job or reporting progress with Alive (a replay of
// a large queue may take longer as a whole). A call past its deadline returns an error wrapping
// ErrTimeout; what it wrote may or may not
// have been stored (the backend may commit it later), as with any lost
// answer. A d of 0 or less returns st unchanged. Close is not bounded:
// the backends' Close only releases connections.
//
// The backends honour the deadline of ctx on their network reads and
// writes; WithTimeout is what gives every call one.
func WithTimeout(st Store, d time.Duration) Store {
	if d <= 0 || st == nil {
		return st
	}
	return &timeoutStore{Store: st, d: d}
}

type timeoutStore struct {
	Store
	d time.Duration
}

// expired turns the error of a call whose own deadline passed into one
// that says so; the caller's own cancellation is passed on as it is.
func (t *timeoutStore) expired(parent, ctx context.Context, op string, n int, err error) error {
	if err == nil || parent.Err() != nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %s %d jobs: no answer within %v: %w", ErrTimeout, op, n, t.d, err)
}

// Add stores jobs within the deadline.
func (t *timeoutStore) Add(parent context.Context, jobs ...Job) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.expired(parent, ctx, "add", len(jobs), t.Store.Add(ctx, jobs...))
}

// Delete removes jobs within the deadline.
func (t *timeoutStore) Delete(parent context.Context, refs ...Ref) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.expired(parent, ctx, "delete", len(refs), t.Store.Delete(ctx, refs...))
}

// aliveKey is the key of the Replay context's progress function.
type aliveKey struct{}

// Alive tells the deadline that WithTimeout puts on a Replay that the
// backend is making progress although it has delivered no job yet (it
// read a page of a store that delivers jobs only once it has read them
// all). Backends call it with the ctx Replay got; without a deadline it
// does nothing.
func Alive(ctx context.Context) {
	if f, ok := ctx.Value(aliveKey{}).(func()); ok {
		f()
	}
}

// errStalled is the cause of a replay's cancellation by its watchdog.
var errStalled = errors.New("store: replay stalled")

// Replay calls fn for every stored job; it fails when the backend
// delivers no job, and reports no progress (Alive), for d. The time fn
// takes does not count.
func (t *timeoutStore) Replay(parent context.Context, fn func(Job) error) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	watchdog := time.AfterFunc(t.d, func() { cancel(errStalled) })
	defer watchdog.Stop()
	ctx = context.WithValue(ctx, aliveKey{}, func() {
		if watchdog.Stop() {
			watchdog.Reset(t.d)
		}
	})
	err := t.Store.Replay(ctx, func(j Job) error {
		if !watchdog.Stop() {
			return context.Cause(ctx) // it fired: the replay is over
		}
		err := fn(j)
		watchdog.Reset(t.d)
		return err
	})
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("%w: replay: nothing received for %v: %w", ErrTimeout, t.d, err)
	}
	return err
}
