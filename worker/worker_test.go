package worker_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	h := worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) { return nil, nil })
	tests := []struct {
		name string
		opts worker.Options
		want error
	}{
		{"no servers", worker.Options{Functions: map[string]worker.FunctionConfig{"f": {Handler: h}}}, worker.ErrNoServers},
		{"no functions", worker.Options{Servers: []string{"127.0.0.1:1"}}, worker.ErrNoFunctions},
		{"nil handler", worker.Options{Servers: []string{"127.0.0.1:1"}, Functions: map[string]worker.FunctionConfig{"f": {}}}, nil},
		{"empty server", worker.Options{Servers: []string{"127.0.0.1:1", " "}, Functions: map[string]worker.FunctionConfig{"f": {Handler: h}}}, protocol.ErrBadAddr},
		{"bad port", worker.Options{Servers: []string{"127.0.0.1:99999"}, Functions: map[string]worker.FunctionConfig{"f": {Handler: h}}}, protocol.ErrBadAddr},
		{"doubled brackets", worker.Options{Servers: []string{"[[::1]]"}, Functions: map[string]worker.FunctionConfig{"f": {Handler: h}}}, protocol.ErrBadAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := worker.New(tt.opts)
			if err == nil {
				t.Fatal("New: got nil error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("New: got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestJobOutcomes runs one job per case against each server and checks
// every packet the client receives.
func TestJobOutcomes(t *testing.T) {
	t.Parallel()
	var flaky atomic.Int32
	funcs := map[string]worker.FunctionConfig{
		"reverse": {Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
			b := []byte(j.Payload())
			out := make([]byte, len(b))
			for i := range b {
				out[len(b)-1-i] = b[i]
			}
			return out, nil
		})},
		"progress": {Handler: worker.HandlerFunc(func(ctx context.Context, j worker.Job) ([]byte, error) {
			for i := 1; i <= 3; i++ {
				if err := j.SendStatus(ctx, i, 3); err != nil {
					return nil, err
				}
				if err := j.SendData(ctx, []byte(fmt.Sprintf("chunk%d", i))); err != nil {
					return nil, err
				}
			}
			if err := j.SendWarning(ctx, []byte("careful")); err != nil {
				return nil, err
			}
			return []byte("unique=" + j.Unique()), nil
		})},
		"fail": {Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) {
			return nil, errors.New("plain failure")
		})},
		"except": {Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) {
			return nil, fmt.Errorf("context words: %w", worker.Exception(errors.New("disk on fire")))
		})},
		"panic": {Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) {
			panic("boom")
		})},
		"flaky": {Retries: 2, Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
			flaky.Add(1)
			if j.Attempt() < 3 {
				return nil, fmt.Errorf("attempt %d failed", j.Attempt())
			}
			return []byte(fmt.Sprintf("ok on attempt %d", j.Attempt())), nil
		})},
		"hopeless": {Retries: 1, Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) {
			return nil, errors.New("never works")
		})},
		"crash": {Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
			if j.Attempt() == 1 {
				return nil, worker.Crash(worker.Exception(errors.New("handler died")))
			}
			return []byte(fmt.Sprintf("ok on attempt %d", j.Attempt())), nil
		})},
		"crashes": {Retries: 2, Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
			return nil, worker.Crash(worker.Exception(fmt.Errorf("handler died on attempt %d", j.Attempt())))
		})},
		"stuck": {Timeout: 300 * time.Millisecond, TimeoutFails: true, Handler: worker.HandlerFunc(func(ctx context.Context, _ worker.Job) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})},
		"permanent": {Retries: 5, Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
			if j.Attempt() > 1 {
				return []byte("retried a permanent error"), nil
			}
			return nil, worker.Exception(worker.Permanent(errors.New("bad input")))
		})},
	}
	tests := []struct {
		name       string
		fn         string
		unique     string
		payload    string
		exceptions bool
		want       outcome
	}{
		{"complete", "reverse", "", "hello", false, outcome{End: protocol.WorkComplete, Result: "olleh"}},
		{"empty payload", "reverse", "", "", false, outcome{End: protocol.WorkComplete, Result: ""}},
		{"binary payload", "reverse", "", "a\x00b", false, outcome{End: protocol.WorkComplete, Result: "b\x00a"}},
		{"4 MiB payload", "reverse", "", strings.Repeat("ab", 2<<20), false, outcome{End: protocol.WorkComplete, Result: strings.Repeat("ba", 2<<20)}},
		{"status data warning", "progress", "u-42", "", false, outcome{
			Data: []string{"chunk1", "chunk2", "chunk3"}, Warnings: []string{"careful"},
			Status: []string{"1/3", "2/3", "3/3"}, End: protocol.WorkComplete, Result: "unique=u-42",
		}},
		{"plain error is WORK_FAIL", "fail", "", "x", true, outcome{End: protocol.WorkFail}},
		{"exception to exceptions client", "except", "", "x", true, outcome{End: protocol.WorkException, Result: "disk on fire"}},
		{"exception to plain client is WORK_FAIL", "except", "", "x", false, outcome{End: protocol.WorkFail}},
		{"panic is an exception", "panic", "", "x", true, outcome{End: protocol.WorkException, Result: "handler panic: boom"}},
		{"retries until success", "flaky", "", "x", false, outcome{End: protocol.WorkComplete, Result: "ok on attempt 3"}},
		{"retries exhausted", "hopeless", "", "x", true, outcome{End: protocol.WorkFail}},
		{"crash retried once with retries 0", "crash", "", "x", true, outcome{End: protocol.WorkComplete, Result: "ok on attempt 2"}},
		{"crash retried as retries allow, then reported", "crashes", "", "x", true, outcome{End: protocol.WorkException, Result: "handler died on attempt 3"}},
		{"timeout fails with on_timeout fail", "stuck", "", "x", true, outcome{End: protocol.WorkException, Result: "timeout"}},
		{"permanent error not retried", "permanent", "", "x", true, outcome{End: protocol.WorkException, Result: "bad input"}},
	}
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			w := newWorker(t, worker.Options{Servers: []string{srv.Addr}, Functions: funcs, Concurrency: 2})
			stop, _ := runWorker(t, w)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c := dialClient(t, srv.Addr)
					if tt.exceptions {
						c.exceptions()
					}
					h := c.submit(protocol.SubmitJob, tt.fn, tt.unique, tt.payload)
					got := c.wait(h, 20*time.Second)
					if !reflect.DeepEqual(got, tt.want) {
						t.Errorf("%s(%.40q):\n got %.200v\nwant %.200v", tt.fn, tt.payload, got, tt.want)
					}
				})
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// TestCanDoTimeout: the function is registered with CAN_DO_TIMEOUT; the
// server requeues a job that runs too long, the handler's context ends at
// the timeout, and the second attempt (re-grabbed) completes.
func TestCanDoTimeout(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		// With Concurrency 2 the connection holding the job has a free
		// slot: it must not PRE_SLEEP, which cancels the server's timer.
		for _, conc := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/concurrency=%d", tg.name, conc), func(t *testing.T) {
				t.Parallel()
				testCanDoTimeout(t, tg, conc)
			})
		}
	}
}

