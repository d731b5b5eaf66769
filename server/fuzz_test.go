package server

import (
	"io"
	"net"
	"testing"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
	"github.com/gworkerd/gworkerd/protocol"
)

// feedConn is a connection whose handler is driven directly, without a
// reader goroutine; its output is discarded.
type feedConn struct {
	s    *Server
	c    *conn
	h    handler
	peer net.Conn
	done chan struct{}
}

func newFeedConn(s *Server, id uint64) *feedConn {
	a, b := net.Pipe()
	c := newConn(s, a, id)
	s.mu.Lock()
	s.conns.push(c)
	s.mu.Unlock()
	f := &feedConn{s: s, c: c, h: handler{c: c, s: s}, peer: b, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_, _ = io.Copy(io.Discard, b)
	}()
	return f
}

// feed hands p to the handler and writes its replies to the pipe.
func (f *feedConn) feed(p []byte) bool {
	ok := f.h.feed(p)
	f.c.flush()
	return ok
}

func (f *feedConn) close() {
	f.s.dropConn(f.c)
	_ = f.peer.Close()
	<-f.done
}

func fuzzSeeds() [][]byte {
	req := func(t protocol.Type, args ...string) []byte {
		return protocol.AppendPacketString(nil, protocol.Req, t, args...)
	}
	cat := func(ps ...[]byte) []byte {
		var b []byte
		for _, p := range ps {
			b = append(b, p...)
		}
		return b
	}
	return [][]byte{
		req(protocol.EchoReq, "hello"),
		cat(req(protocol.CanDo, "f"), req(protocol.SubmitJob, "f", "u", "data"), req(protocol.GrabJob),
			req(protocol.WorkComplete, "H:fuzz:1", "r")),
		cat(req(protocol.CanDoTimeout, "f", "1000"), req(protocol.SubmitJobBg, "f", "", "d"), req(protocol.PreSleep),
			req(protocol.GrabJobUniq), req(protocol.WorkStatus, "H:fuzz:1", "1", "2"), req(protocol.CantDo, "f")),
		cat(req(protocol.SubmitReduceJob, "f", "u", "r", "", "d"), req(protocol.GrabJobAll), req(protocol.ResetAbilities)),
		cat(req(protocol.SubmitJobEpoch, "f", "", "99999999999", "d"), req(protocol.GetStatus, "H:fuzz:1"),
			req(protocol.GetStatusUnique, "u"), req(protocol.OptionReq, "exceptions"), req(protocol.SetClientID, "me")),
		[]byte("status\nworkers\r\nshow jobs\nshow unique jobs\nprioritystatus\ncancel job H:fuzz:1\nmaxqueue f 1 2 3\ndrop function f\ncreate function g\n"),
		req(protocol.WorkException, "H:fuzz:1", "x"),
		cat(req(protocol.CanDo, "f"), req(protocol.CanDo, "f"), req(protocol.SubmitJob, "f", "u", "d"),
			req(protocol.SubmitJob, "f", "u", "d"), req(protocol.GrabJob), req(protocol.CanDo, "g"), req(protocol.CantDo, "f"),
			req(protocol.GrabJob), req(protocol.WorkData, "H:fuzz:1", "x"), req(protocol.CanDoTimeout, "f", "5")),
		cat(req(protocol.CanDo, "x\ny"), req(protocol.SubmitJobBg, "x\ty", "", "d"), []byte("create function a\x01b\nmaxqueue a\tb 1\n")),
	}
}

// FuzzServerFeed feeds arbitrary bytes to a connection's packet handler
// and checks that nothing panics and the server's counts stay consistent
// once the connection is gone.
func FuzzServerFeed(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		o := DefaultOptions()
		o.JobHandlePrefix = "H:fuzz"
		o.Clock = clocktest.New()
		o.MaxQueueMemory = 4 << 10 // a few jobs: some submits are refused
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fc := newFeedConn(s, 1)
		i := 0
		if len(data) > 0 {
			i = int(cut) % (len(data) + 1)
		}
		if fc.feed(data[:i]) {
			fc.feed(data[i:])
		}
		fc.close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.running != 0 {
			t.Fatalf("running %d after the only connection left", s.running)
		}
		total := 0
		for _, fn := range s.funcOrder {
			if fn.running != 0 || len(fn.workers) != 0 || fn.nworkers != 0 {
				t.Fatalf("function %q: running %d workers %d (%d registrations)", fn.name, fn.running, fn.nworkers, len(fn.workers))
			}
			total += fn.total
			if !protocol.ValidFunctionName([]byte(fn.name)) {
				t.Fatalf("function %q was created: it breaks the admin listings", fn.name)
			}
		}
		if total != len(s.jobs) {
			t.Fatalf("functions count %d jobs, server holds %d", total, len(s.jobs))
		}
		var mem int64
		for _, j := range s.jobs {
			mem += jobMemory(len(j.unique), len(j.data), j.unique == "-")
		}
		if s.mem != mem {
			t.Fatalf("queue memory counted %d, the jobs held take %d", s.mem, mem)
		}
	})
}

// BenchmarkSubmitGrabComplete measures the dispatch hot path: a
// foreground submit, a grab and a completion, through the handlers.
func BenchmarkSubmitGrabComplete(b *testing.B) {
	o := DefaultOptions()
	o.JobHandlePrefix = "H:bench"
	s, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	client, worker := newFeedConn(s, 1), newFeedConn(s, 2)
	defer client.close()
	defer worker.close()
	worker.feed(protocol.AppendPacketString(nil, protocol.Req, protocol.CanDo, "bench"))
	submit := protocol.AppendPacketString(nil, protocol.Req, protocol.SubmitJob, "bench", "", "payload of a job")
	grab := protocol.AppendPacketString(nil, protocol.Req, protocol.GrabJob)
	b.ReportAllocs()
	b.ResetTimer()
	var done []byte
	for i := range b.N {
		client.feed(submit)
		worker.feed(grab)
		done = protocol.AppendPacket(done[:0], protocol.Req, protocol.WorkComplete,
			s.appendHandle(nil, uint64(i+1)), []byte("ok"))
		worker.feed(done)
	}
}
