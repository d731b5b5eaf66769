package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
)

// silentStore is a backend whose database never answers: every call
// blocks until its ctx ends, except that Replay first delivers jobs.
type silentStore struct {
	jobs []store.Job // delivered by Replay before it goes silent
}

func (s *silentStore) Add(ctx context.Context, _ ...store.Job) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *silentStore) Delete(ctx context.Context, _ ...store.Ref) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *silentStore) Replay(ctx context.Context, fn func(store.Job) error) error {
	for _, j := range s.jobs {
		if err := fn(j); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *silentStore) Close() error { return nil }

// quickStore answers every call at once.
type quickStore struct{ jobs []store.Job }

func (quickStore) Add(context.Context, ...store.Job) error    { return nil }
func (quickStore) Delete(context.Context, ...store.Ref) error { return nil }
func (q quickStore) Replay(_ context.Context, fn func(store.Job) error) error {
	for _, j := range q.jobs {
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}
func (quickStore) Close() error { return nil }

func TestWithTimeout(t *testing.T) {
	t.Parallel()
	const d = 20 * time.Millisecond
	jobs := []store.Job{{Function: "f", Key: "a"}, {Function: "f", Key: "b"}, {Function: "f", Key: "c"}}
	// slowFn takes longer than d for each job: the time fn takes does not
	// count against Replay's deadline.
	slowFn := func(store.Job) error { <-time.After(3 * d); return nil }
	tests := []struct {
		name    string
		st      store.Store
		cancel  bool // the caller cancels its ctx first
		call    func(ctx context.Context, s store.Store) error
		wantErr error // nil: no error
		notErr  error // the error must not wrap this
	}{
		{name: "add past the deadline", st: &silentStore{}, wantErr: store.ErrTimeout,
			call: func(ctx context.Context, s store.Store) error { return s.Add(ctx, jobs[0]) }},
		{name: "delete past the deadline", st: &silentStore{}, wantErr: store.ErrTimeout,
			call: func(ctx context.Context, s store.Store) error { return s.Delete(ctx, jobs[0].Ref()) }},
		{name: "replay silent after some jobs", st: &silentStore{jobs: jobs}, wantErr: store.ErrTimeout,
			call: func(ctx context.Context, s store.Store) error { return s.Replay(ctx, slowFn) }},
		{name: "add cancelled by the caller", st: &silentStore{}, cancel: true, wantErr: context.Canceled, notErr: store.ErrTimeout,
			call: func(ctx context.Context, s store.Store) error { return s.Add(ctx, jobs[0]) }},
		{name: "replay cancelled by the caller", st: &silentStore{}, cancel: true, wantErr: context.Canceled, notErr: store.ErrTimeout,
			call: func(ctx context.Context, s store.Store) error { return s.Replay(ctx, slowFn) }},
		{name: "add in time", st: quickStore{},
			call: func(ctx context.Context, s store.Store) error { return s.Add(ctx, jobs...) }},
		{name: "replay longer than the deadline, each job in time", st: quickStore{jobs: jobs},
			call: func(ctx context.Context, s store.Store) error { return s.Replay(ctx, slowFn) }},
		{name: "replay error of fn is passed on", st: quickStore{jobs: jobs}, wantErr: errStop, notErr: store.ErrTimeout,
			call: func(ctx context.Context, s store.Store) error {
				return s.Replay(ctx, func(store.Job) error { return errStop })
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			done := make(chan error, 1)
			go func() { done <- tt.call(ctx, store.WithTimeout(tt.st, d)) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(hangBound):
				cancel() // lets the call's goroutine end
				t.Fatalf("no return within %v (deadline %v)", hangBound, d)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("got %v, want an error wrapping %v", err, tt.wantErr)
			case tt.notErr != nil && errors.Is(err, tt.notErr):
				t.Fatalf("got %v, which wraps %v", err, tt.notErr)
			}
		})
	}
}

var errStop = errors.New("stop")

// hangBound is how long a call may take before the test calls it hung:
// many times the deadline, for a loaded machine.
const hangBound = 10 * time.Second

// aliveStore reads for longer than the deadline before it delivers its
// job, reporting progress (store.Alive) every step.
type aliveStore struct {
	quickStore
	step  time.Duration
	steps int
}

func (a aliveStore) Replay(ctx context.Context, fn func(store.Job) error) error {
	for range a.steps {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.step): // a page read from the database
		}
		store.Alive(ctx)
	}
	return a.quickStore.Replay(ctx, fn)
}

// TestWithTimeoutReplayAlive: a Replay that reports progress more often
// than the deadline is not cut, however long it takes in all; one that
// stops reporting is.
func TestWithTimeoutReplayAlive(t *testing.T) {
	t.Parallel()
	const d = time.Second
	st := aliveStore{quickStore: quickStore{jobs: []store.Job{{Function: "f", Key: "a"}}}, step: d / 10, steps: 15}
	n := 0
	if err := store.WithTimeout(st, d).Replay(context.Background(), func(store.Job) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("Replay reporting progress every %v for %v (deadline %v): %v, %d jobs; want nil, 1", st.step, time.Duration(st.steps)*st.step, d, err, n)
	}
	st.step = 3 * d
	st.steps = 1
	if err := store.WithTimeout(st, d).Replay(context.Background(), func(store.Job) error { return nil }); !errors.Is(err, store.ErrTimeout) {
		t.Fatalf("Replay silent for %v (deadline %v): %v, want an error wrapping store.ErrTimeout", st.step, d, err)
	}
	store.Alive(context.Background()) // outside a Replay: does nothing
}

func TestWithTimeoutNone(t *testing.T) {
	t.Parallel()
	st := &silentStore{}
	for _, d := range []time.Duration{0, -1} {
		if got := store.WithTimeout(st, d); got != store.Store(st) {
			t.Errorf("WithTimeout(st, %v) = %T, want st itself", d, got)
		}
	}
	if got := store.WithTimeout(nil, time.Second); got != nil {
		t.Errorf("WithTimeout(nil, 1s) = %v, want nil", got)
	}
}