func testCanDoTimeout(t *testing.T, tg target, concurrency int) {
	{
		{
			srv := tg.start(t)
			var calls atomic.Int32
			ctxEnded := make(chan error, 1)
			var events []worker.Event
			var mu sync.Mutex
			w := newWorker(t, worker.Options{
				Servers:     []string{srv.Addr},
				Concurrency: concurrency,
				Functions: map[string]worker.FunctionConfig{"slow": {Timeout: time.Second, Handler: worker.HandlerFunc(
					func(ctx context.Context, j worker.Job) ([]byte, error) {
						if calls.Add(1) == 1 {
							<-ctx.Done()
							ctxEnded <- ctx.Err()
							return nil, ctx.Err()
						}
						return []byte("second try"), nil
					})}},
				OnEvent: func(e worker.Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
			})
			stop, _ := runWorker(t, w)
			c := dialClient(t, srv.Addr)
			start := time.Now()
			h := c.submit(protocol.SubmitJob, "slow", "", "x")
			got := c.wait(h, 20*time.Second)
			if got.End != protocol.WorkComplete || got.Result != "second try" {
				t.Fatalf("got %+v, want WORK_COMPLETE \"second try\"", got)
			}
			if err := <-ctxEnded; !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("first attempt's ctx ended with %v, want DeadlineExceeded", err)
			}
			if el := time.Since(start); el < time.Second {
				t.Errorf("job completed after %v, before the 1s timeout requeued it", el)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			var kinds []worker.EventKind
			for _, e := range events {
				if e.Kind != worker.Connected {
					kinds = append(kinds, e.Kind)
				}
			}
			// With free slots the second attempt starts before the first is
			// abandoned (one second of grace after the server's timeout).
			sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
			want := []worker.EventKind{worker.JobStarted, worker.JobStarted, worker.JobDone, worker.JobAbandoned}
			if !reflect.DeepEqual(kinds, want) {
				t.Errorf("events %v, want %v", kinds, want)
			}
		}
	}
}

// TestConcurrencyBound: two servers, Concurrency 2, six jobs waiting: the
// worker never holds more than two jobs, and all six complete.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			a, b := tg.start(t), tg.start(t)
			var cur, peak atomic.Int32
			release := make(chan struct{})
			w := newWorker(t, worker.Options{
				Servers:     []string{a.Addr, b.Addr},
				Concurrency: 2,
				Functions: map[string]worker.FunctionConfig{"hold": {Handler: worker.HandlerFunc(
					func(ctx context.Context, j worker.Job) ([]byte, error) {
						n := cur.Add(1)
						defer cur.Add(-1)
						for {
							p := peak.Load()
							if n <= p || peak.CompareAndSwap(p, n) {
								break
							}
						}
						select {
						case <-release:
						case <-ctx.Done():
							return nil, ctx.Err()
						}
						return []byte(j.Server()), nil
					})}},
			})
			ca, cb := dialClient(t, a.Addr), dialClient(t, b.Addr)
			var ha, hb []string
			for i := 0; i < 3; i++ {
				ha = append(ha, ca.submit(protocol.SubmitJob, "hold", "", "a"))
				hb = append(hb, cb.submit(protocol.SubmitJob, "hold", "", "b"))
			}
			stop, _ := runWorker(t, w)
			// Two handlers have begun (the servers assign a job a moment
			// before the worker's handler starts, so wait for that too).
			eventually(t, 10*time.Second, "two handlers running", func() bool { return cur.Load() == 2 })
			if n := len(w.Stats().Running); n != 2 {
				t.Errorf("Stats().Running has %d jobs, want 2", n)
			}
			if n := adminStatus(t, a.Addr, "hold").Running + adminStatus(t, b.Addr, "hold").Running; n != 2 {
				t.Errorf("servers show %d jobs running, want 2", n)
			}
			// The bound holds: no third job is taken while two run.
			time.Sleep(100 * time.Millisecond)
			if n := cur.Load(); n != 2 {
				t.Errorf("%d handlers running, want 2", n)
			}
			close(release)
			for h, got := range ca.waitAll(ha, 20*time.Second) {
				if got.End != protocol.WorkComplete || got.Result != a.Addr {
					t.Errorf("job %s on a: %+v", h, got)
				}
			}
			for h, got := range cb.waitAll(hb, 20*time.Second) {
				if got.End != protocol.WorkComplete || got.Result != b.Addr {
					t.Errorf("job %s on b: %+v", h, got)
				}
			}
			if p := peak.Load(); p != 2 {
				t.Errorf("peak concurrent jobs %d, want 2", p)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if st := w.Stats(); st.Taken != 6 || st.Done != 6 {
				t.Errorf("stats %+v, want 6 taken and done", st)
			}
		})
	}
}

