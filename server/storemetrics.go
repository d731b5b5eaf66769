package server

import (
	"context"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/server/store"
)

// StoreStats describes the writes to the persistent store.
type StoreStats struct {
	// Add and Delete describe Store.Add and Store.Delete calls.
	Add    StoreOpStats `json:"add"`
	Delete StoreOpStats `json:"delete"`
}

// StoreOpStats describes one kind of store call.
type StoreOpStats struct {
	// Latency is the duration of each call, in seconds.
	Latency Histogram `json:"latency"`
	// Batch is the number of jobs each call wrote.
	Batch Histogram `json:"batch"`
	// Errors counts the calls that failed.
	Errors uint64 `json:"errors"`
}

// meteredStore wraps the store and measures each write.
type meteredStore struct {
	store.Store
	clk clock.Clock

	mu     sync.Mutex
	add    opHists
	delete opHists
}

type opHists struct {
	latency, batch hist
	errors         uint64
}

func newOpHists() opHists {
	return opHists{latency: newHist(latencyBounds()), batch: newHist(batchBounds())}
}

func newMeteredStore(st store.Store, clk clock.Clock) *meteredStore {
	return &meteredStore{Store: st, clk: clk, add: newOpHists(), delete: newOpHists()}
}

func (m *meteredStore) Add(ctx context.Context, jobs ...store.Job) error {
	start := m.clk.Now()
	err := m.Store.Add(ctx, jobs...)
	m.record(&m.add, start, len(jobs), err)
	return err
}

func (m *meteredStore) Delete(ctx context.Context, refs ...store.Ref) error {
	start := m.clk.Now()
	err := m.Store.Delete(ctx, refs...)
	m.record(&m.delete, start, len(refs), err)
	return err
}

func (m *meteredStore) record(h *opHists, start time.Time, n int, err error) {
	d := m.clk.Now().Sub(start)
	m.mu.Lock()
	h.latency.observeDuration(d)
	h.batch.observe(float64(n))
	if err != nil {
		h.errors++
	}
	m.mu.Unlock()
}

func (m *meteredStore) stats() *StoreStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := func(h *opHists) StoreOpStats {
		return StoreOpStats{Latency: h.latency.snapshot(), Batch: h.batch.snapshot(), Errors: h.errors}
	}
	return &StoreStats{Add: snap(&m.add), Delete: snap(&m.delete)}
}
