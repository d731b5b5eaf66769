package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// pipeline submits background jobs over l.Conns connections, each keeping
// up to l.Window SUBMIT_JOB_BG in flight, until l.Jobs were claimed or
// l.Duration has passed. It returns when every sent job got its
// JOB_CREATED, or when l.Grace after the end of submitting has passed (then
// the result counts what arrived and err says so).
func pipeline(ctx context.Context, addr string, l Load) (Result, error) {
	l = l.withDefaults()
	payload := string(bytes.Repeat([]byte{'x'}, l.Payload))
	conns := make([]*conn, 0, l.Conns)
	defer func() {
		for _, c := range conns {
			_ = c.close()
		}
	}()
	for range l.Conns {
		c, err := dial(ctx, addr)
		if err != nil {
			return Result{}, err
		}
		conns = append(conns, c)
	}
	hardCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	cl := newClaimer(l, start)
	var created, sent atomic.Int64
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pipelineConn(hardCtx, c, l, cl, payload, &sent, &created)
		}()
	}
	// The hard bound: Duration plus Grace.
	timer := time.NewTimer(l.Duration + l.Grace)
	defer timer.Stop()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	var hardErr error
	select {
	case <-finished:
	case <-timer.C:
		hardErr = fmt.Errorf("loadgen: replies still missing %v after the time bound: %w", l.Grace, context.DeadlineExceeded)
	case <-ctx.Done():
		hardErr = ctx.Err()
	}
	elapsed := time.Since(start)
	cancel()
	for _, c := range conns {
		_ = c.close() // unblocks readers still waiting
	}
	<-finished
	r := Result{Jobs: int(created.Load()), Submitted: int(sent.Load()), Elapsed: elapsed, TimeBound: cl.timed.Load()}
	if hardErr != nil {
		return r, hardErr
	}
	return r, errors.Join(errs...)
}

// pipelineConn runs one pipelined connection: a writer (this goroutine)
// and a reader goroutine that counts JOB_CREATED and returns a window
// token for each. After its last submit the writer records how many it
// sent and sends ECHO_REQ as an end marker. The reader stops once it has
// seen the ECHO_RES and as many JOB_CREATED as were sent: a server that
// group-commits durable jobs may answer the ECHO before the last
// JOB_CREATED, so the ECHO alone does not end the stream.
func pipelineConn(ctx context.Context, c *conn, l Load, cl *claimer, payload string, sent, created *atomic.Int64) error {
	tokens := make(chan struct{}, l.Window)
	for range l.Window {
		tokens <- struct{}{}
	}
	var connSent atomic.Int64 // final once the ECHO_REQ is written
	readErr := make(chan error, 1)
	go func() {
		readErr <- func() error {
			var connCreated int64
			echoed := false
			for {
				p, err := c.next()
				if err != nil {
					return err
				}
				switch p.Type {
				case protocol.JobCreated:
					connCreated++
					created.Add(1)
					tokens <- struct{}{}
					if echoed && connCreated == connSent.Load() {
						return nil
					}
				case protocol.EchoRes:
					echoed = true
					if connCreated == connSent.Load() {
						return nil
					}
				default:
					return fmt.Errorf("loadgen: submitter got unexpected %v", p.Type)
				}
			}
		}()
	}()
	writeErr := func() error {
		const batchBytes = 32 << 10
		for {
			select {
			case <-tokens:
			case <-ctx.Done():
				return ctx.Err()
			case err := <-readErr:
				readErr <- err // leave it for the final receive
				if err == nil {
					err = errors.New("loadgen: submitter reader stopped early")
				}
				return err
			}
			more := true
			for more {
				i := cl.claim()
				if i < 0 {
					if err := c.flush(); err != nil {
						return err
					}
					return c.send(protocol.EchoReq, "end")
				}
				c.add(protocol.SubmitJobBg, Function, l.unique(i), payload)
				sent.Add(1)
				connSent.Add(1)
				if len(c.out) >= batchBytes {
					break
				}
				select {
				case <-tokens:
				default:
					more = false
				}
			}
			if err := c.flush(); err != nil {
				return err
			}
		}
	}()
	if writeErr != nil {
		_ = c.close()
		<-readErr
		return writeErr
	}
	return <-readErr
}
