package main

import (
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// TestBinaryStaleDelete is issue 10's test of a store Delete that times
// out but is executed by the database later: the network path of the
// connection carrying it goes silent (a proxy holds that connection's
// bytes, StallOn) after the statement has left gserverd, so the delete
// fails at --store-timeout while the database has not seen it yet. A new
// job with the same (function, unique) is then submitted and acknowledged
// (its Add goes through another connection), the path comes back and the
// database runs the old delete, after the new job's Add. gserverd is
// restarted: the new job must be replayed, so the late delete must not
// remove the newer record (versioned delete, store.Ref.Version).
//
// MySQL is not in the list: gserverd's MySQL store deletes in a
// transaction that the timed-out connection never commits, so its late
// delete is rolled back (the conformance suite checks its versioned
// delete, storetest).
func TestBinaryStaleDelete(t *testing.T) {
	t.Parallel()
	// Every store call is bounded by it, opening the store included:
	// 1s was too short on a loaded machine (TestBinaryStoreStall).
	const storeTimeout = 5 * time.Second
	for _, b := range externalBackends() {
		if b.name == "mysql" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.RequireTCP(t, b.service, b.addr)
			q := b.newQueue(t)
			proxy := storetest.NewProxy(t, b.addr)
			t.Cleanup(proxy.Resume) // before the proxy's own cleanup closes it
			p := logOnFailure(t, startGserverd(t, append(q.flags(proxy.Addr()), "--store-timeout", storeTimeout.String(), "--http-listen", "")...))
			const fn, unique = "stale", "stale-delete-unique-7f3a"

			c := dialRaw(t, p.Addr)
			c.send(protocol.SubmitJobBg, fn, unique, "old")
			c.expect(protocol.JobCreated)
			w := dialRaw(t, p.Addr)
			w.send(protocol.CanDo, fn)
			a, ok := w.grabNow()
			if !ok || a.unique != unique || a.data != "old" {
				t.Fatalf("worker got %+v (ok %v), want the job %q with payload old", a, ok, unique)
			}

			// The connection that carries the delete (the first statement
			// naming the unique from now on) goes silent.
			proxy.StallOn([]byte(unique))
			w.send(protocol.WorkComplete, a.handle, "done")
			eventually(t, "the delete of the finished job is held by the stalled path", func() bool { return proxy.Held() > 0 })

			// A new job with the same unique: acknowledged once its record
			// is stored (after the old delete failed at its deadline).
			c.send(protocol.SubmitJobBg, fn, unique, "new")
			_ = c.c.SetReadDeadline(time.Now().Add(12 * storeTimeout))
			f, err := c.r.Next()
			if err != nil {
				t.Fatalf("reply to the new submit: %v", err)
			}
			if f.Text || f.Packet.Type != protocol.JobCreated {
				t.Fatalf("new submit with the unique of the job whose delete timed out: got %v %q, want JOB_CREATED", f.Packet.Type, f.Packet.Args)
			}

			// The path comes back: the database gets the old delete now.
			proxy.Resume()
			eventually(t, "the proxy forwards the held delete", func() bool { return proxy.Held() == 0 })
			p.Stop()
			if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("gserverd exit status %d after SIGTERM, want 0", code)
			}

			p2 := logOnFailure(t, startGserverd(t, append(q.flags(b.addr), "--http-listen", "")...))
			if n := queueTotal(t, p2.Addr, fn); n != 1 {
				t.Fatalf("after the restart %s has %d jobs, want 1: the acknowledged job %q (payload new); stored: %s", fn, n, unique, q.dump(t))
			}
			workOne(t, p2.Addr, fn, unique, "new")
		})
	}
}
