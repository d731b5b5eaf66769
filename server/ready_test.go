package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gworkerd/gworkerd/protocol"
)

// TestGrabOrder: GRAB_JOB takes the highest priority over all of the
// worker's functions, functions of equal priority round-robin, and
// nothing of a function the worker gave up (CANT_DO).
func TestGrabOrder(t *testing.T) {
	t.Parallel()
	type sub struct {
		fn   string
		prio protocol.Type
		data string
	}
	tests := []struct {
		name    string
		can     []string
		cant    []string // sent after the first grab
		jobs    []sub
		want    []string // data of the jobs grabbed, in order; then NO_JOB
		skipped int      // jobs left queued
	}{
		{
			name: "high before normal before low across functions",
			can:  []string{"a", "b", "c"},
			jobs: []sub{{"a", protocol.SubmitJobLowBg, "a-low"}, {"b", protocol.SubmitJobBg, "b-normal"}, {"c", protocol.SubmitJobHighBg, "c-high"}},
			want: []string{"c-high", "b-normal", "a-low"},
		},
		{
			name: "equal priorities round-robin",
			can:  []string{"a", "b", "c"},
			jobs: []sub{{"a", protocol.SubmitJobBg, "a1"}, {"a", protocol.SubmitJobBg, "a2"}, {"b", protocol.SubmitJobBg, "b1"}, {"b", protocol.SubmitJobBg, "b2"}, {"c", protocol.SubmitJobBg, "c1"}},
			want: []string{"a1", "b1", "c1", "a2", "b2"},
		},
		{
			name: "functions of other workers are not taken",
			can:  []string{"a"},
			jobs: []sub{{"z", protocol.SubmitJobHighBg, "z1"}, {"a", protocol.SubmitJobLowBg, "a1"}},
			want: []string{"a1"}, skipped: 1,
		},
		{
			// CANT_DO also requeues the job of a the worker runs, as in gearmand.
			name: "nothing more of a function given up",
			can:  []string{"a", "b"},
			cant: []string{"a"},
			jobs: []sub{{"a", protocol.SubmitJobBg, "a1"}, {"a", protocol.SubmitJobBg, "a2"}, {"b", protocol.SubmitJobBg, "b1"}},
			want: []string{"a1", "b1"}, skipped: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil)
			cl := ts.dial(t)
			for _, j := range tt.jobs {
				cl.submit(j.prio, j.fn, "", j.data)
			}
			w := ts.worker(t, tt.can...)
			var got []string
			for range tt.want {
				_, _, data := w.grab()
				got = append(got, data)
				if len(got) == 1 {
					for _, f := range tt.cant {
						w.send(protocol.CantDo, f)
					}
				}
			}
			w.grabNone()
			if !slices.Equal(got, tt.want) {
				t.Errorf("grabbed %q, want %q", got, tt.want)
			}
			if st := ts.Stats(); st.Jobs-st.Running != tt.skipped {
				q := st.Jobs - st.Running
				t.Errorf("%d jobs left queued, want %d", q, tt.skipped)
			}
			checkReady(t, ts.Server)
		})
	}
}

// TestReadyListsFollowTheQueues drives random registrations, submits of
// every priority, grabs, results, PRE_SLEEPs and disconnects, and after
// every step checks that each connection's ready lists hold exactly its
// registered functions with a queued job of that priority, that its
// armed list holds exactly its running jobs with a timer, and that a
// grab takes the best priority the worker could have.
func TestReadyListsFollowTheQueues(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	fns := []string{"f0", "f1", "f2", "f3", "f4"}
	prios := []protocol.Type{protocol.SubmitJobHighBg, protocol.SubmitJobBg, protocol.SubmitJobLowBg}
	rng := rand.New(rand.NewPCG(1, 2))
	cl := ts.dial(t)
	workers := make([]*tconn, 3)
	held := make([][][2]string, len(workers)) // handle, function
	for i := range workers {
		workers[i] = ts.dial(t)
		workers[i].send(protocol.SetClientID, fmt.Sprintf("w%d", i))
	}
	for step := range 1500 {
		i := rng.IntN(len(workers))
		w := workers[i]
		fn := fns[rng.IntN(len(fns))]
		switch op := rng.IntN(10); op {
		case 0:
			w.send(protocol.CanDo, fn)
		case 1:
			w.send(protocol.CanDoTimeout, fn, "3600")
		case 2:
			w.send(protocol.CantDo, fn) // requeues its jobs of fn
			held[i] = slices.DeleteFunc(held[i], func(h [2]string) bool { return h[1] == fn })
		case 3, 4:
			cl.submit(prios[rng.IntN(3)], fn, "", "x")
		case 5, 6:
			best := bestPriority(ts.Server, fmt.Sprintf("w%d", i))
			w.send(protocol.GrabJob)
			p := nextNotNoop(w)
			switch {
			case best < 0 && p.typ != protocol.NoJob:
				t.Fatalf("step %d: grab got %v, want NO_JOB", step, p.typ)
			case best >= 0 && p.typ != protocol.JobAssign:
				t.Fatalf("step %d: grab got %v, want a job of priority %d", step, p.typ, best)
			case best >= 0:
				args := splitArgs(p.body)
				if prio := runningPriority(ts.Server, args[0]); prio != best {
					t.Fatalf("step %d: grabbed a job of priority %d, want %d", step, prio, best)
				}
				held[i] = append(held[i], [2]string{args[0], args[1]})
			}
		case 7:
			if len(held[i]) > 0 {
				k := rng.IntN(len(held[i]))
				w.send(protocol.WorkComplete, held[i][k][0], "")
				held[i] = slices.Delete(held[i], k, k+1)
			}
		case 8:
			w.send(protocol.PreSleep)
		case 9:
			if rng.IntN(4) == 0 {
				_ = w.nc.Close()
				w = ts.dial(t)
				workers[i], held[i] = w, nil
				w.send(protocol.SetClientID, fmt.Sprintf("w%d", i))
				w.sync()
				waitFor(t, "the closed worker gone", func() bool { return countID(ts.Server, fmt.Sprintf("w%d", i)) == 1 })
			} else {
				w.send(protocol.ResetAbilities) // requeues every job it holds
				held[i] = nil
			}
		}
		// A sleeping worker is woken by submits: NOOPs may come first.
		w.send(protocol.EchoReq, "sync")
		if p := nextNotNoop(w); p.typ != protocol.EchoRes {
			t.Fatalf("step %d: %v, want ECHO_RES", step, p.typ)
		}
		cl.sync()
		checkReady(t, ts.Server)
		if t.Failed() {
			t.Fatalf("after step %d", step)
		}
	}
}

