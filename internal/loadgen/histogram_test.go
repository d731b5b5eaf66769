package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistBuckets checks that the buckets tile the values: each value
// lies in its bucket, bucket i+1 starts right after bucket i ends, and a
// bucket is at most 1/128 of its values wide.
func TestHistBuckets(t *testing.T) {
	t.Parallel()
	for i := range histBuckets - 1 {
		lo := uint64(0)
		if i > 0 {
			lo = histUpper(i-1) + 1
		}
		hi := histUpper(i)
		if hi < lo {
			t.Fatalf("bucket %d: upper %d below its start %d", i, hi, lo)
		}
		for _, v := range []uint64{lo, hi} {
			if got := histIndex(v); got != i {
				t.Fatalf("histIndex(%d) = %d, want %d (bucket [%d, %d])", v, got, i, lo, hi)
			}
		}
		if lo >= 256 && float64(hi-lo+1) > float64(lo)/128 {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/128 of its start", i, lo, hi)
		}
	}
	if got, want := histUpper(histBuckets-1), uint64(1<<63-1); got != want {
		t.Errorf("last bucket ends at %d, want %d (the largest Duration)", got, want)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{42}, 0.99, 42},
		{"exact below 256", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"p90 of ten", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
		{"p99.9 of ten is the max", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.999, 10},
		{"negative counts as zero", []time.Duration{-5, 3}, 0.5, 0},
		{"rounded up, not above max", []time.Duration{time.Millisecond}, 0.5, time.Millisecond},
		{"bucket end", []time.Duration{1000, 1000, 5000}, 0.5, 1003},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			if got := h.Quantile(tc.q); got != tc.want {
				t.Errorf("Quantile(%v) of %v = %v, want %v", tc.q, tc.values, got, tc.want)
			}
			if h.Count() != len(tc.values) {
				t.Errorf("Count = %d, want %d", h.Count(), len(tc.values))
			}
		})
	}
}

// TestHistogramAgainstSorted compares the quantiles of random latencies,
// recorded in two histograms and merged, with the exact ones from the
// sorted values: within the resolution, never below.
func TestHistogramAgainstSorted(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var a, b Histogram
	var all []time.Duration
	for i := range 100_000 {
		// Log-uniform from 1 µs to 1 s, the range of the bench's latencies.
		v := time.Duration(float64(time.Microsecond) * math.Pow(10, r.Float64()*6))
		all = append(all, v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	a.Merge(&Histogram{}) // an empty one adds nothing
	slices.Sort(all)
	if a.Count() != len(all) {
		t.Fatalf("merged count %d, want %d", a.Count(), len(all))
	}
	if a.Max() != all[len(all)-1] {
		t.Errorf("Max = %v, want %v", a.Max(), all[len(all)-1])
	}
	for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		exact := all[int(float64(len(all))*q+0.999999)-1]
		got := a.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/128 {
			t.Errorf("Quantile(%v) = %v, want %v to %v", q, got, exact, exact+exact/128)
		}
	}
}
