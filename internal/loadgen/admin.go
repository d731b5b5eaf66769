package loadgen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// ErrWorkers is returned by WaitWorkers when the server never showed the
// worker count it waited for.
var ErrWorkers = errors.New("loadgen: workers not registered as expected")

// status sends the admin command `status` and parses its reply.
func (c *conn) status() ([]protocol.FunctionStatus, error) {
	if _, err := c.nc.Write([]byte("status\n")); err != nil {
		return nil, fmt.Errorf("loadgen: write: %w", err)
	}
	var lines []string
	for {
		f, err := c.r.Next()
		if err != nil {
			return nil, fmt.Errorf("loadgen: read status: %w", err)
		}
		if !f.Text {
			return nil, fmt.Errorf("loadgen: status: got packet %v, want text lines", f.Packet.Type)
		}
		if string(f.Line) == "." {
			return protocol.ParseStatus(lines)
		}
		lines = append(lines, string(f.Line))
	}
}

// WaitWorkers polls the server's admin `status` until it shows exactly n
// workers registered for fn (a function it does not list has none), or
// until ctx ends. Workers the bench does not run itself say they are
// ready this way, whatever program they are; n = 0 waits until the
// workers of a finished run have gone.
func WaitWorkers(ctx context.Context, addr, fn string, n int) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { _ = c.close() })
	defer stop()
	tick := time.NewTicker(20 * time.Millisecond) // polling the state of other processes
	defer tick.Stop()
	got := 0
	for {
		st, err := c.status()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %d of %d for %s: %w", ErrWorkers, got, n, fn, context.Cause(ctx))
			}
			return err
		}
		got = 0
		for _, f := range st {
			if f.Function == fn {
				got = f.Workers
			}
		}
		if got == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d for %s: %w", ErrWorkers, got, n, fn, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
