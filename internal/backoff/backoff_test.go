package backoff

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const ms = time.Millisecond

// fixed is a Rand that always draws the same value.
type fixed float64

func (f fixed) Float64() float64 { return float64(f) }

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       Policy
		attempt int
		u       float64
		want    time.Duration
	}{
		{"first", Policy{Min: 100 * ms, Max: time.Second}, 1, 0.5, 100 * ms},
		{"doubles", Policy{Min: 100 * ms, Max: time.Second}, 3, 0.5, 400 * ms},
		{"capped", Policy{Min: 100 * ms, Max: time.Second}, 5, 0.5, time.Second},
		{"far past the cap", Policy{Min: 100 * ms, Max: time.Second}, 1 << 30, 0.5, time.Second},
		{"attempt 0 is the first", Policy{Min: 100 * ms, Max: time.Second}, 0, 0.5, 100 * ms},
		{"negative attempt", Policy{Min: 100 * ms, Max: time.Second}, -3, 0.5, 100 * ms},
		{"multiplier 3", Policy{Min: 100 * ms, Max: time.Second, Multiplier: 3}, 3, 0, 900 * ms},
		{"multiplier 1.5", Policy{Min: 100 * ms, Max: time.Second, Multiplier: 1.5}, 3, 0, 225 * ms},
		{"multiplier 1 is constant", Policy{Min: 100 * ms, Max: time.Second, Multiplier: 1}, 1 << 30, 0, 100 * ms},
		{"multiplier below 1 means 2", Policy{Min: 100 * ms, Max: time.Second, Multiplier: 0.5}, 2, 0, 200 * ms},
		{"max below min", Policy{Min: 300 * ms, Max: 100 * ms}, 4, 0, 300 * ms},
		{"zero policy", Policy{}, 1, 0, 1},
		{"jitter 0.2, u 0", Policy{Min: time.Second, Max: time.Second, Jitter: 0.2}, 1, 0, time.Second},
		{"jitter 0.2, u 0.5", Policy{Min: time.Second, Max: time.Second, Jitter: 0.2}, 1, 0.5, 900 * ms},
		{"jitter 0.2, u near 1", Policy{Min: time.Second, Max: time.Second, Jitter: 0.2}, 1, 0.999, 800200 * time.Microsecond},
		{"equal jitter", Policy{Min: time.Second, Max: 8 * time.Second, Jitter: 0.5}, 2, 0.5, 1500 * ms},
		{"full jitter", Policy{Min: time.Second, Max: 8 * time.Second, Jitter: 1}, 4, 0.25, 6 * time.Second},
		{"jitter above 1 is full", Policy{Min: time.Second, Max: time.Second, Jitter: 7}, 1, 0.5, 500 * ms},
		{"negative jitter is none", Policy{Min: time.Second, Max: time.Second, Jitter: -1}, 1, 0.5, time.Second},
		{"NaN jitter is none", Policy{Min: time.Second, Max: time.Second, Jitter: math.NaN()}, 1, 0.5, time.Second},
		{"NaN multiplier means 2", Policy{Min: time.Second, Max: 8 * time.Second, Multiplier: math.NaN()}, 3, 0, 4 * time.Second},
		{"infinite multiplier", Policy{Min: time.Second, Max: 8 * time.Second, Multiplier: math.Inf(1)}, 2, 0, 8 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.p.Delay(tc.attempt, fixed(tc.u)); got != tc.want {
				t.Errorf("%+v.Delay(%d) with u=%v = %v, want %v", tc.p, tc.attempt, tc.u, got, tc.want)
			}
		})
	}
}

