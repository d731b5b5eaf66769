//go:build linux

package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

// TestFleetChaos is `make chaos`'s fleet scenario (not part of make test:
// it runs for GWORKERD_FLEET_CHAOS, a duration): three members under a
// steady load while, at random moments, a random member's host is cut off
// (healed a few seconds later) or its gserverd SIGKILLed (restarted a few
// seconds later with the same member id), never more than one member at
// a time; then everything is healed, and every acknowledged job must
// have run. It prints one line: acked, completed, lost, duplicates, and
// the worst takeover time (from a lease's expiry to the first claimed
// job handed to a worker).
func TestFleetChaos(t *testing.T) {
	d := os.Getenv("GWORKERD_FLEET_CHAOS")
	if d == "" {
		t.Skip("SKIP: make chaos runs this scenario (GWORKERD_FLEET_CHAOS=<duration>); make test runs TestFleetCutAndKill")
	}
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("GWORKERD_FLEET_CHAOS=%q: %v", d, err)
	}
	f := newFleet(t, 3)
	// Faster than the load on average (4 children), so that the backlog
	// left at the end drains within the bound below.
	f.jobTime = "0.002"
	f.startWorkers()
	l := &load{acked: map[string]string{}}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.runLoad(ctx, "c", l, time.Second) }()

	// The claims every member lists, read while it answers (a member
	// killed takes its list with it).
	var cmu sync.Mutex
	claims := map[string]storeClaim{} // member/from/at -> claim
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, m := range f.servers {
				fi := fleetInfo(m)
				if fi == nil {
					continue
				}
				cmu.Lock()
				for _, c := range fi.Claims {
					claims[m.id+"/"+c.From+"/"+c.At.String()] = storeClaim{Jobs: c.Jobs, Expired: c.Expired, Takeover: c.Takeover}
				}
				cmu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	type fault struct {
		m    *member
		kill bool
		end  time.Time
	}
	var down *fault
	cuts, kills := 0, 0
	end := time.Now().Add(dur)
	next := time.Now().Add(between(2*time.Second, 5*time.Second))
	repair := func() {
		if down.kill {
			f.start(down.m)
		} else {
			down.m.host.Heal()
			down.m.cut = false
		}
		down = nil
	}
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond) // the scenario's own pace: nothing waits on it
		now := time.Now()
		if down != nil && now.After(down.end) {
			repair()
			next = now.Add(between(2*time.Second, 6*time.Second))
		}
		if down == nil && now.After(next) {
			m := f.servers[rng.IntN(len(f.servers))]
			if rng.IntN(2) == 0 {
				m.host.Cut()
				m.cut = true
				cuts++
				down = &fault{m: m, end: now.Add(between(lease+time.Second, 3*lease))}
			} else {
				m.p.Kill()
				kills++
				down = &fault{m: m, kill: true, end: now.Add(between(time.Second, 2*lease))}
			}
			t.Logf("%s: %s %s", now.Format("15:04:05.000"), map[bool]string{true: "kill", false: "cut"}[down.kill], m.id)
		}
	}
	if down != nil {
		repair()
	}
	stopLoad()
	wg.Wait()
	l.mu.Lock()
	acked := l.acked
	sent, refused := l.sent, l.failed
	l.mu.Unlock()
	// The drain of the last backlog: wait while it makes progress.
	runs := f.runs()
	for last, still := -1, time.Now(); tallyRuns(acked, runs).lost > 0; {
		if n := len(runs); n != last {
			last, still = n, time.Now()
		} else if time.Since(still) > time.Minute {
			break // no job ran for a minute: what is left is lost
		}
		time.Sleep(time.Second)
		runs = f.runs()
	}
	tl := tallyRuns(acked, runs)
	var worst time.Duration
	nclaims := 0
	cmu.Lock()
	for _, c := range claims {
		nclaims++
		worst = max(worst, c.Takeover)
	}
	cmu.Unlock()
	completed := 0
	for u := range acked {
		if len(runs[u]) > 0 {
			completed++
		}
	}
	line := fmt.Sprintf("fleet chaos %v: %d cuts, %d kills, %d claims; submits %d, acked %d, refused %d, completed %d, lost %d, duplicates %d (run without an ack %d), worst takeover %v (lease %v)",
		dur, cuts, kills, nclaims, sent, len(acked), refused, completed, tl.lost, tl.dups, tl.unacked, worst.Round(time.Millisecond), lease)
	fmt.Println(line)
	t.Log(line)
	if len(tl.repeats) > 0 {
		t.Logf("repeats: %s", tl.describe(acked, runs, 10))
	}
	if tl.lost > 0 {
		t.Errorf("%d acknowledged jobs never ran", tl.lost)
	}
}
