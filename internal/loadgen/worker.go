package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gworkerd/gworkerd/protocol"
)

// workers is a pool of raw Gearman workers for one function. Each worker runs
// the classic loop: GRAB_JOB; on JOB_ASSIGN it answers WORK_COMPLETE with
// the workload as result and grabs again in the same write; on NO_JOB it
// sends PRE_SLEEP and waits for NOOP.
//
// The pool owns one goroutine per worker; stop closes the connections and
// waits for them. done counts the jobs completed; reached is closed when
// done reaches the target set by setTarget.
type workers struct {
	conns []*conn
	wg    sync.WaitGroup

	done     atomic.Int64
	target   atomic.Int64 // -1 until setTarget
	reached  chan struct{}
	reachOne sync.Once

	stopping atomic.Bool
	failed   chan struct{} // closed on the first worker error
	failOnce sync.Once
	err      error // the first worker error; written once under failOnce
}

// startWorkers connects n workers for fn to addr and starts their loops. Every
// worker has sent CAN_DO when it returns (an ECHO round trip proves the
// server read it).
func startWorkers(ctx context.Context, addr, fn string, n int) (*workers, error) {
	w := &workers{reached: make(chan struct{}), failed: make(chan struct{})}
	w.target.Store(-1)
	for range n {
		c, err := dial(ctx, addr)
		if err != nil {
			w.stop()
			return nil, err
		}
		w.conns = append(w.conns, c)
		c.add(protocol.CanDo, fn)
		if err := c.echo(); err != nil {
			w.stop()
			return nil, fmt.Errorf("loadgen: worker CAN_DO: %w", err)
		}
	}
	for _, c := range w.conns {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if err := w.loop(c); err != nil && !w.stopping.Load() {
				w.failOnce.Do(func() { w.err = err; close(w.failed) })
			}
		}()
	}
	return w, nil
}

func (w *workers) loop(c *conn) error {
	if err := c.send(protocol.GrabJob); err != nil {
		return err
	}
	for {
		p, err := c.next()
		if err != nil {
			return err
		}
		switch p.Type {
		case protocol.JobAssign:
			c.add(protocol.WorkComplete, string(p.Arg(0)), string(p.Arg(2)))
			c.add(protocol.GrabJob)
			if err := c.flush(); err != nil {
				return err
			}
			w.count()
		case protocol.NoJob:
			if err := c.send(protocol.PreSleep); err != nil {
				return err
			}
		case protocol.Noop:
			if err := c.send(protocol.GrabJob); err != nil {
				return err
			}
		case protocol.EchoRes:
		default:
			return fmt.Errorf("loadgen: worker got unexpected %v", p.Type)
		}
	}
}

func (w *workers) count() {
	n := w.done.Add(1)
	if t := w.target.Load(); t >= 0 && n >= t {
		w.reachOne.Do(func() { close(w.reached) })
	}
}

// setTarget sets how many completed jobs close reached.
func (w *workers) setTarget(n int) {
	w.target.Store(int64(n))
	if w.done.Load() >= int64(n) {
		w.reachOne.Do(func() { close(w.reached) })
	}
}

// ErrDrainTimeout is returned when the workers did not finish the jobs
// within the scenario's bound; the result counts what they did finish.
var ErrDrainTimeout = errors.New("loadgen: workers did not finish the jobs in time")

// wait blocks until the target is reached, a worker fails or ctx ends.
func (w *workers) wait(ctx context.Context) error {
	select {
	case <-w.reached:
		return nil
	case <-w.failed:
		return w.err
	case <-ctx.Done():
		return fmt.Errorf("%w (%d of %d): %w", ErrDrainTimeout, w.done.Load(), w.target.Load(), ctx.Err())
	}
}

// stop closes the worker connections and waits for their goroutines.
func (w *workers) stop() {
	w.stopping.Store(true)
	for _, c := range w.conns {
		_ = c.close()
	}
	w.wg.Wait()
}
