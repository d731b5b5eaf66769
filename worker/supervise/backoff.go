package supervise

import (
	"math/rand/v2"
	"time"
)

// Backoff paces restarts of a crashing child: the n-th consecutive
// failure waits min(Initial*2^(n-1), Max), randomised by ±Jitter. A run
// that lasted at least Stable resets the count.
type Backoff struct {
	Initial time.Duration // default 500ms
	Max     time.Duration // default 30s
	Jitter  float64       // default 0.2; negative means none
	Stable  time.Duration // default 10s
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Jitter == 0 {
		b.Jitter = 0.2
	}
	if b.Jitter < 0 {
		b.Jitter = 0
	}
	if b.Jitter > 1 {
		b.Jitter = 1
	}
	if b.Stable <= 0 {
		b.Stable = 10 * time.Second
	}
	return b
}

// Delay returns the wait before restart number attempt (1-based).
func (b Backoff) Delay(attempt int, rnd *rand.Rand) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 && rnd != nil {
		f := 1 + b.Jitter*(2*rnd.Float64()-1)
		d = time.Duration(float64(d) * f)
	}
	return d
}
