package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// feed submits background jobs (SUBMIT_JOB_BG) over several pipelined
// connections, each keeping up to window submits in flight, and records
// every reply in a ledger. Replies to submits come back in the order of
// the submits on a connection (a Gearman client has nothing else to match
// them by), so each reply is matched to the oldest submit in flight. A
// connection that breaks (the server was killed) is dialled again at the
// server's current address until the feed stops; what was in flight on
// it counts as unanswered.
type feed struct {
	fn      string
	payload int           // workload bytes
	window  int           // submits in flight per connection
	uniques []bool        // one entry per connection: distinct uniques (true) or empty ones
	addr    func() string // the server's current address
	led     *ledger
	ids     *atomic.Int64 // next job number, shared by every feed of a scenario
	limit   int64         // no job number at or beyond it is submitted; 0: none
	// rate paces the submits of all connections together, in jobs per
	// second (the n-th job of the feed goes out no sooner than n/rate
	// after the start), so that a scenario's drain stays short; 0: as
	// fast as the server acknowledges.
	rate  int
	start time.Time // set by run
}

// run submits until stop is closed (or the limit is reached) and then
// waits, at most grace, for the replies still due.
func (f *feed) run(ctx context.Context, stop <-chan struct{}, grace time.Duration) {
	f.start = time.Now()
	base := f.ids.Load()
	var wg sync.WaitGroup
	for _, uniq := range f.uniques {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.conn(ctx, stop, uniq, base, grace)
		}()
	}
	wg.Wait()
}

// conn runs one connection's sessions until the feed stops.
func (f *feed) conn(ctx context.Context, stop <-chan struct{}, uniq bool, base int64, grace time.Duration) {
	retry := time.NewTicker(20 * time.Millisecond) // redial while the server restarts
	defer retry.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if f.limit > 0 && f.ids.Load() >= f.limit {
			return
		}
		if addr := f.addr(); addr != "" {
			if c, err := dial(ctx, addr); err == nil {
				if f.session(ctx, c, stop, uniq, base, grace) {
					return
				}
			}
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

// session submits on one connection. It reports true when the feed
// stopped and the replies were collected, false when the connection
// broke first.
func (f *feed) session(ctx context.Context, c *conn, stop <-chan struct{}, uniq bool, base int64, grace time.Duration) bool {
	defer c.close()
	pending := make(chan int, f.window) // job numbers in flight, oldest first
	var finishing atomic.Bool
	empty := make(chan struct{})
	var emptyOnce sync.Once
	readErr := make(chan error, 1)
	go func() {
		readErr <- func() error {
			for {
				fr, err := c.r.Next()
				if err != nil {
					return fmt.Errorf("gchaos: read: %w", err)
				}
				if fr.Text {
					return fmt.Errorf("gchaos: unexpected text line %q", fr.Line)
				}
				p := &fr.Packet
				switch p.Type {
				case protocol.JobCreated, protocol.Error:
					var id int
					select {
					case id = <-pending:
					default:
						return fmt.Errorf("gchaos: %v with no submit in flight", p.Type)
					}
					if p.Type == protocol.JobCreated {
						f.led.ack(id, !uniq)
					} else {
						f.led.refuse(id, errCode(p))
					}
					if finishing.Load() && len(pending) == 0 {
						emptyOnce.Do(func() { close(empty) })
					}
				default:
					return fmt.Errorf("gchaos: submitter got unexpected %v", p.Type)
				}
			}
		}()
	}()
	broken := func() bool {
		c.close()
		<-readErr
		f.led.lostReply(len(pending))
		return false
	}
	for {
		id := int(f.ids.Add(1) - 1)
		if f.limit > 0 && int64(id) >= f.limit {
			break
		}
		if due := f.due(int64(id) - base); time.Until(due) > time.Millisecond {
			if c.flush() != nil {
				return broken()
			}
			t := time.NewTimer(time.Until(due))
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return f.finish(c, pending, &finishing, empty, &emptyOnce, readErr, grace)
			case <-readErr:
				t.Stop()
				readErr <- nil
				return broken()
			case <-ctx.Done():
				t.Stop()
				return broken()
			}
		}
		select {
		case pending <- id:
		default:
			if c.flush() != nil {
				return broken()
			}
			select {
			case pending <- id:
			case <-stop:
				return f.finish(c, pending, &finishing, empty, &emptyOnce, readErr, grace)
			case <-readErr:
				readErr <- nil
				return broken()
			case <-ctx.Done():
				return broken()
			}
		}
		u := ""
		if uniq {
			u = "u" + strconv.Itoa(id)
		}
		c.add(protocol.SubmitJobBg, f.fn, u, workload(id, f.payload))
		if len(c.out) >= 32<<10 {
			if c.flush() != nil {
				return broken()
			}
		}
		select {
		case <-stop:
			return f.finish(c, pending, &finishing, empty, &emptyOnce, readErr, grace)
		case <-readErr:
			readErr <- nil
			return broken()
		default:
		}
	}
	return f.finish(c, pending, &finishing, empty, &emptyOnce, readErr, grace)
}

// due returns when the n-th job of the feed may go out under its rate.
func (f *feed) due(n int64) time.Time {
	if f.rate <= 0 {
		return time.Time{}
	}
	return f.start.Add(time.Duration(n) * time.Second / time.Duration(f.rate))
}

// finish flushes what is buffered and waits, at most grace, for the
// replies to what is in flight; what gets none counts as unanswered.
func (f *feed) finish(c *conn, pending chan int, finishing *atomic.Bool, empty chan struct{}, once *sync.Once, readErr chan error, grace time.Duration) bool {
	if c.flush() != nil {
		c.close()
		<-readErr
		f.led.lostReply(len(pending))
		return true
	}
	finishing.Store(true)
	if len(pending) == 0 {
		once.Do(func() { close(empty) })
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-empty:
	case <-readErr:
		readErr <- nil
	case <-t.C:
	}
	c.close()
	<-readErr
	f.led.lostReply(len(pending))
	return true
}
