package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/embedded"
)

// BenchmarkReplay1M measures how long the gserverd binary takes to start on
// an embedded store holding 1,000,000 background jobs (64-byte payloads):
// from exec until `status` reports all of them (gserverd replays before it
// accepts the first connection). Not part of make test; run it with
//
//	go test -run '^$' -bench Replay1M -benchtime 1x ./cmd/gserverd
//
// It reports replay-s (seconds) and jobs/s. Measured when it was written
// (2 CPUs, November 2026): 3.1 to 3.5 s, about 300,000 jobs/s.
func BenchmarkReplay1M(b *testing.B) {
	const jobs = 1_000_000
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "data")
	st, err := embedded.Open(ctx, embedded.Options{Dir: dir, Sync: embedded.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	batch := make([]store.Job, 0, 4096)
	for i := 0; i < jobs; i++ {
		batch = append(batch, store.Job{Function: "f" + strconv.Itoa(i%10), Key: "u" + strconv.Itoa(i), Priority: i % 3, Data: payload})
		if len(batch) == cap(batch) || i == jobs-1 {
			if err := st.Add(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	bin := testpeer.Binary(b, "gserverd")
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		port := testpeer.FreePort(b)
		start := time.Now()
		p := testpeer.Start(b, exec.Command(bin, "-L", "127.0.0.1", "-p", strconv.Itoa(port), "--data-dir", dir, "--log-file", "stderr", "--verbose", "INFO"))
		addr := "127.0.0.1:" + strconv.Itoa(port)
		testpeer.WaitListening(b, addr, 10*time.Minute)
		n := 0
		for f := 0; f < 10; f++ {
			n += queueTotal(b, addr, "f"+strconv.Itoa(f))
		}
		total += time.Since(start)
		if n != jobs {
			b.Fatalf("status shows %d jobs after start, want %d\n%s", n, jobs, p.Output())
		}
		p.Stop()
	}
	sec := total.Seconds() / float64(b.N)
	b.ReportMetric(sec, "replay-s")
	b.ReportMetric(jobs/sec, "jobs/s")
	fmt.Printf("BenchmarkReplay1M: %d jobs replayed and served in %.2f s (%.0f jobs/s)\n", jobs, sec, jobs/sec)
}
