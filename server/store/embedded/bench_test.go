package embedded

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/gworkerd/gworkerd/server/store"
)

// BenchmarkAddConcurrent measures group-committed Adds with Sync: always
// from 128 goroutines (64 x GOMAXPROCS), one 200-byte job each.
func BenchmarkAddConcurrent(b *testing.B) {
	benchAdd(b, 64)
}

// BenchmarkAddSingle measures one Add at a time: the fsync latency.
func BenchmarkAddSingle(b *testing.B) {
	benchAdd(b, 0)
}

// BenchmarkAddPipelined measures Adds as gserverd makes them under
// pipelined submits: 128 goroutines, Sync none (what is left is the
// store's own work, not the disk's), keys made by NewKey (an empty
// unique) or uniques. Run it with enough jobs to flush memtables
// (-benchtime 400000x): the lookup of a new job's key then reaches
// tables.
func BenchmarkAddPipelined(b *testing.B) {
	for _, unique := range []bool{false, true} {
		b.Run(fmt.Sprintf("unique=%v", unique), func(b *testing.B) {
			benchAddKeys(b, 64, SyncNone, unique)
		})
	}
}

func benchAdd(b *testing.B, parallelism int) {
	benchAddKeys(b, parallelism, SyncAlways, false)
}

func benchAddKeys(b *testing.B, parallelism int, sync SyncMode, unique bool) {
	s, err := Open(context.Background(), Options{Dir: b.TempDir(), Sync: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 200)
	var seq atomic.Uint64
	start := time.Now()
	key := func() string {
		if unique {
			return fmt.Sprintf("u-%d-%d", start.UnixNano(), seq.Add(1))
		}
		return store.NewKey(time.Now(), seq.Add(1)) // as the server makes them
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallelism == 0 {
		for i := 0; i < b.N; i++ {
			if err := s.Add(context.Background(), store.Job{Function: "bench", Key: key(), Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Add(context.Background(), store.Job{Function: "bench", Key: key(), Data: data}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "adds/s")
}

// BenchmarkReplay1M replays a store of 1,000,000 jobs (100-byte payloads).
// The store is filled by writing pebble batches directly, in the store's
// format, to keep the setup short.
func BenchmarkReplay1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	data := make([]byte, 100)
	var buf []byte
	for i := 0; i < n; i += 10000 {
		batch := s.db.NewBatch()
		for k := i; k < i+10000; k++ {
			j := store.Job{Function: fmt.Sprintf("fn%d", k%10), Key: store.NewKey(now, uint64(k)), Priority: k % 3, Data: data}
			buf = encodeJob(buf[:0], &j, blobRef{})
			seq := uint64(k + 1)
			_ = batch.Set(jobKey(seq), buf, nil)
			_ = batch.Set(indexKey(j.Ref()), indexEntry{seq: seq}.encode(), nil)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s, err := Open(context.Background(), Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		if err := s.Replay(context.Background(), func(store.Job) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("replayed %d jobs, want %d", got, n)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/open+replay")
		_ = s.Close()
	}
}
