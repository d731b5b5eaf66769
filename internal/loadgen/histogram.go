package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits is the histogram's resolution: each power of two is split
// into 2^histSubBits buckets, so a recorded value is known within
// 1/2^histSubBits (0.8%) of itself. Values below 2^(histSubBits+1) ns
// are exact.
const histSubBits = 7

// histBuckets covers every non-negative int64.
const histBuckets = (64 - histSubBits) << histSubBits

// Histogram counts durations in log-linear buckets (the HDR histogram's
// layout): exact below 256 ns, within 0.8% above, over the whole range of
// time.Duration, in a fixed 58 KiB. The zero value is empty and ready.
// It is not safe for concurrent use; Merge combines the histograms of
// several goroutines.
type Histogram struct {
	counts []uint64 // allocated on the first Record
	n      uint64
	max    time.Duration
}

// histIndex returns the bucket of v >= 0.
func histIndex(v uint64) int {
	if v < 2<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	return shift<<histSubBits + int(v>>shift)
}

// histUpper returns the largest value of bucket i.
func histUpper(i int) uint64 {
	if i < 2<<histSubBits {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	m := uint64(i - shift<<histSubBits)
	return (m+1)<<shift - 1
}

// Record adds one duration; a negative one counts as zero.
func (h *Histogram) Record(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	d = max(d, 0)
	h.counts[histIndex(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() int { return int(h.n) }

// Max returns the largest duration recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the smallest recorded value v such that a fraction q
// (0 < q <= 1) of the values is at most v, rounded up to the end of its
// bucket (never above Max). An empty histogram returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histUpper(i)), h.max)
		}
	}
	return h.max
}
