package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// floodBound bounds each phase of the flood: a server that takes longer
// to swallow it is reported, not waited for.
const floodBound = 3 * time.Minute

// flood runs the hostile-client scenario against gserverd (-q builtin,
// with its HTTP endpoint) or gearmand: one connection sends floodCanDo
// duplicate CAN_DO of one function and floodSubmits duplicate foreground
// SUBMIT_JOB (one unique), reads the replies, and disconnects, after
// another has sent floodDistinct CAN_DO of distinct names and, while it
// was still connected, /metrics was scraped once (gserverd). After each
// disconnect an admin status is timed (at most floodSettle). A bystander
// times round trips all along.
func (ch *chaos) flood(ctx context.Context, name string) *result {
	sz := ch.sizes
	r := &result{scenario: "flood", server: name + " -q builtin"}
	var s *server
	httpAddr := ""
	if name == "gserverd" {
		port, err := freePort()
		if err != nil {
			r.err = err
			return r
		}
		httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s = newServer(name, ch.cfg.gserverd, "-q", "builtin", "--http-listen", httpAddr)
	} else {
		r.server = name
		s = newServer(name, ch.cfg.gearmand)
	}
	defer s.close()
	if err := s.start(ctx); err != nil {
		r.err = err
		return r
	}
	by := startBystander(ctx, s.addr)
	defer func() {
		r.probes = by.stop()
		if !s.alive() {
			r.note("SERVER DIED: %s", s.noteExit())
		}
		s.close()
		r.peak = s.peakRSS()
	}()

	// Distinct names, kept registered while /metrics is scraped.
	start := time.Now()
	c, err := dial(ctx, s.addr())
	if err != nil {
		r.err = err
		return r
	}
	for i := range sz.floodDistinct {
		c.add(protocol.CanDo, "flood-"+strconv.Itoa(i))
		if len(c.out) >= 32<<10 {
			if err := c.flush(); err != nil {
				c.close()
				r.err = err
				return r
			}
		}
	}
	if err := echo(ctx, c); err != nil {
		c.close()
		r.err = fmt.Errorf("distinct CAN_DO: %w", err)
		return r
	}
	r.note("%dk distinct CAN_DO taken in %v", sz.floodDistinct/1000, time.Since(start).Round(time.Millisecond))
	if httpAddr != "" {
		start = time.Now()
		n, err := scrape(ctx, "http://"+httpAddr+"/metrics")
		if err != nil {
			c.close()
			r.err = fmt.Errorf("/metrics: %w", err)
			return r
		}
		r.note("/metrics %.1fMiB in %v", float64(n)/(1<<20), time.Since(start).Round(time.Millisecond))
	}
	c.close()
	if !ch.settle(ctx, r, s, "distinct") {
		return r
	}

	// The duplicates, then the disconnect.
	start = time.Now()
	acked, err := hostile(ctx, s.addr(), func(c *conn) {
		for range sz.floodCanDo {
			c.add(protocol.CanDo, "flood")
			if len(c.out) >= 32<<10 {
				if c.flush() != nil {
					return
				}
			}
		}
		for range sz.floodSubmits {
			c.add(protocol.SubmitJob, "flood-fg", "same", "x")
			if len(c.out) >= 32<<10 {
				if c.flush() != nil {
					return
				}
			}
		}
	})
	r.acked = acked
	if err != nil {
		r.err = fmt.Errorf("duplicates: %w", err)
		return r
	}
	r.note("%dk dup CAN_DO + %dk dup SUBMIT_JOB taken in %v", sz.floodCanDo/1000, sz.floodSubmits/1000, time.Since(start).Round(time.Millisecond))
	ch.settle(ctx, r, s, "duplicates")
	return r
}

// settle times an admin status on a new connection right after a flooding
// connection went away (the server cleans up after it), waiting at most
// floodSettle; false when it got no answer in time.
func (ch *chaos) settle(ctx context.Context, r *result, s *server, what string) bool {
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, ch.sizes.floodSettle)
	defer cancel()
	if _, err := queuedAt(sctx, s.addr(), "flood-fg"); err != nil {
		r.note("STATUS NOT ANSWERED %v after the %s disconnect (%v)", time.Since(start).Round(time.Millisecond), what, err)
		return false
	}
	r.note("status after the %s disconnect %v", what, time.Since(start).Round(time.Millisecond))
	return true
}

// hostile dials addr, writes what send adds (flushing it), then an
// ECHO_REQ, reads and discards every reply (counting JOB_CREATED) until
// the ECHO_RES, and disconnects.
func hostile(ctx context.Context, addr string, send func(c *conn)) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, floodBound)
	defer cancel()
	c, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	type res struct {
		created int
		err     error
	}
	got := make(chan res, 1)
	go func() {
		n := 0
		for {
			f, err := c.r.Next()
			if err != nil {
				got <- res{n, fmt.Errorf("gchaos: hostile read: %w", err)}
				return
			}
			if f.Text {
				continue
			}
			switch f.Packet.Type {
			case protocol.JobCreated:
				n++
			case protocol.EchoRes:
				got <- res{n, nil}
				return
			}
		}
	}()
	send(c)
	if err := c.send(protocol.EchoReq, "end"); err != nil {
		c.close()
		rs := <-got
		return rs.created, err
	}
	rs := <-got
	if rs.err != nil && ctx.Err() != nil {
		rs.err = fmt.Errorf("not swallowed within %v: %w", floodBound, rs.err)
	}
	return rs.created, rs.err
}

// echo runs one ECHO round trip on c, skipping other packets, within
// floodBound.
func echo(ctx context.Context, c *conn) error {
	ctx, cancel := context.WithTimeout(ctx, floodBound)
	defer cancel()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	if err := c.send(protocol.EchoReq, "end"); err != nil {
		return err
	}
	for {
		f, err := c.r.Next()
		if err != nil {
			return fmt.Errorf("gchaos: echo: %w", err)
		}
		if !f.Text && f.Packet.Type == protocol.EchoRes {
			return nil
		}
	}
}

// scrape GETs url and returns the body's size.
func scrape(ctx context.Context, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, floodBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("gchaos: %w", err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("gchaos: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("gchaos: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, errors.New("gchaos: " + resp.Status)
	}
	return n, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("gchaos: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
