package workerd

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/worker"
)

// ceilingEvery is how often a child with a memory_hard_limit measures
// its process tree while it runs a job.
const ceilingEvery = 250 * time.Millisecond

// memoryCeiling enforces memory_hard_limit in a child: while a job runs,
// it measures the child's memory every ceilingEvery: the working set of
// its cgroup when the master gave it one (the child, its resident
// handlers, its job programs and whatever they started, however
// detached), else the RSS of its process tree. Once over the limit it
// fails the running jobs with WORK_EXCEPTION saying why. Their
// handlers' contexts end, which kills the job programs and resident
// handlers that hold the memory; the job is not retried and the server
// does not requeue it, so a job that floods memory cannot come back for
// ever. memory_limit, checked by the master between jobs, recycles a
// child that stays big.
type memoryCeiling struct {
	limit   int64
	rss     func() int64 // the child's memory, bytes
	subject string       // what rss measures, for the message: "the child's cgroup"
	clk     clock.Clock
	log     logrus.FieldLogger
}

// watch runs until ctx ends.
func (m memoryCeiling) watch(ctx context.Context, w *worker.Worker) {
	t := m.clk.NewTimer(ceilingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if len(w.Stats().Running) > 0 {
			if rss := m.rss(); rss > m.limit {
				reason := fmt.Sprintf("memory_hard_limit: %s uses %d MiB, over the limit of %d MiB", m.subject, rss>>20, m.limit>>20)
				// Failed jobs count as running until their handlers
				// return: only the newly failed are logged.
				if n := w.FailRunning(reason); n > 0 {
					m.log.WithFields(logrus.Fields{"rss": rss, "memory_hard_limit": m.limit, "jobs": n}).Error("over memory_hard_limit during a job: failing it")
				}
			}
		}
		t.Reset(ceilingEvery)
	}
}
