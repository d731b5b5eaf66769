package main

import (
	"context"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// bystander is a well-behaved client on its own connection that, all
// through a scenario, times round trips to the server, one every 10ms:
// ECHO_REQ, the admin command `version` and the admin command `status`,
// in turn. The worst ECHO or version round trip is how long the server
// left an innocent connection waiting; status, which reads the server's
// whole function table, is kept apart (it also shows how long the
// server's state stayed locked). A broken connection (the server was
// killed) is dialled again; the round trip it broke does not count, the
// wait for the restart is not latency. A round trip still unanswered when
// the bystander stops counts as long as it has waited so far (marked
// cut: the true figure is higher).
type bystander struct {
	addr func() string

	mu     sync.Mutex // guards p
	p      probes
	cancel context.CancelFunc
	done   chan struct{}
}

// probeBound is the longest a round trip is waited for; one that takes
// longer counts as that long and the connection is dialled again.
const probeBound = 2 * time.Minute

func startBystander(ctx context.Context, addr func() string) *bystander {
	ctx, cancel := context.WithCancel(ctx)
	b := &bystander{addr: addr, cancel: cancel, done: make(chan struct{})}
	go b.loop(ctx)
	return b
}

// probes is what a bystander measured.
type probes struct {
	worst       time.Duration // ECHO_REQ and version
	worstStatus time.Duration // status
	trips       int
	cut         bool // worst is a round trip cut short by the stop
	cutStatus   bool // worstStatus is
}

// stop ends the probing and returns what it measured.
func (b *bystander) stop() probes {
	b.cancel()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// record counts one round trip of d; cut says it was cut short by the
// stop.
func (b *bystander) record(k probeKind, d time.Duration, cut bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k == probeStatus {
		if d > b.p.worstStatus {
			b.p.worstStatus, b.p.cutStatus = d, cut
		}
	} else if d > b.p.worst {
		b.p.worst, b.p.cut = d, cut
	}
	b.p.trips++
}

// probeKind is one of the bystander's round trips.
type probeKind int

const (
	probeEcho probeKind = iota
	probeVersion
	probeStatus
	probeKinds
)

func (b *bystander) loop(ctx context.Context) {
	defer close(b.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var c *conn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	kind := probeEcho
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c == nil {
			addr := b.addr()
			if addr == "" {
				continue
			}
			var err error
			if c, err = dial(ctx, addr); err != nil {
				c = nil
				continue
			}
		}
		d, err := b.trip(ctx, c, kind)
		k := kind
		kind = (kind + 1) % probeKinds
		if err != nil {
			if cut := ctx.Err() != nil; cut || d >= probeBound {
				b.record(k, d, cut)
			}
			c.close()
			c = nil
			continue
		}
		b.record(k, d, false)
	}
}

// trip runs one round trip on c.
func (b *bystander) trip(ctx context.Context, c *conn, k probeKind) (time.Duration, error) {
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	_ = c.nc.SetReadDeadline(time.Now().Add(probeBound))
	start := time.Now()
	var err error
	switch k {
	case probeEcho:
		if err = c.send(protocol.EchoReq, "bystander"); err == nil {
			_, err = c.r.Next()
		}
	case probeVersion:
		_, err = c.admin("version", false)
	default:
		_, err = c.admin("status", true)
	}
	return time.Since(start), err
}
