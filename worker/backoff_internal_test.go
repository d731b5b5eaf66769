package worker

import (
	"testing"
	"time"
)

// Backoff's documented fields reach the shared backoff: the defaults,
// the multiplier, the cap and the jitter below the nominal wait.
func TestBackoff(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration // attempts 1, 2, ...
	}{
		{"doubling to the cap", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: -1},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"defaults", Backoff{Jitter: -1},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second}},
		{"multiplier 3", Backoff{Initial: 10 * ms, Max: time.Second, Multiplier: 3, Jitter: -1},
			[]time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second}},
		{"max below initial", Backoff{Initial: 300 * ms, Max: 100 * ms, Jitter: -1},
			[]time.Duration{300 * ms, 300 * ms}},
	}
	for _, tc := range tests {
		p := tc.b.withDefaults().policy()
		for i, want := range tc.want {
			if got := p.Delay(i+1, nil); got != want {
				t.Errorf("%s: attempt %d waits %v, want %v", tc.name, i+1, got, want)
			}
		}
	}
	// The default jitter (0.2) takes up to a fifth off the wait, never
	// adds to it.
	p := Backoff{Initial: 100 * ms, Max: time.Second}.withDefaults().policy()
	lowest := 400 * ms
	for i := 0; i < 200; i++ {
		got := p.Delay(3, nil)
		if got < 320*ms || got > 400*ms {
			t.Fatalf("attempt 3 with the default jitter waits %v, want 320ms..400ms", got)
		}
		lowest = min(lowest, got)
	}
	if lowest > 380*ms {
		t.Errorf("200 jittered waits were all within %v of 400ms", 400*ms-lowest)
	}
}
