package worker

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	w := &Worker{opts: Options{Backoff: Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: -1}.withDefaults()}}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, ms := range want {
		if got := w.backoff(i + 1); got != ms*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, ms*time.Millisecond)
		}
	}
	// With jitter the wait stays within ±Jitter of the base.
	w.opts.Backoff.Jitter = 0.2
	for i := 0; i < 200; i++ {
		if got := w.backoff(3); got < 320*time.Millisecond || got > 480*time.Millisecond {
			t.Fatalf("backoff(3) with 20%% jitter = %v, want 320ms..480ms", got)
		}
	}
}
