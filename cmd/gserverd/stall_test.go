package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// TestBinaryStoreStall is issue 10's test of a database that stops
// answering (packets dropped, not reset: a proxy that keeps both sockets
// open and forwards nothing), against each external store, with
// --store-timeout 5s:
//   - a background submit gets ERROR QUEUE_ERROR, never JOB_CREATED, once
//     the store call's deadline has passed;
//   - once the proxy forwards again, background submits get JOB_CREATED;
//   - SIGTERM while a submit waits on the silent database stops gserverd
//     (status 0), and that submit is not acknowledged.
//
// Speed is not measured: each wait is bounded generously (stallBound,
// many times the configured timeout) only so that a hang fails the test.
// The store timeout bounds every store call of a working database too,
// opening the store included: 1s was too short for one on a loaded
// machine ("not open within --store-timeout 1s" through the proxy).
func TestBinaryStoreStall(t *testing.T) {
	t.Parallel()
	const (
		storeTimeout = 5 * time.Second
		stallBound   = 12 * storeTimeout
	)
	for _, b := range externalBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.RequireTCP(t, b.service, b.addr)
			q := b.newQueue(t)
			proxy := storetest.NewProxy(t, b.addr)
			t.Cleanup(proxy.Resume) // before the proxy's own cleanup closes it
			p := startGserverd(t, append(q.flags(proxy.Addr()), "--store-timeout", storeTimeout.String(), "--http-listen", "")...)
			const fn = "stall"

			c := dialRaw(t, p.Addr)
			c.send(protocol.SubmitJobBg, fn, "before", "1")
			c.expect(protocol.JobCreated)

			// The database goes silent: the submit fails, after the deadline.
			proxy.Stall()
			start := time.Now()
			c.send(protocol.SubmitJobBg, fn, "during", "2")
			_ = c.c.SetReadDeadline(time.Now().Add(stallBound))
			f, err := c.r.Next()
			if err != nil {
				t.Fatalf("reply to SUBMIT_JOB_BG while the database does not answer (store timeout %v): %v", storeTimeout, err)
			}
			if f.Text || f.Packet.Type != protocol.Error || len(f.Packet.Args) == 0 || string(f.Packet.Args[0]) != protocol.CodeQueueError {
				t.Fatalf("SUBMIT_JOB_BG while the database does not answer: got %v %q, want ERROR %s (never an ack)",
					f.Packet.Type, f.Packet.Args, protocol.CodeQueueError)
			}
			t.Logf("QUEUE_ERROR %v after the submit (store timeout %v)", time.Since(start).Round(time.Millisecond), storeTimeout)
			if n := queueTotal(t, p.Addr, fn); n != 1 {
				t.Fatalf("after the QUEUE_ERROR: status total of %s = %d, want 1 (the job from before the stall; none created)", fn, n)
			}

			// The database answers again: submits are acknowledged again.
			proxy.Resume()
			deadline := time.Now().Add(stallBound)
			for attempt := 1; ; attempt++ {
				c.send(protocol.SubmitJobBg, fn, "after", "3")
				_ = c.c.SetReadDeadline(time.Now().Add(stallBound))
				f, err := c.r.Next()
				if err != nil {
					t.Fatalf("submit after the database answers again: %v", err)
				}
				if !f.Text && f.Packet.Type == protocol.JobCreated {
					t.Logf("JOB_CREATED at attempt %d after the proxy resumed", attempt)
					break
				}
				if f.Text || f.Packet.Type != protocol.Error || len(f.Packet.Args) == 0 || string(f.Packet.Args[0]) != protocol.CodeQueueError {
					t.Fatalf("submit after the database answers again: got %v %q, want JOB_CREATED or ERROR QUEUE_ERROR", f.Packet.Type, f.Packet.Args)
				}
				if time.Now().After(deadline) {
					t.Fatalf("submits still fail with QUEUE_ERROR %v after the proxy resumed", stallBound)
				}
				time.Sleep(50 * time.Millisecond) // the store reconnects on its own: retry, bounded
			}
			if n := queueTotal(t, p.Addr, fn); n != 2 {
				t.Fatalf("after the stall: status total of %s = %d, want 2", fn, n)
			}

			// Silent again, with a submit waiting on the database: SIGTERM
			// still stops the server, and that submit gets no ack.
			proxy.Stall()
			c.send(protocol.SubmitJobBg, fn, "at-stop", "4")
			eventually(t, "the submit's store call reaches the silent database", func() bool { return proxy.Held() > 0 })
			stop := time.Now()
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Done():
			case <-time.After(stallBound):
				t.Fatalf("gserverd did not exit within %v of SIGTERM while the database does not answer (store timeout %v)", stallBound, storeTimeout)
			}
			t.Logf("gserverd exited %v after SIGTERM", time.Since(stop).Round(time.Millisecond))
			if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit status %d after SIGTERM, want 0", code)
			}
			_ = c.c.SetReadDeadline(time.Now().Add(stallBound))
			for {
				f, err := c.r.Next()
				if err != nil {
					break // the server closed the connection
				}
				if f.Text || f.Packet.Type != protocol.Error || len(f.Packet.Args) == 0 || string(f.Packet.Args[0]) != protocol.CodeQueueError {
					t.Fatalf("the submit in flight at SIGTERM: got %v %q, want ERROR %s or the connection closed (never an ack)",
						f.Packet.Type, f.Packet.Args, protocol.CodeQueueError)
				}
			}
		})
	}
}

// TestBinaryStoreStallAtStart: gserverd started while the database does
// not answer (the proxy stalled) exits with status 1 and one line naming
// --store-timeout, instead of waiting for the database.
func TestBinaryStoreStallAtStart(t *testing.T) {
	t.Parallel()
	const (
		storeTimeout = time.Second
		stallBound   = 30 * storeTimeout
	)
	for _, b := range externalBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.RequireTCP(t, b.service, b.addr)
			q := b.newQueue(t)
			proxy := storetest.NewProxy(t, b.addr)
			proxy.Stall()
			t.Cleanup(proxy.Resume)
			args := append([]string{"-L", "127.0.0.1", "-p", "0", "--http-listen", "", "--store-timeout", storeTimeout.String()}, q.flags(proxy.Addr())...)
			p := startBinary(t, nil, args...)
			select {
			case <-p.Done():
			case <-time.After(stallBound):
				t.Fatalf("gserverd still starting %v after it began, with the database silent (store timeout %v)", stallBound, storeTimeout)
			}
			if code := p.Cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if out := p.Output(); !strings.Contains(out, "not open within --store-timeout "+storeTimeout.String()) {
				t.Errorf("output does not name --store-timeout:\n%s", out)
			}
		})
	}
}
