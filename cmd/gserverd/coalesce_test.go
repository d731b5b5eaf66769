package main

import (
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// TestBinaryCoalescedBackgroundStored is issue 10's test of a background
// submit that joins a waiting foreground job with the same unique: it is
// acknowledged only after the job's record is written. Against each
// external store, reached through a proxy the test cuts:
//   - store unreachable: the background submit gets ERROR QUEUE_ERROR,
//     not JOB_CREATED, nothing is stored, and the job stays a foreground
//     job (it goes when its client leaves);
//   - store reachable again: the background submit gets JOB_CREATED, the
//     record is in the database at that moment, and after a SIGKILL right
//     after the ack a new gserverd on the same queue hands the job out.
func TestBinaryCoalescedBackgroundStored(t *testing.T) {
	t.Parallel()
	for _, b := range externalBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.RequireTCP(t, b.service, b.addr)
			q := b.newQueue(t)
			proxy := storetest.NewProxy(t, b.addr)
			p := startGserverd(t, append(q.flags(proxy.Addr()), "--http-listen", "")...)
			const fn = "coalesce"

			// The store is unreachable.
			fg := dialRaw(t, p.Addr)
			fg.send(protocol.SubmitJob, fn, "u-down", "a")
			fg.expect(protocol.JobCreated)
			proxy.Cut()
			bg := dialRaw(t, p.Addr)
			bg.send(protocol.SubmitJobBg, fn, "u-down", "a")
			_ = bg.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := bg.r.Next()
			if err != nil {
				t.Fatalf("reply to the coalesced SUBMIT_JOB_BG while the store is unreachable: %v", err)
			}
			if f.Text || f.Packet.Type != protocol.Error || len(f.Packet.Args) == 0 || string(f.Packet.Args[0]) != protocol.CodeQueueError {
				t.Fatalf("coalesced SUBMIT_JOB_BG while the store is unreachable: got %v %q, want ERROR %s (the job is not stored)",
					f.Packet.Type, f.Packet.Args, protocol.CodeQueueError)
			}
			if n := q.count(t); n != 0 {
				t.Fatalf("after the QUEUE_ERROR the store holds %d jobs, want 0:\n%s", n, q.dump(t))
			}
			fg.c.Close()
			eventually(t, "the foreground job goes with its client (the failed submit did not make it background)", func() bool {
				return queueTotal(t, p.Addr, fn) == 0
			})

			// The store is back: the ack follows the write.
			fg2 := dialRaw(t, p.Addr)
			fg2.send(protocol.SubmitJob, fn, "u-up", "b")
			h := fg2.expect(protocol.JobCreated)[0]
			proxy.Restore()
			deadline := time.Now().Add(30 * time.Second)
			for attempt := 1; ; attempt++ {
				bg.send(protocol.SubmitJobBg, fn, "u-up", "b")
				_ = bg.c.SetReadDeadline(time.Now().Add(30 * time.Second))
				f, err := bg.r.Next()
				if err != nil {
					t.Fatalf("coalesced SUBMIT_JOB_BG after the store came back: %v", err)
				}
				if !f.Text && f.Packet.Type == protocol.JobCreated {
					if got := string(f.Packet.Arg(0)); got != h {
						t.Fatalf("coalesced SUBMIT_JOB_BG: handle %s, want the foreground job's %s", got, h)
					}
					t.Logf("JOB_CREATED at attempt %d after the store came back", attempt)
					break
				}
				if f.Text || f.Packet.Type != protocol.Error || len(f.Packet.Args) == 0 || string(f.Packet.Args[0]) != protocol.CodeQueueError {
					t.Fatalf("coalesced SUBMIT_JOB_BG after the store came back: got %v %q, want JOB_CREATED or ERROR QUEUE_ERROR", f.Packet.Type, f.Packet.Args)
				}
				if time.Now().After(deadline) {
					t.Fatal("coalesced SUBMIT_JOB_BG still fails with QUEUE_ERROR 30 s after the store came back")
				}
				time.Sleep(50 * time.Millisecond) // the store reconnects on its own: retry, bounded
			}
			p.Kill()
			if n := q.count(t); n != 1 {
				t.Fatalf("after JOB_CREATED of the coalesced submit (and a SIGKILL) the store holds %d jobs, want 1:\n%s", n, q.dump(t))
			}
			r := startGserverd(t, append(q.flags(b.addr), "--http-listen", "")...)
			workOne(t, r.Addr, fn, "u-up", "b")
			eventually(t, "the job leaves the server and the store", func() bool {
				return queueTotal(t, r.Addr, fn) == 0 && q.count(t) == 0
			})
		})
	}
}
