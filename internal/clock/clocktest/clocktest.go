// Package clocktest has the fake clock.Clock of the tests: time stands
// still until the test moves it with Advance, and the timers that fall
// due then fire in order of their due time.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
)

// StartUnix is the time a new Clock shows, in seconds since 1970
// (2023-11-14 22:13:20 UTC).
const StartUnix = 1_700_000_000

// Clock is a clock.Clock moved by hand. It is safe for concurrent use,
// but Advance must not run twice at once nor be called from a timer's
// function.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64   // arming order, ties broken by it
	timers []*timer // the armed timers, in no order
}

var _ clock.Clock = (*Clock)(nil)

// New returns a Clock at StartUnix.
func New() *Clock { return &Clock{now: time.Unix(StartUnix, 0)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that calls f when Advance passes now+d. f runs
// in the goroutine that called Advance, with no lock of the clock held.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := &timer{c: c, f: f}
	c.mu.Lock()
	c.arm(t, d)
	c.mu.Unlock()
	return t
}

// NewTimer arms a timer whose channel receives the due time when
// Advance passes now+d. As with time.Timer since Go 1.23, no value
// stays in the channel after Stop or Reset.
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.arm(t, d)
	c.mu.Unlock()
	return t
}

// Advance moves the clock d on (a negative d counts as 0). It fires the
// timers due by then one by one, earliest first (equal times in the
// order they were armed), setting the clock to each one's due time
// before it fires; a timer armed or reset by a fired one fires too if
// it falls due within d. Advance returns when every due timer has fired
// and AfterFunc functions have returned.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(max(d, 0))
	for {
		t := c.next(end)
		if t == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		c.disarm(t)
		c.now = t.at
		if t.ch != nil { // sent under the lock: Stop and Reset then drain it
			select {
			case t.ch <- t.at:
			default: // a value is waiting already
			}
			continue
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
}

// Pending returns the number of armed timers.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// next returns the earliest armed timer due by end, or nil. c.mu is held.
func (c *Clock) next(end time.Time) *timer {
	sort.Slice(c.timers, func(i, j int) bool {
		a, b := c.timers[i], c.timers[j]
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		return a.seq < b.seq
	})
	if len(c.timers) == 0 || c.timers[0].at.After(end) {
		return nil
	}
	return c.timers[0]
}

// arm (re)arms t at now+d. c.mu is held.
func (c *Clock) arm(t *timer, d time.Duration) {
	if !t.armed {
		c.timers = append(c.timers, t)
	}
	c.seq++
	t.at, t.seq, t.armed = c.now.Add(d), c.seq, true
}

// disarm takes t off the armed timers and reports whether it was armed.
// c.mu is held.
func (c *Clock) disarm(t *timer) bool {
	if !t.armed {
		return false
	}
	t.armed = false
	for i, o := range c.timers {
		if o == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			break
		}
	}
	return true
}

// timer is a clock.Timer of a Clock; its fields are guarded by c.mu.
type timer struct {
	c     *Clock
	f     func()         // AfterFunc's function, or nil
	ch    chan time.Time // NewTimer's channel, or nil
	at    time.Time
	seq   uint64
	armed bool
}

// C returns the channel of a NewTimer timer; nil for AfterFunc.
func (t *timer) C() <-chan time.Time { return t.ch }

// Stop disarms t and reports whether it was armed.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	return t.c.disarm(t)
}

// Reset re-arms t to fire d from now and reports whether it was armed.
func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	was := t.armed
	t.c.arm(t, d)
	return was
}

// drain empties the channel of a value not yet received.
func (t *timer) drain() {
	if t.ch == nil {
		return
	}
	select {
	case <-t.ch:
	default:
	}
}
