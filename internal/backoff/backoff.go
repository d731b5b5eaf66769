// Package backoff is the one exponential backoff of the project: the
// client's wait before it dials a failed server again, the worker's
// reconnections, the supervisor's restarts of a crashing child and the
// servers' pause after a failed accept all use Policy.Delay.
//
// The n-th consecutive failure (n >= 1) has the nominal wait
//
//	d = min(Min * Multiplier^(n-1), Max)
//
// and the last Jitter share of it is random: the wait is uniform in
// [d*(1-Jitter), d]. Jitter 1 is what is called "full jitter", 1/2
// "equal jitter", 0 none.
//
// Why jitter below the nominal wait, never above it (the old copies used
// ±Jitter, or +20%): Max stays a real cap, and at the cap the waits stay
// spread. With ±Jitter clamped to Max, half of the draws of a fleet that
// has reached the cap land on exactly Max, and the fleet retries in step
// again during a long outage, where spreading matters most.
//
// Why a share and not one fixed kind: full jitter spreads a fleet best,
// but its waits can be close to zero, so a crash-looping child or a server
// refusing connections would be retried at once; the callers therefore
// keep a floor, and the share is a public, documented knob of worker and
// supervise (default 0.2 there and in the client).
package backoff

import (
	"math/rand/v2"
	"time"
)

// Rand is the source of the random share. *rand.Rand (math/rand/v2)
// satisfies it; tests inject a seeded one for repeatable waits.
type Rand interface {
	Float64() float64
}

// Policy is an exponential backoff with jitter. The zero Multiplier means
// 2; a Jitter outside [0, 1] is clamped into it (NaN counts as 0). Policy holds no state:
// the caller counts the failures.
type Policy struct {
	Min        time.Duration // the first wait; at least 1ns
	Max        time.Duration // the cap; raised to Min when below it
	Multiplier float64       // growth per failure; below 1 (or NaN) means 2
	Jitter     float64       // the random share of each wait, 0 to 1
}

// Fill returns p with its unset settings taken from defaults, the
// convention of the public options built on Policy (worker.Backoff,
// supervise.Backoff): a Min or Max of zero or below, a Multiplier below
// 1 and a Jitter of exactly 0 take the default; a negative (or NaN)
// Jitter means none and is returned as 0, one above 1 as 1; a Max below
// Min is raised to Min.
func (p Policy) Fill(defaults Policy) Policy {
	if p.Min <= 0 {
		p.Min = defaults.Min
	}
	if p.Max <= 0 {
		p.Max = defaults.Max
	}
	p.Max = max(p.Max, p.Min)
	if !(p.Multiplier >= 1) {
		p.Multiplier = defaults.Multiplier
	}
	switch {
	case p.Jitter == 0:
		p.Jitter = defaults.Jitter
	case !(p.Jitter > 0):
		p.Jitter = 0
	}
	p.Jitter = min(p.Jitter, 1)
	return p
}

// Delay returns the wait before retry attempt (1-based; below 1 counts as
// 1). rnd supplies the random share; nil uses math/rand/v2's global
// source, which is safe for concurrent use.
func (p Policy) Delay(attempt int, rnd Rand) time.Duration {
	d := p.Nominal(attempt)
	j := min(p.Jitter, 1)
	if !(j > 0) { // zero, negative or NaN: none
		return d
	}
	var u float64
	if rnd != nil {
		u = rnd.Float64()
	} else {
		u = rand.Float64()
	}
	return d - time.Duration(j*u*float64(d))
}

// Nominal is the wait before retry attempt without jitter: the upper
// bound of Delay.
func (p Policy) Nominal(attempt int) time.Duration {
	lo := max(p.Min, 1)
	hi := max(p.Max, lo)
	m := p.Multiplier
	if !(m >= 1) { // below 1, or NaN
		m = 2
	}
	if m == 1 {
		return lo
	}
	d := float64(lo)
	for i := 1; i < attempt && d < float64(hi); i++ {
		d *= m
	}
	return time.Duration(min(d, float64(hi)))
}
