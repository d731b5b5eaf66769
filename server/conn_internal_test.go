package server

import (
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// TestKickedWritesKeepOrder sends packets for a connection from outside
// its reader, as the server does with WORK_COMPLETE and NOOP, while the
// peer does not read: the first ones go straight to the socket, the rest
// is left to the writer goroutine, partly written packets included. The
// peer then reads every packet whole and in order.
func TestKickedWritesKeepOrder(t *testing.T) {
	t.Parallel()
	s, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	c := newConn(s, nc, 1)
	if c.raw == nil {
		t.Fatal("a TCP connection has no raw socket: every kick would wake a goroutine")
	}
	const packets = 300
	body := bytes.Repeat([]byte("x"), 7001) // not a multiple of any buffer size
	for i := range packets {
		c.sendPacket(protocol.WorkData, true, []byte(strconv.Itoa(i)), body)
	}
	_ = peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := protocol.NewReader(peer, protocol.Limits{})
	for i := range packets {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if f.Packet.Type != protocol.WorkData || string(f.Packet.Arg(0)) != strconv.Itoa(i) || !bytes.Equal(f.Packet.Arg(1), body) {
			t.Fatalf("packet %d: %v %q (%d bytes), want WORK_DATA %d", i, f.Packet.Type, f.Packet.Arg(0), len(f.Packet.Arg(1)), i)
		}
	}
	s.connWG.Wait() // the writer goroutine, if one ran, has finished
}
