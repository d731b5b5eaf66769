package server

import (
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server/store"
)

// deleter removes finished jobs from the store in the background, so that
// a worker's WORK_COMPLETE does not wait for the store's commit; the
// deletes queued meanwhile share one Store.Delete call. A crash before a
// delete is committed replays the job: at-least-once, as with a crash
// while the job runs.
//
// Order with adds: an Add of a key whose delete is still pending waits
// for that delete first (waitFor). That alone cannot keep a new job's
// record from the delete of an older job with the same (function,
// unique): a delete that timed out may still be applied by the database
// later, after the Add. Deletes are therefore versioned when decided
// (Server.deleteRef, store.Ref.Version) and never remove a record added
// after that.
type deleter struct {
	st  store.Store
	log logrus.FieldLogger

	mu      sync.Mutex
	cond    *sync.Cond
	pending map[store.Ref]int // queued or in-flight deletes per ref (Version 0)
	queue   []store.Ref
	closed  bool
	kick    chan struct{}
	done    chan struct{}
}

func newDeleter(st store.Store, log logrus.FieldLogger) *deleter {
	d := &deleter{
		st:      st,
		log:     log,
		pending: make(map[store.Ref]int),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

// enqueue queues deletes.
func (d *deleter) enqueue(refs []storeRef) {
	d.mu.Lock()
	for _, r := range refs {
		d.pending[store.Ref{Function: r.fn, Key: r.key}]++
		d.queue = append(d.queue, store.Ref{Function: r.fn, Key: r.key, Version: r.version})
	}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// waitFor returns once no delete of the jobs' refs is pending.
func (d *deleter) waitFor(jobs []store.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		return
	}
	for _, j := range jobs {
		for d.pending[j.Ref()] > 0 {
			d.cond.Wait()
		}
	}
}

// run is the deleter's goroutine; it exits after close, once the queue
// is empty.
func (d *deleter) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.mu.Unlock()
			<-d.kick
			d.mu.Lock()
		}
		refs := d.queue
		d.queue = nil
		closed := d.closed
		d.mu.Unlock()
		if len(refs) > 0 {
			if err := d.st.Delete(bgCtx(), refs...); err != nil {
				d.log.WithError(err).WithField("jobs", len(refs)).Error("store: delete failed")
			}
			d.mu.Lock()
			for _, r := range refs {
				r.Version = 0
				if d.pending[r]--; d.pending[r] <= 0 {
					delete(d.pending, r)
				}
			}
			d.cond.Broadcast()
			d.mu.Unlock()
			continue
		}
		if closed {
			return
		}
	}
}

// close flushes the queue and stops the goroutine.
func (d *deleter) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	<-d.done
}
