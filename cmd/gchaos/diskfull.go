package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// diskFull runs a server's persistent queue on a small tmpfs (gserverd's
// embedded store with --sync interval, or gearmand's SQLite queue): it
// submits (distinct uniques) until the server refuses diskRefusals
// submits (or dies, or diskLoad has passed), drains, frees space (removes
// a ballast file), submits diskRefill more, restarts the server (SIGTERM)
// and drains again. Every acknowledged job must come out of one of the
// drains.
func (ch *chaos) diskFull(ctx context.Context, name string) *result {
	sz := ch.sizes
	r := &result{scenario: "disk-full", server: "gserverd embedded, tmpfs " + sz.diskSize}
	if name == "gearmand" {
		r.server = "gearmand -q libsqlite3, tmpfs " + sz.diskSize
	}
	mnt, err := ch.tempDir("diskfull")
	if err != nil {
		r.err = err
		return r
	}
	defer os.RemoveAll(mnt)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+sz.diskSize); err != nil {
		r.note("not run: mount tmpfs: %v (needs root)", err)
		return r
	}
	defer func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	}()
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, sz.diskBallast), 0o600); err != nil {
		r.err = fmt.Errorf("write the ballast: %w", err)
		return r
	}
	freeSpace := func() {
		if err := os.Remove(ballast); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.note("remove ballast: %v", err)
		}
	}
	const fn = "chaos-disk"
	s := newServer(name, ch.cfg.gserverd, "-q", "embedded", "--sync", "interval", "--data-dir", filepath.Join(mnt, "data"), "--http-listen", "")
	if name == "gearmand" {
		s = newServer(name, ch.cfg.gearmand, "-q", "libsqlite3", "--libsqlite3-db", filepath.Join(mnt, "queue.db"))
	}
	defer s.close()
	if err := s.start(ctx); err != nil {
		r.err = err
		return r
	}
	led := newLedger()
	var ids atomic.Int64
	by := startBystander(ctx, s.addr)
	defer func() {
		r.probes = by.stop()
		c := led.counts()
		r.counts = &c
		s.close()
		r.peak = s.peakRSS()
		for i, n := range r.notes {
			r.notes[i] = strings.ReplaceAll(n, mnt, "<tmpfs>")
		}
	}()

	// Phase 1: fill the disk.
	ld := startLoad(ctx, diskFeed(fn, s, led, &ids, sz.diskPayload), sz.grace)
	tick := time.NewTicker(20 * time.Millisecond) // watching the ledger and the process
	deadline := time.NewTimer(sz.diskLoad)
	died := false
fill:
	for {
		select {
		case <-ctx.Done():
			break fill
		case <-deadline.C:
			r.note("still no %d refusals after %v", sz.diskRefusals, sz.diskLoad)
			break fill
		case <-s.died():
			died = true
			break fill
		case <-tick.C:
			if led.counts().Refused >= sz.diskRefusals {
				break fill
			}
		}
	}
	tick.Stop()
	deadline.Stop()
	ld.end()
	full := led.counts()
	r.note("full: %d acked, %d refused", full.Acked, full.Refused)
	if died || !s.alive() {
		r.note("SERVER DIED after %d acks: %s", full.Acked, s.noteExit())
		if err := s.start(ctx); err != nil {
			r.note("RESTART ON FULL DISK FAILED: %s", startError(err))
			freeSpace()
			if err := s.start(ctx); err != nil {
				r.err = fmt.Errorf("restart with space freed: %w", err)
				return r
			}
			r.note("restarted once space was freed")
		} else {
			r.note("restarted on the full disk")
		}
	}

	// Phase 2: drain what was acknowledged, the disk still full.
	if err := ch.drainBounded(ctx, r, s, fn, led, sz.diskDrainBound); err != nil {
		r.note("DRAIN ON THE FULL DISK INCOMPLETE after %v: %s", sz.diskDrainBound, startError(err))
		if !s.alive() {
			freeSpace()
			if err := s.start(ctx); err != nil {
				r.err = fmt.Errorf("restart with space freed: %w", err)
				return r
			}
		}
	}
	r.note("drained %d on the full disk", led.counts().Drained)

	// Phase 3: space back, submit again.
	freeSpace()
	f := diskFeed(fn, s, led, &ids, sz.diskPayload)
	f.limit = ids.Load() + int64(sz.diskRefill)
	ld = startLoad(ctx, f, sz.grace)
	select {
	case <-ld.done:
	case <-time.After(sz.diskLoad):
	case <-ctx.Done():
	}
	ld.end()
	after := led.counts()
	r.note("after freeing: %d acked, %d refused", after.Acked-full.Acked, after.Refused-full.Refused)

	// Phase 4: restart, drain.
	if !s.alive() {
		r.note("SERVER DIED after space was freed: %s", s.noteExit())
	} else {
		s.stop()
	}
	if err := s.start(ctx); err != nil {
		r.err = fmt.Errorf("restart: %w", err)
		return r
	}
	if err := ch.drainBounded(ctx, r, s, fn, led, sz.diskDrainBound); err != nil {
		r.err = err
	}
	return r
}

// drainBounded drains fn on s with two workers within bound, and notes
// in r how often the server dropped a worker's connection, and whether it
// died.
func (ch *chaos) drainBounded(ctx context.Context, r *result, s *server, fn string, led *ledger, bound time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var drops atomic.Int64
	err := drain(dctx, s.addr(), fn, 2, led, &drops)
	if n := drops.Load(); n > 0 {
		r.note("draining workers' connections closed or refused %d times", n)
		drops.Store(0)
	}
	if !s.alive() {
		r.note("SERVER DIED during the drain: %s", s.noteExit())
	}
	return err
}

// startError returns the telling line of a failed start: the server's
// own output when it exited.
func startError(err error) string {
	msg := err.Error()
	if _, out, ok := strings.Cut(msg, " exited: "); ok {
		return keyLine(out)
	}
	return keyLine(msg)
}

// diskFeed is the disk-full scenario's feed: two connections, distinct
// uniques (gearmand's SQLite queue keeps one row per unique).
func diskFeed(fn string, s *server, led *ledger, ids *atomic.Int64, payload int) *feed {
	f := newFeed(fn, s, led, ids, 2, payload, 64)
	f.uniques = []bool{true, true}
	return f
}
