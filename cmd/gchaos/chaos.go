package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// sizes are the counts and phase lengths of the scenarios.
type sizes struct {
	window int // submits in flight per connection

	crashLoad  time.Duration // submitting phase, kills spread over it
	crashKills int
	crashConns int // half with distinct uniques, half with empty ones
	crashRate  int // jobs/s of the submitting phase (all connections)
	// crashGearmandLoad is gearmand's submitting phase: its SQLite queue
	// takes a few hundred jobs a second, so it has a shorter phase.
	crashGearmandLoad time.Duration

	diskSize     string // tmpfs size
	diskBallast  int    // bytes of the file written beside the store and removed to give space back
	diskPayload  int    // workload bytes
	diskRefusals int    // refusals that end the first phase
	diskLoad     time.Duration
	diskRefill   int // jobs submitted once space is back
	// diskDrainBound bounds the drain on the full disk: gearmand's SQLite
	// queue cannot delete a completed job there and hands it out again
	// and again.
	diskDrainBound time.Duration

	stallBefore, stallFor, stallAfter time.Duration
	stallTimeout                      time.Duration // gserverd's --store-timeout

	floodCanDo, floodSubmits, floodDistinct int
	floodSettle                             time.Duration // bound of the status after the disconnect

	grace      time.Duration // for the replies after a submitting phase
	drainBound time.Duration
}

func fullSizes() sizes {
	return sizes{
		window:            256,
		crashLoad:         12 * time.Second,
		crashKills:        6,
		crashConns:        4,
		crashRate:         8000,
		crashGearmandLoad: 12 * time.Second,
		diskSize:          "48m", // room for the embedded store's 8 MiB headroom and more
		diskBallast:       8 << 20,
		diskPayload:       8 << 10,
		diskRefusals:      500,
		diskLoad:          30 * time.Second,
		diskRefill:        500,
		diskDrainBound:    10 * time.Second,
		stallBefore:       3 * time.Second,
		stallFor:          5 * time.Second,
		stallAfter:        3 * time.Second,
		stallTimeout:      time.Second,
		floodCanDo:        200_000,
		floodSubmits:      100_000,
		floodDistinct:     100_000,
		floodSettle:       30 * time.Second,
		grace:             15 * time.Second,
		drainBound:        60 * time.Second,
	}
}

func quickSizes() sizes {
	return sizes{
		window:            16,
		crashLoad:         400 * time.Millisecond,
		crashKills:        1,
		crashConns:        2,
		crashRate:         10000,
		crashGearmandLoad: 400 * time.Millisecond,
		diskSize:          "24m",
		diskBallast:       2 << 20,
		diskPayload:       8 << 10,
		diskRefusals:      50,
		diskLoad:          10 * time.Second,
		diskRefill:        100,
		diskDrainBound:    10 * time.Second,
		stallBefore:       300 * time.Millisecond,
		stallFor:          time.Second,
		stallAfter:        300 * time.Millisecond,
		stallTimeout:      500 * time.Millisecond,
		floodCanDo:        2000,
		floodSubmits:      1000,
		floodDistinct:     1000,
		floodSettle:       20 * time.Second,
		grace:             10 * time.Second,
		drainBound:        30 * time.Second,
	}
}

// chaos runs the selected scenarios one after the other, one server at a
// time, and prints each result line as soon as it is known.
type chaos struct {
	cfg   config
	sizes sizes
	out   io.Writer // the result lines
	log   io.Writer // progress
}

func (ch *chaos) logf(format string, args ...any) {
	fmt.Fprintf(ch.log, "gchaos: "+format+"\n", args...)
}

// run runs the scenarios and returns their results, in the order printed.
func (ch *chaos) run(ctx context.Context) []*result {
	var out []*result
	for _, s := range ch.cfg.scenarios {
		var rs []func(context.Context) *result
		switch s {
		case "crash":
			rs = append(rs,
				func(ctx context.Context) *result { return ch.crashGserverd(ctx, "always") },
				func(ctx context.Context) *result { return ch.crashGserverd(ctx, "interval") })
			if ch.cfg.gearmand != "" {
				rs = append(rs, ch.crashGearmand)
			}
		case "disk-full":
			rs = append(rs, func(ctx context.Context) *result { return ch.diskFull(ctx, "gserverd") })
			if ch.cfg.gearmand != "" {
				rs = append(rs, func(ctx context.Context) *result { return ch.diskFull(ctx, "gearmand") })
			}
		case "store-stall":
			rs = append(rs, ch.storeStall)
		case "flood":
			rs = append(rs, func(ctx context.Context) *result { return ch.flood(ctx, "gserverd") })
			if ch.cfg.gearmand != "" {
				rs = append(rs, func(ctx context.Context) *result { return ch.flood(ctx, "gearmand") })
			}
		}
		for _, f := range rs {
			if ctx.Err() != nil {
				return out
			}
			start := time.Now()
			r := f(ctx)
			r.note("%s", time.Since(start).Round(100*time.Millisecond))
			fmt.Fprintln(ch.out, r.String())
			out = append(out, r)
		}
	}
	return out
}

// tempDir makes a fresh directory under cfg.tmpDir; the caller removes it.
func (ch *chaos) tempDir(pattern string) (string, error) {
	d, err := os.MkdirTemp(ch.cfg.tmpDir, "gchaos-"+pattern+"-")
	if err != nil {
		return "", fmt.Errorf("gchaos: %w", err)
	}
	return d, nil
}

// load is one submitting phase: a feed run in the background, with a
// bystander timing round trips on its own connection throughout.
type load struct {
	f    *feed
	stop chan struct{}
	done chan struct{}
}

func startLoad(ctx context.Context, f *feed, grace time.Duration) *load {
	l := &load{f: f, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		f.run(ctx, l.stop, grace)
	}()
	return l
}

// end stops submitting and waits for the replies (at most the grace).
func (l *load) end() {
	close(l.stop)
	<-l.done
}

// wait waits for d, or until ctx ends; false if ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func newFeed(fn string, s *server, led *ledger, ids *atomic.Int64, conns, payload, window int) *feed {
	f := &feed{fn: fn, payload: payload, window: window, addr: s.addr, led: led, ids: ids}
	for i := range conns {
		f.uniques = append(f.uniques, i%2 == 0)
	}
	return f
}
