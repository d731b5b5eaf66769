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

// ForegroundPipelined measures workers that the bench does not run itself
// (a worker daemon, PHP worker loops), serving l.Function. l.Conns
// connections each keep up to l.Window SUBMIT_JOB in flight until l.Jobs
// were claimed or l.Duration has passed, and wait, at most l.Grace more,
// for the WORK_COMPLETE of each. The window keeps the server's queue from
// running dry, so the rate is the workers' throughput (plus the server's
// and this client's share of the CPUs).
//
// A job counts when its result equals want (any result when want is nil);
// another result, WORK_FAIL or WORK_EXCEPTION is an error that stops that
// connection. Elapsed runs from the first submit to the last reply.
func ForegroundPipelined(ctx context.Context, addr string, l Load, want []byte) (Result, error) {
	return pipeline(ctx, addr, l, pipe{submit: protocol.SubmitJob, want: want})
}

// pipe is what pipeline submits and what ends a job.
type pipe struct {
	// submit is SUBMIT_JOB_BG, whose job ends with its JOB_CREATED, or
	// SUBMIT_JOB, whose job ends with its WORK_COMPLETE.
	submit protocol.Type
	// want, for SUBMIT_JOB, is the result every job must return; nil
	// takes any.
	want []byte
}

// pipeline submits jobs over l.Conns connections, each keeping up to
// l.Window of them in flight, until l.Jobs were claimed or l.Duration has
// passed. It returns when every sent job has ended as pp says, or when
// l.Grace after the end of submitting has passed (then the result counts
// what ended and err says so).
func pipeline(ctx context.Context, addr string, l Load, pp pipe) (Result, error) {
	l = l.withDefaults()
	payload := l.Workload()
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
	var ended, sent atomic.Int64
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pipelineConn(hardCtx, c, l, pp, cl, payload, &sent, &ended)
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
	r := Result{Jobs: int(ended.Load()), Submitted: int(sent.Load()), Elapsed: elapsed, TimeBound: cl.timed.Load()}
	if hardErr != nil {
		return r, hardErr
	}
	return r, errors.Join(errs...)
}

// pipelineConn runs one pipelined connection: a writer (this goroutine)
// and a reader goroutine that counts the jobs that ended (JOB_CREATED or
// WORK_COMPLETE, as pp says) in ended and returns a window token for
// each. After its last submit the writer records how many it sent and
// sends ECHO_REQ as an end marker. The reader stops once it has seen the
// ECHO_RES and as many jobs end as were sent: a server that group-commits
// durable jobs may answer the ECHO before the last JOB_CREATED, and a
// foreground job ends long after it, so the ECHO alone does not end the
// stream.
func pipelineConn(ctx context.Context, c *conn, l Load, pp pipe, cl *claimer, payload string, sent, ended *atomic.Int64) error {
	fg := pp.submit == protocol.SubmitJob
	tokens := make(chan struct{}, l.Window)
	for range l.Window {
		tokens <- struct{}{}
	}
	var connSent atomic.Int64 // final once the ECHO_REQ is written
	readErr := make(chan error, 1)
	go func() {
		readErr <- func() error {
			var connEnded int64
			echoed := false
			for {
				p, err := c.next()
				if err != nil {
					return err
				}
				switch t := p.Type; {
				case t == protocol.JobCreated && !fg, t == protocol.WorkComplete && fg:
					if fg && pp.want != nil && !bytes.Equal(p.Arg(1), pp.want) {
						return fmt.Errorf("loadgen: job %s returned %q, want %q", p.Arg(0), p.Arg(1), pp.want)
					}
					connEnded++
					ended.Add(1)
					tokens <- struct{}{}
					if echoed && connEnded == connSent.Load() {
						return nil
					}
				case fg && (t == protocol.JobCreated || t == protocol.WorkStatus || t == protocol.WorkData || t == protocol.WorkWarning):
					// Not the end of a foreground job.
				case fg && (t == protocol.WorkFail || t == protocol.WorkException):
					return fmt.Errorf("loadgen: job %s ended with %v %q", p.Arg(0), t, p.Arg(1))
				case t == protocol.EchoRes:
					echoed = true
					if connEnded == connSent.Load() {
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
				c.add(pp.submit, l.Function, l.unique(i), payload)
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
