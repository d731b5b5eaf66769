package worker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// countingWriter counts the writes that reach the connection.
type countingWriter struct {
	io.Writer
	writes atomic.Int32
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Writer.Write(p)
}

// sessionPair returns a session on one end of a loopback TCP connection
// (its reader goroutine running) and the other end.
func sessionPair(t *testing.T) (*session, *countingWriter, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() { c, err := ln.Accept(); ch <- accepted{c, err} }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	s := newSession(ln.Addr().String(), c, time.Now)
	rw := &countingWriter{Writer: s.wr}
	s.wr = rw
	t.Cleanup(func() { s.close(); <-s.readDone; a.c.Close() })
	return s, rw, a.c
}

// waitQueued waits until n bytes in all have been queued on s.
func waitQueued(t *testing.T, s *session, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var q uint64
		// TryLock: a writer that held wmu while it wrote would
		// otherwise hang the test.
		if s.wmu.TryLock() {
			q = s.queued
			s.wmu.Unlock()
		}
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Writers that queue while another is writing go out together, in one
// write, each writer's packets whole and in its order, and each writer
// returns once its packets are written (the next one is only queued
// then).
func TestSessionGroupsWrites(t *testing.T) {
	t.Parallel()
	s, rw, peer := sessionPair(t)

	// A write larger than the socket buffers blocks until the peer reads.
	big := protocol.AppendPacket(nil, protocol.Req, protocol.WorkData, []byte("H:1"), make([]byte, 32<<20))
	bigDone := make(chan error, 1)
	go func() { bigDone <- s.write(context.Background(), big) }()
	waitQueued(t, s, uint64(len(big)))

	const writers, each = 10, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		pkts := make([][]byte, each)
		for j := range each {
			pkts[j] = protocol.AppendPacket(nil, protocol.Req, protocol.WorkStatus, fmt.Appendf(nil, "H:w%d", i), fmt.Appendf(nil, "%d", j), []byte("3"))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range pkts {
				// Each packet is queued while the big write blocks:
				// the next one only after it is written.
				if err := s.write(context.Background(), p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// All first packets are queued behind the big write.
	var first uint64
	for i := range writers {
		first += uint64(len(protocol.AppendPacket(nil, protocol.Req, protocol.WorkStatus, fmt.Appendf(nil, "H:w%d", i), []byte("0"), []byte("3"))))
	}
	waitQueued(t, s, uint64(len(big))+first)

	// The peer reads everything.
	r := protocol.NewReader(peer, protocol.Limits{MaxPayload: 64 << 20})
	next := map[string]int{}
	_ = peer.SetReadDeadline(time.Now().Add(60 * time.Second))
	for got := 0; got < 1+writers*each; got++ {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", got, err)
		}
		if f.Packet.Type == protocol.WorkData {
			continue
		}
		h, n := string(f.Packet.Args[0]), string(f.Packet.Args[1])
		if want := fmt.Sprint(next[h]); n != want {
			t.Fatalf("%s: packet %s, want %s: a writer's packets out of order", h, n, want)
		}
		next[h]++
	}
	wg.Wait()
	if err := <-bigDone; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The big write, the ten first packets together, and then at most
	// one write per later packet.
	if w := rw.writes.Load(); w > 1+1+writers*(each-1) {
		t.Errorf("%d writes for 1 + %d packets: the packets queued behind the big write were not grouped", w, writers*each)
	}
}

// A connection that breaks while writers wait fails them all: none
// hangs and none reports success.
func TestSessionWriteErrorReachesWaiters(t *testing.T) {
	t.Parallel()
	s, _, peer := sessionPair(t)
	big := protocol.AppendPacket(nil, protocol.Req, protocol.WorkData, []byte("H:1"), make([]byte, 32<<20))
	done := make(chan error, 6)
	go func() { done <- s.write(context.Background(), big) }()
	waitQueued(t, s, uint64(len(big)))
	pkt := protocol.AppendPacket(nil, protocol.Req, protocol.GrabJobUniq)
	for i := range 5 {
		go func() { done <- s.write(context.Background(), pkt) }()
		waitQueued(t, s, uint64(len(big)+(i+1)*len(pkt)))
	}
	// The peer goes away without reading; the blocked write fails.
	if tc, ok := peer.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	peer.Close()
	for range 6 {
		select {
		case err := <-done:
			if err == nil {
				t.Error("a write on a broken connection reported success")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a writer hangs after the connection broke")
		}
	}
	if err := s.write(context.Background(), pkt); err == nil {
		t.Error("a write after the break reported success")
	}
}

// A write too large for the kept buffer (maxSpare) must not leave that
// buffer shared between the bytes being written and the next ones
// queued: here p1 is queued behind a large write, and p2 is queued while
// p1 is being written; each reaches the peer intact.
func TestSessionBuffersNotShared(t *testing.T) {
	t.Parallel()
	s, _, peer := sessionPair(t)
	// Small socket buffers: a write of p1 blocks until the peer reads.
	for _, c := range []net.Conn{s.conn, peer} {
		tc := c.(*net.TCPConn)
		_ = tc.SetWriteBuffer(4096)
		_ = tc.SetReadBuffer(4096)
	}
	pkt := func(fill byte, n int) []byte {
		return protocol.AppendPacket(nil, protocol.Req, protocol.WorkData, []byte{'H', fill}, bytes.Repeat([]byte{fill}, n))
	}
	p0, big, p1, p2 := pkt('0', 48<<10), pkt('W', 256<<10), pkt('1', 40<<10), pkt('2', 40<<10)

	// The peer reads one packet per token.
	tokens := make(chan struct{}, 4)
	type got struct {
		body []byte
		err  error
	}
	read := make(chan got, 4)
	go func() {
		r := protocol.NewReader(peer, protocol.Limits{MaxPayload: 4 << 20})
		for range tokens {
			f, err := r.Next()
			var body []byte
			if err == nil {
				body = bytes.Clone(f.Packet.Args[1]) // the reader reuses its buffers
			}
			read <- got{body, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(tokens) })
	check := func(fill byte, n int) {
		t.Helper()
		g := <-read
		if g.err != nil {
			t.Fatalf("packet %c: %v", fill, g.err)
		}
		if body := g.body; !bytes.Equal(body, bytes.Repeat([]byte{fill}, n)) {
			t.Fatalf("packet %c: %d bytes, %d of them not %q: overwritten while it was written", fill, len(body), len(body)-bytes.Count(body, []byte{fill}), fill)
		}
	}

	// p0 alone: its buffer (48 KiB) is kept for the next bytes queued.
	tokens <- struct{}{}
	if err := s.write(context.Background(), p0); err != nil {
		t.Fatal(err)
	}
	check('0', 48<<10)

	// The large write blocks (the peer reads nothing), p1 is queued
	// behind it, into the kept buffer.
	errs := make(chan error, 3)
	go func() { errs <- s.write(context.Background(), big) }()
	waitQueued(t, s, uint64(len(p0)+len(big)))
	go func() { errs <- s.write(context.Background(), p1) }()
	waitQueued(t, s, uint64(len(p0)+len(big)+len(p1)))

	// The peer takes the large write; p1's write then blocks in turn,
	// and p2 is queued meanwhile.
	tokens <- struct{}{}
	check('W', 256<<10)
	go func() { errs <- s.write(context.Background(), p2) }()
	waitQueued(t, s, uint64(len(p0)+len(big)+len(p1)+len(p2)))

	tokens <- struct{}{}
	tokens <- struct{}{}
	check('1', 40<<10)
	check('2', 40<<10)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
