package main

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
// it measures the child's process tree (the child, its resident handlers
// and job programs) every ceilingEvery, and once the tree is over the
// limit it fails the running jobs with WORK_EXCEPTION saying why. Their
// handlers' contexts end, which kills the job programs and resident
// handlers that hold the memory; the job is not retried and the server
// does not requeue it, so a job that floods memory cannot come back for
// ever. memory_limit, checked by the master between jobs, recycles a
// child that stays big.
type memoryCeiling struct {
	limit int64
	rss   func() int64 // the tree's resident set, bytes
	clk   clock.Clock
	log   logrus.FieldLogger
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
				reason := fmt.Sprintf("memory_hard_limit: the job's process tree uses %d MiB, over the limit of %d MiB", rss>>20, m.limit>>20)
				n := w.FailRunning(reason)
				m.log.WithFields(logrus.Fields{"rss": rss, "memory_hard_limit": m.limit, "jobs": n}).Error("over memory_hard_limit during a job: failing it")
			}
		}
		t.Reset(ceilingEvery)
	}
}