// TestDrain: cancelling Run's context lets the running job finish and be
// reported, takes no new job, and Run returns nil.
func TestDrain(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			started := make(chan struct{}, 4)
			release := make(chan struct{})
			w := newWorker(t, worker.Options{
				Servers: []string{srv.Addr},
				Functions: map[string]worker.FunctionConfig{"job": {Handler: worker.HandlerFunc(
					func(ctx context.Context, j worker.Job) ([]byte, error) {
						started <- struct{}{}
						<-release
						return []byte("finished " + string(j.Payload())), ctx.Err()
					})}},
			})
			c := dialClient(t, srv.Addr)
			h1 := c.submit(protocol.SubmitJob, "job", "", "one")
			stop, done := runWorker(t, w)
			<-started
			ctxStopped := make(chan error, 1)
			go func() { ctxStopped <- stop() }()
			// Run must not return while the job runs.
			select {
			case <-done:
				t.Fatal("Run returned while a job was running")
			case <-time.After(200 * time.Millisecond): // a negative check needs a bound
			}
			c2 := dialClient(t, srv.Addr)
			c2.submit(protocol.SubmitJobBg, "job", "", "two")
			close(release)
			if got := c.wait(h1, 10*time.Second); got.End != protocol.WorkComplete || got.Result != "finished one" {
				t.Fatalf("drained job: %+v", got)
			}
			if err := <-ctxStopped; err != nil {
				t.Fatalf("Run after drain: %v", err)
			}
			eventually(t, 5*time.Second, "the second job queued, no worker left", func() bool {
				st := adminStatus(t, srv.Addr, "job")
				return st.Total == 1 && st.Running == 0 && st.Workers == 0
			})
		})
	}
}

