package server

import (
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/protocol"
)

// TestMaxQueueMemory (issue 10, item 7): with Options.MaxQueueMemory, a
// submit that would create a job beyond the bound gets ERROR QUEUE_ERROR,
// never JOB_CREATED, and creates nothing; a submit that joins an existing
// job is still acknowledged; the server keeps serving, and once a worker
// has drained a job the same submit succeeds. Pipelined background
// submits (one store batch) are answered in order.
func TestMaxQueueMemory(t *testing.T) {
	t.Parallel()
	const size = 1000
	payload := strings.Repeat("p", size)
	per := jobMemory(0, size, false) // every job below: empty unique
	tests := []struct {
		name  string
		store bool
		typ   protocol.Type
	}{
		{"builtin background", false, protocol.SubmitJobBg},
		{"builtin foreground", false, protocol.SubmitJob},
		{"store background", true, protocol.SubmitJobBg},
		{"store foreground", true, protocol.SubmitJob},
		{"store low background", true, protocol.SubmitJobLowBg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fg := tt.typ == protocol.SubmitJob
			var st *memStore
			ts := startServer(t, func(o *Options) {
				// Three jobs with a 1000-byte payload and an empty unique
				// fit, with room for a job with a short unique and no payload;
				// a fourth does not.
				o.MaxQueueMemory = 3*per + 300
				if tt.store {
					st = newMemStore()
					o.Store = st
				}
			})
			c := ts.dial(t)
			// Three submits in one write: one store batch.
			var b []byte
			for range 3 {
				b = protocol.AppendPacketString(b, protocol.Req, tt.typ, "f", "", payload)
			}
			c.write(b)
			for range 3 {
				c.expectType(protocol.JobCreated)
			}
			c.send(tt.typ, "f", "", payload)
			c.expectError(protocol.CodeQueueError, textMemoryFull)
			// A job of another function does not fit either.
			c.send(tt.typ, "g", "", payload)
			c.expectError(protocol.CodeQueueError, textMemoryFull)
			// A small job still fits: the bound counts bytes, not jobs.
			c.submit(tt.typ, "f", "u", "")
			// Joining the existing job "u" costs nothing and is acknowledged.
			c.submit(tt.typ, "f", "u", "")
			if got := ts.queued("f"); got != 4 {
				t.Fatalf("after the refusals function f has %d jobs, want 4", got)
			}
			if tt.store && !fg && st.len() != 4 {
				t.Fatalf("after the refusals the store holds %d jobs, want 4", st.len())
			}

			// The server keeps serving: a worker drains one big job.
			w := ts.worker(t, "f")
			h, _, data := w.grab()
			if data != payload {
				t.Fatalf("grabbed %d bytes, want the %d-byte payload", len(data), size)
			}
			// Running, the job still counts.
			c.send(tt.typ, "f", "", payload)
			c.expectError(protocol.CodeQueueError, textMemoryFull)
			w.send(protocol.WorkComplete, h, "done")
			w.sync()
			if fg {
				c.expect(protocol.WorkComplete, h, "done")
			}
			c.submit(tt.typ, "f", "", payload)
			c.send(tt.typ, "f", "", payload)
			c.expectError(protocol.CodeQueueError, textMemoryFull)
			stats := ts.Stats()
			if stats.RefusedMemory != 4 || stats.MaxQueueMemory != 3*per+300 || stats.QueueMemory != 3*per+jobMemory(1, 0, false) {
				t.Fatalf("stats: refused %d, memory %d of %d; want 4 refused, %d of %d",
					stats.RefusedMemory, stats.QueueMemory, stats.MaxQueueMemory, 3*per+jobMemory(1, 0, false), 3*per+300)
			}
		})
	}
}

// queued returns how many jobs function fn holds (queued and running).
func (ts *testServer) queued(fn string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if f := ts.funcs[fn]; f != nil {
		return f.total
	}
	return 0
}

// TestMaxQueueMemoryInFlight (issue 10, item 7): a large submit payload
// counts against Options.MaxQueueMemory from its header on, before it is
// received whole, so that many clients sending large jobs at once cannot
// make the server buffer more than the bound: a submit beyond it is read
// and discarded, and answered ERROR QUEUE_ERROR. A connection that goes
// in the middle of a payload gives its reservation back.
func TestMaxQueueMemoryInFlight(t *testing.T) {
	t.Parallel()
	const size = 150 << 10 // over bigFrameSize: reserved from the header on
	for _, withStore := range []bool{false, true} {
		name := "builtin"
		if withStore {
			name = "store"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(o *Options) {
				o.MaxQueueMemory = 200 << 10 // room for one such job
				if withStore {
					o.Store = newMemStore()
				}
			})
			job := protocol.AppendPacketString(nil, protocol.Req, protocol.SubmitJobBg, "f", "", strings.Repeat("d", size))
			a, b := ts.dial(t), ts.dial(t)
			a.write(job[:len(job)/2]) // the header and half the payload
			waitFor(t, "the first payload's reservation", func() bool { return ts.Stats().QueueMemory >= size })

			b.write(job)
			b.expectError(protocol.CodeQueueError, textMemoryFull)
			b.sync() // the discarded payload left the stream in step

			a.write(job[len(job)/2:])
			a.expectType(protocol.JobCreated)
			if got, want := ts.Stats().QueueMemory, jobMemory(0, size, false); got != want {
				t.Fatalf("queue memory %d with one job held, want %d", got, want)
			}

			// A connection that goes mid-payload gives its reservation back.
			w := ts.worker(t, "f")
			h, _, _ := w.grab()
			w.send(protocol.WorkComplete, h, "")
			w.sync()
			c := ts.dial(t)
			c.write(job[:len(job)/2])
			waitFor(t, "the reservation", func() bool { return ts.Stats().QueueMemory >= size })
			_ = c.nc.Close()
			waitFor(t, "the reservation to end", func() bool { return ts.Stats().QueueMemory == 0 })
			b.submit(protocol.SubmitJobBg, "f", "", strings.Repeat("d", size))
		})
	}
}
