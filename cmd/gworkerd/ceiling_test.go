package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// A job whose program floods memory (issue 10, item 16): over
// memory_hard_limit (default: twice memory_limit) during the job, the
// job fails with WORK_EXCEPTION saying why, once: it is neither retried
// by gworkerd nor requeued by the server (gserverd or gearmand), and the
// child goes on serving.
func TestMemoryHardLimitFailsJob(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "python3")
	for _, srv := range []struct {
		name  string
		start func(testing.TB, ...string) *testpeer.Process
	}{{"gserverd", testpeer.StartGserverd}, {"gearmand", testpeer.StartGearmand}} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			s := srv.start(t)
			runs := filepath.Join(t.TempDir(), "runs")
			e := newEnv(t, s.Addr, "  hog:\n    count: 1\n    retries: 2\n    memory_limit: 40MB\n", 30*time.Second)
			// 300 MiB written (so resident), then a long sleep: only the
			// limit ends it. "ok" answers at once.
			e.script("hog", `echo run >> `+runs+`
if [ "$(cat)" = ok ]; then echo fine; exit 0; fi
exec python3 -c "import time; b = b'x' * (300 << 20); time.sleep(600)"`)
			e.must("start")
			master := e.masterPid()
			defer func() { e.run("stop"); reap(master) }()
			waitFor(t, 30*time.Second, "the hog child", func() bool { return len(e.running("hog")) == 1 })

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := submitJob(ctx, s.Addr, "hog", "flood", false, true)
			if err == nil || !strings.Contains(err.Error(), "memory_hard_limit") || !strings.Contains(err.Error(), "over the limit of 80 MiB") {
				t.Fatalf("flooding job: %q, %v; want the exception naming memory_hard_limit and 80 MiB\nlog:\n%s", out, err, e.logTail())
			}
			waitFor(t, 30*time.Second, "the server forgets the job", func() bool {
				total, _ := adminStatus(t, s.Addr, "hog")
				return total == 0
			})
			// Were the job requeued or retried, it would run (and fail)
			// again before this one.
			if out, err := submitJob(ctx, s.Addr, "hog", "ok", false, true); err != nil || strings.TrimSpace(out) != "fine" {
				t.Fatalf("next job: %q, %v\nlog:\n%s", out, err, e.logTail())
			}
			b, err := os.ReadFile(runs)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), "run\n"); n != 2 {
				t.Errorf("the program ran %d times, want 2: the flooding job once, then the next", n)
			}
			if !strings.Contains(e.logTail(), "over memory_hard_limit during a job") {
				t.Errorf("no log line for the limit:\n%s", e.logTail())
			}
		})
	}
}
