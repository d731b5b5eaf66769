package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// errDrainBound reports a drain cut by its time bound.
var errDrainBound = errors.New("drain incomplete")

// drain connects n raw workers for fn to addr and records in led every
// job they are given (WORK_COMPLETE answers each), until a worker that
// got NO_JOB sees in the admin status that fn has no job left, or ctx
// ends (the error then wraps errDrainBound and says how many were left).
// A worker whose connection the server closes connects again, as a real
// worker does; drops counts those reconnections.
func drain(ctx context.Context, addr, fn string, n int, led *ledger, drops *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		finished atomic.Bool
		errMu    sync.Mutex
		firstErr error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := drainWorker(ctx, addr, fn, led, drops)
			if err == nil {
				finished.Store(true)
			}
			cancel() // one worker's end, either way, ends the others
			if err != nil && !finished.Load() {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if finished.Load() {
		return nil
	}
	return firstErr
}

// drainWorker runs one worker's sessions until the drain is done or ctx
// ends.
func drainWorker(ctx context.Context, addr, fn string, led *ledger, drops *atomic.Int64) error {
	retry := time.NewTicker(20 * time.Millisecond) // a worker's reconnection pace
	defer retry.Stop()
	for {
		err := drainSession(ctx, addr, fn, led)
		var broke errBroken
		if !errors.As(err, &broke) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last: %v)", errDrainBound, err)
		}
		drops.Add(1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", errDrainBound, err)
		case <-retry.C:
		}
	}
}

// errBroken is a worker connection the server closed, broke or refused.
type errBroken struct{ err error }

func (e errBroken) Error() string { return e.err.Error() }
func (e errBroken) Unwrap() error { return e.err }

// drainSession is one worker connection: GRAB_JOB, JOB_ASSIGN,
// WORK_COMPLETE. On NO_JOB it asks the admin status whether fn still has
// jobs (held by another worker, or not yet visible): if none, the drain
// is done; otherwise it sends PRE_SLEEP and grabs again on NOOP or after
// 200ms.
func drainSession(ctx context.Context, addr, fn string, led *ledger) error {
	c, err := dial(ctx, addr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", errDrainBound, err)
		}
		return errBroken{err} // the server is there, the worker tries again
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	bound := func(err error) error {
		var ne *net.OpError
		if errors.As(err, &ne) && ctx.Err() == nil {
			err = errBroken{err} // a write on a connection the server closed
		}
		if ctx.Err() != nil {
			left, qerr := queuedAt(context.Background(), addr, fn)
			if qerr != nil {
				return fmt.Errorf("%w (server not answering: %v)", errDrainBound, qerr)
			}
			return fmt.Errorf("%w: %d left", errDrainBound, left)
		}
		return err
	}
	c.add(protocol.CanDo, fn)
	c.add(protocol.GrabJob)
	if err := c.flush(); err != nil {
		return bound(err)
	}
	for {
		fr, err := c.r.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = c.nc.SetReadDeadline(time.Time{})
				if err := c.send(protocol.GrabJob); err != nil {
					return bound(err)
				}
				continue
			}
			return bound(errBroken{fmt.Errorf("gchaos: worker read: %w", err)})
		}
		if fr.Text {
			return fmt.Errorf("gchaos: worker got text line %q", fr.Line)
		}
		p := &fr.Packet
		switch p.Type {
		case protocol.JobAssign:
			led.ran(p.Arg(2))
			c.add(protocol.WorkComplete, string(p.Arg(0)), "")
			c.add(protocol.GrabJob)
			if err := c.flush(); err != nil {
				return bound(err)
			}
		case protocol.NoJob:
			left, err := queuedAt(ctx, addr, fn)
			if err != nil {
				return bound(err)
			}
			if left == 0 {
				return nil
			}
			if err := c.send(protocol.PreSleep); err != nil {
				return bound(err)
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		case protocol.Noop:
			_ = c.nc.SetReadDeadline(time.Time{})
			if err := c.send(protocol.GrabJob); err != nil {
				return bound(err)
			}
		default:
			return fmt.Errorf("gchaos: worker got unexpected %v %q", p.Type, p.Args)
		}
	}
}