// TestDrainTimeout: a job still running at the drain timeout is abandoned:
// its context is cancelled, the connection closed, the server requeues it.
func TestDrainTimeout(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			started := make(chan struct{}, 1)
			w := newWorker(t, worker.Options{
				Servers:      []string{srv.Addr},
				DrainTimeout: 100 * time.Millisecond,
				Functions: map[string]worker.FunctionConfig{"stuck": {Handler: worker.HandlerFunc(
					func(ctx context.Context, j worker.Job) ([]byte, error) {
						started <- struct{}{}
						<-ctx.Done()
						return nil, ctx.Err()
					})}},
			})
			c := dialClient(t, srv.Addr)
			c.submit(protocol.SubmitJobBg, "stuck", "", "x")
			stop, _ := runWorker(t, w)
			<-started
			if err := stop(); !errors.Is(err, worker.ErrDrainTimeout) {
				t.Fatalf("Run: got %v, want ErrDrainTimeout", err)
			}
			eventually(t, 5*time.Second, "job requeued", func() bool {
				st := adminStatus(t, srv.Addr, "stuck")
				return st.Total == 1 && st.Running == 0
			})
			if st := w.Stats(); st.Abandoned != 1 {
				t.Errorf("stats %+v, want 1 abandoned", st)
			}
		})
	}
}

// TestMaxJobs: the worker takes MaxJobs jobs, then stops grabbing and Run
// returns; the other jobs stay queued. StopGrabbing does the same.
func TestMaxJobs(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			// Two connections to the same server compete for the MaxJobs budget.
			c := dialClient(t, srv.Addr)
			for i := 0; i < 5; i++ {
				c.submit(protocol.SubmitJobBg, "count", "", "x")
			}
			var ran atomic.Int32
			w := newWorker(t, worker.Options{
				Servers:     []string{srv.Addr, srv.Addr},
				Concurrency: 2,
				MaxJobs:     3,
				Functions: map[string]worker.FunctionConfig{"count": {Handler: worker.HandlerFunc(
					func(context.Context, worker.Job) ([]byte, error) { ran.Add(1); return nil, nil })}},
			})
			stop, done := runWorker(t, w)
			select {
			case <-done:
				if err := stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after MaxJobs")
			}
			if n := ran.Load(); n != 3 {
				t.Errorf("ran %d jobs, want 3", n)
			}
			// The server handles our results and the admin connection
			// independently: wait for it to catch up.
			eventually(t, 5*time.Second, "2 jobs left, none running", func() bool {
				st := adminStatus(t, srv.Addr, "count")
				return st.Total == 2 && st.Running == 0
			})

			// StopGrabbing while idle: Run returns.
			w2 := newWorker(t, worker.Options{Servers: []string{srv.Addr},
				Functions: map[string]worker.FunctionConfig{"other": {Handler: worker.HandlerFunc(
					func(context.Context, worker.Job) ([]byte, error) { return nil, nil })}},
				OnEvent: func(e worker.Event) {},
			})
			stop2, done2 := runWorker(t, w2)
			eventually(t, 5*time.Second, "w2 registered", func() bool { return w2.Stats().Connected == 1 })
			w2.StopGrabbing()
			select {
			case <-done2:
				if err := stop2(); err != nil {
					t.Fatalf("Run after StopGrabbing: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after StopGrabbing")
			}
		})
	}
}

// TestSetClientIDAndRegistration: `workers` shows the client id and one
// registration per function on each connection.
func TestSetClientIDAndRegistration(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			h := worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) { return nil, nil })
			w := newWorker(t, worker.Options{
				Servers:  []string{srv.Addr},
				ClientID: "gworkerd child 7",
				Functions: map[string]worker.FunctionConfig{
					"alpha": {Handler: h}, "Beta": {Handler: h, Timeout: 5 * time.Second},
				},
			})
			stop, _ := runWorker(t, w)
			eventually(t, 5*time.Second, "registration", func() bool {
				return len(adminWorkers(t, srv.Addr, "Beta")) == 1
			})
			ws := adminWorkers(t, srv.Addr, "alpha")
			if len(ws) != 1 {
				t.Fatalf("workers with alpha: %+v", ws)
			}
			if ws[0].ClientID != "gworkerd_child_7" {
				t.Errorf("client id %q, want gworkerd_child_7", ws[0].ClientID)
			}
			fs := append([]string(nil), ws[0].Functions...)
			if strings.Join(sortStrings(fs), ",") != "Beta,alpha" {
				t.Errorf("functions %v, want alpha and Beta", ws[0].Functions)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}