func splitArgs(b []byte) []string {
	var out []string
	for _, f := range bytes.SplitN(b, []byte{0}, 3) {
		out = append(out, string(f))
	}
	return out
}

func nextNotNoop(c *tconn) rpacket {
	c.t.Helper()
	p := c.next()
	for p.typ == protocol.Noop {
		p = c.next()
	}
	return p
}

// bestPriority is the highest priority of a queued job of one of the
// registered functions of the connection with client id id; -1 for none.
func bestPriority(s *Server, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for c := s.conns.head; c != nil; c = c.next {
		if c.clientID != id {
			continue
		}
		for a := c.abilHead; a != nil; a = a.next {
			for p := range a.fn.queues {
				if a.widx >= 0 && a.fn.queues[p].head != nil && (best < 0 || p < best) {
					best = p
				}
			}
		}
	}
	return best
}

func runningPriority(s *Server, handle string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if s.handleString(j.id) == handle {
			return int(j.prio)
		}
	}
	return -1
}

func countID(s *Server, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := s.conns.head; c != nil; c = c.next {
		if c.clientID == id {
			n++
		}
	}
	return n
}

// checkReady checks every connection's ready and armed lists against the
// state they stand for.
func checkReady(t *testing.T, s *Server) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := s.conns.head; c != nil; c = c.next {
		for p := range c.ready {
			var got, want []*ability
			var prev *ability
			for a := c.ready[p].head; a != nil; a = a.ready[p].next {
				if !a.ready[p].in || a.ready[p].prev != prev || a.c != c {
					t.Errorf("conn %q ready[%d]: broken links at %s", c.clientID, p, a.fn.name)
					return
				}
				got, prev = append(got, a), a
			}
			if c.ready[p].tail != prev {
				t.Errorf("conn %q ready[%d]: tail is not the last", c.clientID, p)
			}
			for a := c.abilHead; a != nil; a = a.next {
				if a.widx >= 0 && a.fn.queues[p].head != nil {
					want = append(want, a)
				} else if a.ready[p].in {
					t.Errorf("conn %q: %s marked ready[%d] without a queued job or registration", c.clientID, a.fn.name, p)
				}
			}
			if len(got) != len(want) {
				t.Errorf("conn %q ready[%d]: %d registrations, want %d", c.clientID, p, len(got), len(want))
			}
			for _, a := range want {
				if !slices.Contains(got, a) {
					t.Errorf("conn %q ready[%d]: %s missing", c.clientID, p, a.fn.name)
				}
			}
		}
		var armed, timed []*job
		for j := c.armed; j != nil; j = j.ext.armNext {
			if j.ext.armedOn != c || j.ext.timer == nil {
				t.Errorf("conn %q: armed job %d without its timer", c.clientID, j.id)
				return
			}
			armed = append(armed, j)
		}
		for a := c.abilHead; a != nil; a = a.next {
			for j := a.running.head; j != nil; j = j.next {
				if j.ext != nil && j.ext.timer != nil {
					timed = append(timed, j)
				}
			}
		}
		if len(armed) != len(timed) {
			t.Errorf("conn %q: %d armed jobs listed, %d running with a timer", c.clientID, len(armed), len(timed))
		}
	}
}
