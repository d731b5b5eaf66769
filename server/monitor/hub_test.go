package monitor

import (
	"bytes"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server"
)

// TestHubResyncsAStreamThatFellBehind lets a stream's buffer fill up:
// it must then get a fresh snapshot (never a delta that does not apply
// to what it has), then deltas again. It also checks the stream limit,
// that the loop ends with its last stream, and that a closed hub refuses
// streams.
func TestHubResyncsAStreamThatFellBehind(t *testing.T) {
	t.Parallel()
	var tick atomic.Int64
	snap := func() Snapshot {
		k := tick.Add(1)
		return Snapshot{Time: k, Functions: []FunctionInfo{{FunctionStats: server.FunctionStats{Name: "f", Normal: int(k)}}}}
	}
	done := make(chan struct{})
	h := newHub(snap, time.Millisecond, 2, done)

	s, err := h.subscribe()
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	other, err := h.subscribe()
	if err != nil {
		t.Fatalf("second subscribe: %v", err)
	}
	if _, err := h.subscribe(); !errors.Is(err, errTooManyStreams) {
		t.Errorf("third subscribe with a limit of 2: %v, want errTooManyStreams", err)
	}
	h.unsubscribe(other)

	waitUntil(t, "the stream fell behind", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(s.ch) == cap(s.ch) && s.needFull
	})
	want := []string{"snapshot"}
	for range streamBuffer - 1 {
		want = append(want, "delta")
	}
	want = append(want, "snapshot", "delta") // the resync, then deltas again
	for i, name := range want {
		select {
		case b := <-s.ch:
			if !bytes.HasPrefix(b, []byte("event: "+name+"\n")) {
				t.Fatalf("event %d: %.60q, want %s", i, b, name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d (%s) never came", i, name)
		}
	}

	h.unsubscribe(s)
	waitUntil(t, "the loop ended without streams", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return !h.running && h.last == nil
	})
	close(done)
	h.close()
	if _, err := h.subscribe(); !errors.Is(err, errHubClosed) {
		t.Errorf("subscribe after close: %v, want errHubClosed", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBusiest checks which functions keep their own series.
func TestBusiest(t *testing.T) {
	t.Parallel()
	fn := func(name string, taken uint64, queued, workers int) server.FunctionStats {
		return server.FunctionStats{Name: name, Normal: queued, Workers: workers, Wait: server.Histogram{Count: taken}}
	}
	names := func(fs []server.FunctionStats) []string {
		out := []string{}
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		fns       []server.FunctionStats
		n         int
		top, rest []string
	}{
		{"under the bound", []server.FunctionStats{fn("a", 0, 0, 1), fn("b", 0, 0, 1)}, 3, []string{"a", "b"}, nil},
		{"jobs taken and queued rank first, order kept",
			[]server.FunctionStats{fn("idle", 0, 0, 9), fn("taken", 5, 0, 1), fn("queued", 0, 7, 0), fn("quiet", 1, 0, 1)}, 2,
			[]string{"taken", "queued"}, []string{"idle", "quiet"}},
		{"ties: more workers, then the name",
			[]server.FunctionStats{fn("c", 0, 0, 1), fn("b", 0, 0, 1), fn("a", 0, 0, 1), fn("z", 0, 0, 2)}, 2,
			[]string{"a", "z"}, []string{"c", "b"}},
		{"a function named _other is always summed",
			[]server.FunctionStats{fn(OtherFunctions, 9, 9, 9), fn("a", 0, 0, 0)}, 5,
			[]string{"a"}, []string{OtherFunctions}},
	} {
		top, rest := busiest(tc.fns, tc.n)
		if got := names(top); !slices.Equal(got, tc.top) {
			t.Errorf("%s: own series %q, want %q", tc.name, got, tc.top)
		}
		if got := names(rest); !slices.Equal(got, tc.rest) {
			t.Errorf("%s: summed %q, want %q", tc.name, got, tc.rest)
		}
	}
	sum := sumFunctions([]server.FunctionStats{
		{Name: "a", High: 1, Normal: 2, Low: 3, Running: 4, Workers: 5, MaxQueue: [3]int{9, 9, 9},
			OldestQueued: time.Unix(200, 0), Wait: server.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{1, 2}, Count: 3, Sum: 4}},
		{Name: "b", High: 10, Normal: 20, Low: 30, Running: 40, Workers: 50,
			OldestQueued: time.Unix(100, 0), Wait: server.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{10, 20}, Count: 30, Sum: 40}},
	})
	if sum.Name != OtherFunctions || sum.High != 11 || sum.Normal != 22 || sum.Low != 33 || sum.Running != 44 || sum.Workers != 55 ||
		sum.MaxQueue != [3]int{} || !sum.OldestQueued.Equal(time.Unix(100, 0)) ||
		sum.Wait.Count != 33 || sum.Wait.Sum != 44 || !slices.Equal(sum.Wait.Counts, []uint64{11, 22}) {
		t.Errorf("sum = %+v", sum)
	}
}
