package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gworkerd/gworkerd/worker"
)

// A pipelined pool (Resident.Depth above 1) gives each handler up to
// Depth jobs at once. The frames of the jobs after the first wait in the
// handler's request pipe, so that the handler reads its next job the
// moment it has written a result, without waiting for gworkerd to wake
// up, reply to the server and be given a job again: for short jobs the
// handler never sleeps between jobs. The price is the one of any
// prefetch: a job taken behind a long one waits for it, while another
// worker might have been free.
//
// Each handler's jobs keep the order they were taken in, twice over:
// their frames are written in that order (the wtail chain) and their
// results read in that order (the tail chain). When a handler dies or
// is killed, the job it was running fails as with a pool of depth 1
// (worker.CrashError: retried), the jobs behind it fail the same way
// without having started, and once they have all ended the next job
// taken starts a new handler in its place.

// slot is one handler of a pipelined pool and the jobs it holds. All
// fields but wbuf are guarded by Resident.mu.
type slot struct {
	h        *handlerProc
	out      int           // jobs taken and not yet ended
	tail     chan struct{} // closed when the newest job taken has ended
	wtail    chan struct{} // closed when the newest job taken has written its frame
	broken   bool          // h died or was killed: its jobs fail, then it is replaced
	starting bool          // a job is starting h's replacement
}

// errNotStarted is the cause of a job that was queued behind one whose
// handler died: it never reached a handler.
var errNotStarted = errors.New("resident handler died before the job started")

func (r *Resident) addSlot(h *handlerProc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.freed == nil {
		r.freed = sync.NewCond(&r.mu)
	}
	r.slots = append(r.slots, &slot{h: h})
}

// runPipelined runs job on the handler holding the fewest jobs, behind
// those.
func (r *Resident) runPipelined(ctx context.Context, job worker.Job) ([]byte, error) {
	t, err := r.reserve(ctx)
	if err != nil {
		return nil, takeError(ctx, err)
	}
	res, err, ok := r.pipelined(ctx, t, job)
	r.mu.Lock()
	if !ok {
		t.sl.broken = true
	}
	t.sl.out--
	close(t.done) // after broken is set: the next job reads it
	r.freed.Broadcast()
	r.mu.Unlock()
	return res, err
}

// ticket is a job's place in a slot: it writes after wrote is closed
// and reads after read is closed; it closes written and done in turn.
type ticket struct {
	sl            *slot
	h             *handlerProc
	wrote, read   chan struct{} // the previous job's; nil for none
	written, done chan struct{}
}

// reserve takes a place for one job on the slot with the fewest jobs
// and room for one more, first replacing a handler that died once its
// jobs have ended; it waits while every slot is full.
func (r *Resident) reserve(ctx context.Context) (ticket, error) {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		if r.freed != nil {
			r.freed.Broadcast()
		}
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.slots) == 0 && !r.closed {
		return ticket{}, errors.New("jobs: a pipelined pool (Depth above 1) serves only the handlers Start started")
	}
	for {
		if r.closed {
			return ticket{}, ErrResidentClosed
		}
		if ctx.Err() != nil {
			return ticket{}, context.Cause(ctx)
		}
		var best *slot
		for _, sl := range r.slots {
			if sl.broken && sl.out == 0 && !sl.starting {
				if err := r.replace(ctx, sl); err != nil {
					return ticket{}, err
				}
			}
			if sl.broken || sl.starting || sl.out >= r.Depth {
				continue
			}
			if best == nil || sl.out < best.out {
				best = sl
			}
		}
		if best != nil {
			t := ticket{sl: best, h: best.h, wrote: best.wtail, read: best.tail,
				written: make(chan struct{}), done: make(chan struct{})}
			best.out++
			best.wtail, best.tail = t.written, t.done
			return t, nil
		}
		r.freed.Wait()
	}
}

// replace starts a new handler in sl, whose handler died and whose
// jobs have all ended. Called with r.mu held; releases it meanwhile.
func (r *Resident) replace(ctx context.Context, sl *slot) error {
	sl.starting = true
	old := sl.h
	r.mu.Unlock()
	if old != nil {
		r.discard(old)
	}
	h, err := r.start(ctx)
	r.mu.Lock()
	sl.starting = false
	r.freed.Broadcast()
	if err != nil {
		sl.h = nil // still broken: the next job tries again
		return err
	}
	sl.h, sl.broken, sl.wtail, sl.tail = h, false, nil, nil
	return nil
}

// pipelined writes job's frame in its turn, then reads its frames in its
// turn. ok is false when the handler must be replaced.
func (r *Resident) pipelined(ctx context.Context, t ticket, job worker.Job) (res []byte, err error, ok bool) {
	h := t.h
	// A job whose context ends kills the handler, and with it the jobs
	// queued behind: contexts end together, at a hard stop (a pipelined
	// function has no per-job timeout: see config).
	stop := context.AfterFunc(ctx, func() { killProcGroup(h.cmd) })
	defer func() {
		if !stop() {
			ok = false
		}
	}()

	if t.wrote != nil {
		<-t.wrote
	}
	if r.isBroken(t.sl) {
		close(t.written)
		return nil, worker.Crash(worker.Exception(errNotStarted)), false
	}
	frame := AppendJobFrame(nil, JobFrame{
		Handle: job.Handle(), Function: job.Function(), Unique: job.Unique(),
		Attempt: job.Attempt(), Workload: job.Payload(),
	})
	_, werr := h.reqW.Write(frame)
	close(t.written)
	if t.read != nil {
		<-t.read
	}
	if werr != nil {
		if r.isBroken(t.sl) {
			return nil, worker.Crash(worker.Exception(errNotStarted)), false
		}
		return nil, r.died(ctx, h, "taking the job", werr), false
	}
	if r.isBroken(t.sl) {
		return nil, worker.Crash(worker.Exception(fmt.Errorf("%w (it was queued on it)", errNotStarted))), false
	}
	h.jobs++ // the reads are in turn: one job at a time touches h here
	return r.await(ctx, h, job)
}

func (r *Resident) isBroken(sl *slot) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sl.broken
}
