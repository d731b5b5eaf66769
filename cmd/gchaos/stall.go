package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
)

// storeStall runs gserverd on PostgreSQL (-q postgres, --store-timeout
// stallTimeout) through a proxy, under pipelined background submits:
// after stallBefore the proxy stops forwarding (sockets kept open) for
// stallFor, then forwards again; submits go on for stallAfter; then
// everything is drained. Submits during the stall must be refused
// (QUEUE_ERROR), never acknowledged and lost.
func (ch *chaos) storeStall(ctx context.Context) *result {
	sz := ch.sizes
	r := &result{scenario: "store-stall", server: "gserverd postgres --store-timeout " + sz.stallTimeout.String()}
	c, err := net.DialTimeout("tcp", ch.cfg.pgAddr, 2*time.Second)
	if err != nil {
		r.note("not run: PostgreSQL not reachable at %s: %v", ch.cfg.pgAddr, err)
		return r
	}
	_ = c.Close()
	table := "gchaos_" + strconv.Itoa(os.Getpid()) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	defer ch.dropTable(table)
	px, err := tcpproxy.New(ch.cfg.pgAddr)
	if err != nil {
		r.err = err
		return r
	}
	defer px.Close()
	defer px.Resume() // before close, so that nothing waits on a stall
	const fn = "chaos-stall"
	s := newServer("gserverd", ch.cfg.gserverd, "-q", "postgres", "--libpq-conninfo", ch.conninfo(px.Addr()),
		"--libpq-table", table, "--store-timeout", sz.stallTimeout.String(), "--http-listen", "")
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
	}()
	ld := startLoad(ctx, newFeed(fn, s, led, &ids, 2, 100, 64), sz.grace)
	wait(ctx, sz.stallBefore)
	before := led.counts()
	px.Stall()
	wait(ctx, sz.stallFor)
	during := led.counts()
	px.Resume()
	wait(ctx, sz.stallAfter)
	ld.end()
	end := led.counts()
	r.note("acked before/during/after the %v stall: %d/%d/%d", sz.stallFor, before.Acked, during.Acked-before.Acked, end.Acked-during.Acked)
	if !s.alive() {
		r.note("SERVER DIED: %s", s.noteExit())
		if err := s.start(ctx); err != nil {
			r.err = fmt.Errorf("restart: %w", err)
			return r
		}
	}
	if err := ch.drainBounded(ctx, r, s, fn, led, ch.sizes.drainBound); err != nil {
		r.err = err
	}
	return r
}

// conninfo is the libpq connection string of the PostgreSQL at addr.
func (ch *chaos) conninfo(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s %s", host, port, ch.cfg.pgOptions)
}

// dropTable removes the scenario's table, directly (not through the proxy).
func (ch *chaos) dropTable(table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, ch.conninfo(ch.cfg.pgAddr))
	if err != nil {
		ch.logf("drop table %s: %v", table, err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		ch.logf("drop table %s: %v", table, err)
	}
}
