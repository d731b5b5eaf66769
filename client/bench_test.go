package client_test

import (
	"context"
	"testing"

	"github.com/gworkerd/gworkerd/client"
)

// BenchmarkSubmitBackgroundPipelined measures the bulk-submit rate: one
// Client, background jobs pipelined on one connection, either from many
// goroutines calling SubmitBackground or from one calling
// SubmitBackgroundBatch with 256 jobs per call.
func BenchmarkSubmitBackgroundPipelined(b *testing.B) {
	payload := make([]byte, 100)
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			srv := tg.start(b)
			c, err := client.New([]string{srv.Addr})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(32)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := c.SubmitBackground(ctx, "bench", payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			})
			b.Run("batch256", func(b *testing.B) {
				b.ReportAllocs()
				reqs := make([]client.Request, 256)
				for i := range reqs {
					reqs[i] = client.Request{Function: "bench", Payload: payload}
				}
				for done := 0; done < b.N; done += len(reqs) {
					n := min(len(reqs), b.N-done)
					for _, o := range c.SubmitBackgroundBatch(ctx, reqs[:n]) {
						if o.Err != nil {
							b.Fatal(o.Err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			})
		})
	}
}
