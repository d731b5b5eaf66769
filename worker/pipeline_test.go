package worker_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker"
)

// fakeServer is the server side of one worker connection, scripted by
// the test packet by packet.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	rd   *protocol.Reader
}

func acceptFake(t *testing.T, ln net.Listener) *fakeServer {
	t.Helper()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeServer{t: t, conn: c, rd: protocol.NewReader(c, protocol.Limits{})}
}

// next reads the worker's next request packet.
func (f *fakeServer) next() protocol.Packet {
	f.t.Helper()
	_ = f.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	fr, err := f.rd.Next()
	if err != nil {
		f.t.Fatalf("read from the worker: %v", err)
	}
	return fr.Packet.Clone()
}

// expect reads the next packet and fails unless it is of type want.
func (f *fakeServer) expect(want protocol.Type) protocol.Packet {
	f.t.Helper()
	p := f.next()
	if p.Type != want {
		f.t.Fatalf("worker sent %s, want %s", p.Type, want)
	}
	return p
}

func (f *fakeServer) send(typ protocol.Type, args ...string) {
	f.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	_ = f.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := f.conn.Write(protocol.AppendPacket(nil, protocol.Res, typ, b...)); err != nil {
		f.t.Fatalf("write to the worker: %v", err)
	}
}

// TestPipelinedGrabs: with one server, a worker of concurrency 4 keeps 4
// grabs in flight on its one connection without waiting for replies,
// runs the 4 jobs at once, sends each result with the next grab, and
// sleeps (one PRE_SLEEP) only once every grab came back empty.
func TestPipelinedGrabs(t *testing.T) {
	t.Parallel()
	const n = 4
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	running, most := 0, 0
	all := make(chan struct{})
	w := newWorker(t, worker.Options{
		Servers:     []string{ln.Addr().String()},
		Concurrency: n,
		Functions: map[string]worker.FunctionConfig{"f": {Handler: worker.HandlerFunc(func(ctx context.Context, j worker.Job) ([]byte, error) {
			mu.Lock()
			running++
			most = max(most, running)
			if running == n {
				close(all)
			}
			mu.Unlock()
			select { // every job waits until all n run at once
			case <-all:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			mu.Lock()
			running--
			mu.Unlock()
			return []byte("r" + string(j.Payload())), nil
		})}},
	})
	runWorker(t, w)
	srv := acceptFake(t, ln)
	srv.expect(protocol.CanDo)
	for i := range n {
		if p := srv.next(); p.Type != protocol.GrabJobUniq {
			t.Fatalf("packet %d: %s, want GRAB_JOB_UNIQ: %d grabs in flight before any reply", i, p.Type, i)
		}
	}
	for i := range n {
		srv.send(protocol.JobAssignUniq, fmt.Sprintf("H:%d", i), "f", "", fmt.Sprint(i))
	}
	results := map[string]string{}
	grabs := 0
	for len(results) < n || grabs < n {
		switch p := srv.next(); p.Type {
		case protocol.WorkComplete:
			results[string(p.Arg(0))] = string(p.Arg(1))
		case protocol.GrabJobUniq:
			grabs++
		default:
			t.Fatalf("worker sent %s while finishing, want results and grabs", p.Type)
		}
	}
	for i := range n {
		if got, want := results[fmt.Sprintf("H:%d", i)], fmt.Sprintf("r%d", i); got != want {
			t.Errorf("result of H:%d = %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	if most != n {
		t.Errorf("at most %d jobs ran at once, want %d", most, n)
	}
	mu.Unlock()
	for range n {
		srv.send(protocol.NoJob)
	}
	srv.expect(protocol.PreSleep)
	srv.send(protocol.Noop)
	for range n { // awake: the slots are free again
		srv.expect(protocol.GrabJobUniq)
	}
}
