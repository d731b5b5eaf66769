package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/loadgen"
)

// clientBulk measures background submits through the client package:
// l.Conns goroutines share one Client (so one connection per server, with
// their submits pipelined on it) and call SubmitBackground until l.Jobs
// were claimed or l.Duration has passed. Each call is bounded by l.Grace.
func clientBulk(ctx context.Context, addr string, l loadgen.Load) (loadgen.Result, error) {
	c, err := client.New([]string{addr})
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("client scenario: %w", err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte{'x'}, max(l.Payload, 100))
	start := time.Now()
	stopAt := start.Add(l.Duration)
	var next, created atomic.Int64
	var timed atomic.Bool
	errs := make([]error, max(l.Conns, 1))
	var wg sync.WaitGroup
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if next.Load() >= int64(l.Jobs) {
					return
				}
				if time.Now().After(stopAt) {
					timed.Store(true)
					return
				}
				if next.Add(1) > int64(l.Jobs) {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, l.Grace)
				_, err := c.SubmitBackground(cctx, loadgen.Function, payload)
				cancel()
				if err != nil {
					errs[g] = err
					return
				}
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	return loadgen.Result{
		Jobs:      int(created.Load()),
		Submitted: int(min(next.Load(), int64(l.Jobs))),
		Elapsed:   time.Since(start),
		TimeBound: timed.Load(),
	}, errors.Join(errs...)
}

// clientBatch measures client.SubmitBackgroundBatch: two goroutines send
// batches of batchSize jobs until l.Jobs or l.Duration.
func clientBatch(ctx context.Context, addr string, l loadgen.Load) (loadgen.Result, error) {
	const batchSize = 1000
	c, err := client.New([]string{addr})
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("client scenario: %w", err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte{'x'}, max(l.Payload, 100))
	start := time.Now()
	stopAt := start.Add(l.Duration)
	var next, created atomic.Int64
	var timed atomic.Bool
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if time.Now().After(stopAt) && next.Load() < int64(l.Jobs) {
					timed.Store(true)
					return
				}
				end := next.Add(batchSize)
				n := batchSize - max(0, int(end)-l.Jobs)
				if n <= 0 {
					return
				}
				reqs := make([]client.Request, n)
				for i := range reqs {
					reqs[i] = client.Request{Function: loadgen.Function, Payload: payload}
				}
				cctx, cancel := context.WithTimeout(ctx, l.Grace)
				out := c.SubmitBackgroundBatch(cctx, reqs)
				cancel()
				for _, s := range out {
					if s.Err != nil {
						errs[g] = s.Err
						return
					}
					created.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return loadgen.Result{
		Jobs:      int(created.Load()),
		Submitted: int(min(next.Load(), int64(l.Jobs))),
		Elapsed:   time.Since(start),
		TimeBound: timed.Load(),
	}, errors.Join(errs...)
}
