package supervise

import (
	"math/rand/v2"
	"time"

	"github.com/gworkerd/gworkerd/internal/backoff"
)

// Backoff paces restarts of a crashing child: the n-th consecutive
// failure waits min(Initial*2^(n-1), Max), less a random share of up to
// Jitter of it (internal/backoff says why the jitter is below the wait,
// never above). A run that lasted at least Stable resets the count.
type Backoff struct {
	Initial time.Duration // default 500ms
	Max     time.Duration // default 30s
	Jitter  float64       // default 0.2; negative means none; above 1 means 1
	Stable  time.Duration // default 10s
}

func (b Backoff) withDefaults() Backoff {
	p := b.policy().Fill(backoff.Policy{Min: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2})
	b.Initial, b.Max, b.Jitter = p.Min, p.Max, p.Jitter
	if b.Stable <= 0 {
		b.Stable = 10 * time.Second
	}
	return b
}

// policy is b as the shared backoff.
func (b Backoff) policy() backoff.Policy {
	return backoff.Policy{Min: b.Initial, Max: b.Max, Jitter: b.Jitter}
}

// Delay returns the wait before restart number attempt (1-based). rnd
// draws the jitter; nil draws from math/rand/v2's global source.
func (b Backoff) Delay(attempt int, rnd *rand.Rand) time.Duration {
	p := b.policy()
	if rnd == nil {
		return p.Delay(attempt, nil)
	}
	return p.Delay(attempt, rnd)
}
