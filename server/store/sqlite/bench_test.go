package sqlite

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
)

// BenchmarkAddConcurrent measures group-committed Adds with Sync: always
// from 128 goroutines (64 x GOMAXPROCS), one 200-byte job each.
func BenchmarkAddConcurrent(b *testing.B) {
	benchAdd(b, 64)
}

// BenchmarkAddSingle measures one Add at a time: a commit's latency.
func BenchmarkAddSingle(b *testing.B) {
	benchAdd(b, 0)
}

func benchAdd(b *testing.B, parallelism int) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "q.sqlite")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 200)
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	add := func() {
		if err := s.Add(context.Background(), store.Job{Function: "bench", Key: store.NewKey(start, seq.Add(1)), Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	if parallelism == 0 {
		for i := 0; i < b.N; i++ {
			add()
		}
	} else {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				add()
			}
		})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "adds/s")
	st := s.Stats()
	b.ReportMetric(float64(st.Writes)/float64(max(st.Commits, 1)), "jobs/commit")
}
