package server

import "time"

// latencyBounds are the upper bounds, in seconds, of the buckets of the
// job latency and store latency histograms (Prometheus' default buckets,
// widened to the minutes a queued job can wait).
func latencyBounds() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
}

// batchBounds are the upper bounds of the store batch size histogram.
func batchBounds() []float64 {
	return []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}
}

// Histogram is a snapshot of a histogram: Counts[i] counts observations
// at most Bounds[i] and above Bounds[i-1]; the last element of Counts
// counts those above every bound. Counts are not cumulative.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}

// hist accumulates observations into fixed buckets. The owner guards it.
type hist struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

func newHist(bounds []float64) hist {
	return hist{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *hist) observe(v float64) {
	if h.counts == nil {
		return
	}
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.count++
	h.sum += v
}

func (h *hist) observeDuration(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.observe(d.Seconds())
}

func (h *hist) snapshot() Histogram {
	return Histogram{
		Bounds: h.bounds,
		Counts: append([]uint64(nil), h.counts...),
		Count:  h.count,
		Sum:    h.sum,
	}
}
