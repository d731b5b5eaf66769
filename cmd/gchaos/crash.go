package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// crashGserverd runs the crash scenario against gserverd's embedded store
// in the given --sync mode.
func (ch *chaos) crashGserverd(ctx context.Context, sync string) *result {
	r := &result{scenario: "crash", server: "gserverd embedded --sync " + sync}
	dir, err := ch.tempDir("crash")
	if err != nil {
		r.err = err
		return r
	}
	defer os.RemoveAll(dir)
	s := newServer("gserverd", ch.cfg.gserverd, "-q", "embedded", "--sync", sync, "--data-dir", dir, "--http-listen", "")
	ch.crash(ctx, r, s, ch.sizes.crashLoad)
	return r
}

// crashGearmand runs it against gearmand's SQLite queue.
func (ch *chaos) crashGearmand(ctx context.Context) *result {
	r := &result{scenario: "crash", server: "gearmand -q libsqlite3"}
	dir, err := ch.tempDir("crash")
	if err != nil {
		r.err = err
		return r
	}
	defer os.RemoveAll(dir)
	s := newServer("gearmand", ch.cfg.gearmand, "-q", "libsqlite3", "--libsqlite3-db", filepath.Join(dir, "queue.db"))
	ch.crash(ctx, r, s, ch.sizes.crashGearmandLoad)
	return r
}

// crash submits over crashConns pipelined connections (every other one
// with distinct uniques, the rest with empty ones), at most crashRate
// jobs a second, for loadFor, SIGKILLs
// the server crashKills times spread over it and restarts it on the same
// data each time, then drains everything with raw workers.
func (ch *chaos) crash(ctx context.Context, r *result, s *server, loadFor time.Duration) {
	sz := ch.sizes
	const fn = "chaos-crash"
	defer s.close()
	if err := s.start(ctx); err != nil {
		r.err = err
		return
	}
	led := newLedger()
	var ids atomic.Int64
	by := startBystander(ctx, s.addr)
	f := newFeed(fn, s, led, &ids, sz.crashConns, 100, sz.window)
	f.rate = sz.crashRate
	ld := startLoad(ctx, f, sz.grace)
	every := loadFor / time.Duration(sz.crashKills+1)
	kills := 0
	for range sz.crashKills {
		if !wait(ctx, every) {
			break
		}
		if !s.alive() {
			r.note("server died on its own: %s", s.noteExit())
		}
		s.kill()
		kills++
		if err := s.start(ctx); err != nil {
			r.err = fmt.Errorf("restart after kill %d: %w", kills, err)
			break
		}
	}
	if r.err == nil {
		wait(ctx, every)
	}
	ld.end()
	r.note("%d SIGKILLs", kills)
	if r.err == nil {
		if !s.alive() {
			r.note("server died on its own: %s", s.noteExit())
			if err := s.start(ctx); err != nil {
				r.err = fmt.Errorf("restart before the drain: %w", err)
			}
		}
	}
	if r.err == nil {
		if err := ch.drainBounded(ctx, r, s, fn, led, ch.sizes.drainBound); err != nil {
			r.err = err
		}
	}
	r.probes = by.stop()
	c := led.counts()
	r.counts = &c
	s.close()
	r.peak = s.peakRSS()
}