// The same seed gives the same waits; nil draws from the global source
// and stays within the bounds.
func TestDelayDeterministic(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 100 * ms, Max: 10 * time.Second, Jitter: 0.5}
	a, b := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	distinct := map[time.Duration]bool{}
	for n := 1; n <= 50; n++ {
		da, db := p.Delay(n, a), p.Delay(n, b)
		if da != db {
			t.Fatalf("attempt %d: %v and %v from the same seed", n, da, db)
		}
		distinct[da] = true
		if g := p.Delay(n, nil); g > p.Nominal(n) || g < p.Nominal(n)/2 {
			t.Fatalf("attempt %d: global source gave %v, want within [%v, %v]", n, g, p.Nominal(n)/2, p.Nominal(n))
		}
	}
	if len(distinct) < 40 {
		t.Errorf("50 jittered waits gave %d distinct values", len(distinct))
	}
}

// Every wait lies in [Nominal*(1-Jitter), Nominal], Nominal in [Min, Max],
// and Nominal never decreases with the attempt.
func FuzzDelay(f *testing.F) {
	f.Add(int64(100*ms), int64(time.Second), 2.0, 0.2, 3, 0.5)
	f.Add(int64(1), int64(time.Hour), 1.5, 1.0, 1000, 0.999)
	f.Add(int64(0), int64(0), 0.0, 0.0, 0, 0.0)
	f.Fuzz(func(t *testing.T, lo, hi int64, m, j float64, attempt int, u float64) {
		if u < 0 || u >= 1 || u != u {
			return
		}
		p := Policy{Min: time.Duration(lo), Max: time.Duration(hi), Multiplier: m, Jitter: j}
		nom := p.Nominal(attempt)
		if next := p.Nominal(attempt + 1); attempt < 1<<30 && next < nom {
			t.Fatalf("%+v: Nominal(%d) = %v > Nominal(%d) = %v", p, attempt, nom, attempt+1, next)
		}
		wantLo := max(p.Min, 1)
		if nom < wantLo || nom > max(p.Max, wantLo) {
			t.Fatalf("%+v: Nominal(%d) = %v outside [Min, Max]", p, attempt, nom)
		}
		d := p.Delay(attempt, fixed(u))
		share := min(j, 1)
		if !(share > 0) {
			share = 0
		}
		if d > nom || float64(d) < float64(nom)*(1-share)-1 {
			t.Fatalf("%+v: Delay(%d, %v) = %v, nominal %v", p, attempt, u, d, nom)
		}
	})
}

func TestFill(t *testing.T) {
	t.Parallel()
	def := Policy{Min: 100 * ms, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}
	tests := []struct {
		name string
		in   Policy
		want Policy
	}{
		{"all unset", Policy{}, def},
		{"negative durations", Policy{Min: -1, Max: -1}, def},
		{"all set", Policy{Min: ms, Max: time.Second, Multiplier: 3, Jitter: 0.5}, Policy{Min: ms, Max: time.Second, Multiplier: 3, Jitter: 0.5}},
		{"max below min", Policy{Min: time.Minute}, Policy{Min: time.Minute, Max: time.Minute, Multiplier: 2, Jitter: 0.2}},
		{"max below the default min", Policy{Max: ms}, Policy{Min: 100 * ms, Max: 100 * ms, Multiplier: 2, Jitter: 0.2}},
		{"multiplier below 1", Policy{Multiplier: 0.9}, def},
		{"multiplier 1 is kept", Policy{Multiplier: 1}, Policy{Min: 100 * ms, Max: 10 * time.Second, Multiplier: 1, Jitter: 0.2}},
		{"negative jitter is none", Policy{Jitter: -0.5}, Policy{Min: 100 * ms, Max: 10 * time.Second, Multiplier: 2, Jitter: 0}},
		{"NaN jitter is none", Policy{Jitter: math.NaN()}, Policy{Min: 100 * ms, Max: 10 * time.Second, Multiplier: 2, Jitter: 0}},
		{"jitter above 1", Policy{Jitter: 3}, Policy{Min: 100 * ms, Max: 10 * time.Second, Multiplier: 2, Jitter: 1}},
	}
	for _, tc := range tests {
		if got := tc.in.Fill(def); got != tc.want {
			t.Errorf("%s: %+v.Fill = %+v, want %+v", tc.name, tc.in, got, tc.want)
		}
	}
}
