package clocktest

import (
	"slices"
	"sync"
	"testing"
	"time"
)

const ms = time.Millisecond

// Due timers fire earliest first, ties in arming order, each seeing the
// clock at its own due time; the others wait.
func TestAdvanceOrder(t *testing.T) {
	t.Parallel()
	c := New()
	t0 := c.Now()
	var fired []string
	var at []time.Duration
	add := func(name string, d time.Duration) {
		c.AfterFunc(d, func() { fired = append(fired, name); at = append(at, c.Now().Sub(t0)) })
	}
	add("30", 30*ms)
	add("10a", 10*ms)
	add("20", 20*ms)
	add("10b", 10*ms)
	add("0", 0)
	c.Advance(25 * ms)
	if want := []string{"0", "10a", "10b", "20"}; !slices.Equal(fired, want) {
		t.Errorf("fired %v, want %v", fired, want)
	}
	if want := []time.Duration{0, 10 * ms, 10 * ms, 20 * ms}; !slices.Equal(at, want) {
		t.Errorf("Now() in the functions: %v, want %v", at, want)
	}
	if got := c.Now().Sub(t0); got != 25*ms {
		t.Errorf("after Advance(25ms) the clock moved %v", got)
	}
	if got := c.Pending(); got != 1 {
		t.Errorf("Pending() = %d, want 1", got)
	}
	c.Advance(5*ms - 1)
	if len(fired) != 4 {
		t.Errorf("a timer fired 1ns before its time: %v", fired)
	}
	c.Advance(1)
	if len(fired) != 5 || fired[4] != "30" || c.Pending() != 0 {
		t.Errorf("fired %v, pending %d; want 30 last and none pending", fired, c.Pending())
	}
	c.Advance(-time.Hour)
	if got := c.Now().Sub(t0); got != 30*ms {
		t.Errorf("a negative Advance moved the clock to %v", got)
	}
}

// A timer armed by a firing one fires in the same Advance when it falls
// due within it, and not when it falls after.
func TestAdvanceFiresTimersArmedOnTheWay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		advance time.Duration
		want    []string
	}{
		{"both within", 30 * ms, []string{"first", "second"}},
		{"second after the end", 19 * ms, []string{"first"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := New()
			var fired []string
			c.AfterFunc(10*ms, func() {
				fired = append(fired, "first")
				c.AfterFunc(10*ms, func() { fired = append(fired, "second") })
			})
			c.Advance(tc.advance)
			if !slices.Equal(fired, tc.want) {
				t.Errorf("fired %v, want %v", fired, tc.want)
			}
		})
	}
}

// NewTimer's channel, Stop and Reset behave as time.Timer's since Go
// 1.23: the due time is sent once, Stop and Reset report whether the
// timer was armed, and no value stays in the channel after either.
func TestTimer(t *testing.T) {
	t.Parallel()
	c := New()
	tm := c.NewTimer(10 * ms)
	c.Advance(10 * ms)
	select {
	case got := <-tm.C():
		if !got.Equal(c.Now()) {
			t.Errorf("channel got %v, want %v", got, c.Now())
		}
	default:
		t.Fatal("no value after the timer fell due")
	}
	if tm.Stop() {
		t.Error("Stop of a fired timer returned true")
	}
	if tm.Reset(5 * ms) {
		t.Error("Reset of a fired timer returned true")
	}
	if c.Pending() != 1 {
		t.Errorf("Pending() = %d after Reset, want 1", c.Pending())
	}
	c.Advance(5 * ms) // fires; nobody reads
	if tm.Reset(time.Second) {
		t.Error("Reset after firing returned true")
	}
	select {
	case v := <-tm.C():
		t.Errorf("value %v left in the channel after Reset", v)
	default:
	}
	if !tm.Stop() {
		t.Error("Stop of an armed timer returned false")
	}
	c.Advance(time.Hour)
	select {
	case v := <-tm.C():
		t.Errorf("a stopped timer sent %v", v)
	default:
	}
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d, want 0", c.Pending())
	}
	// Reset of an armed timer moves it.
	f := 0
	af := c.AfterFunc(10*ms, func() { f++ })
	c.Advance(5 * ms)
	if !af.Reset(10 * ms) {
		t.Error("Reset of an armed timer returned false")
	}
	c.Advance(9 * ms)
	if f != 0 {
		t.Error("a reset timer fired at its old time")
	}
	c.Advance(ms)
	if f != 1 {
		t.Errorf("a reset timer fired %d times at its new time, want 1", f)
	}
	if af.C() != nil {
		t.Error("an AfterFunc timer has a channel")
	}
}

// Readers, timers and Advance may run in different goroutines (run with
// -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := New()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				tm := c.NewTimer(ms)
				_ = c.Now()
				tm.Stop()
				c.AfterFunc(ms, func() {}).Reset(2 * ms)
			}
		}()
	}
	for range 200 {
		c.Advance(ms)
	}
	wg.Wait()
	c.Advance(time.Second)
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d after every timer fell due", c.Pending())
	}
}
