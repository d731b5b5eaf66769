package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
)

// probe sends ECHO_REQ on c and reports whether it was answered; an
// error reading the answer means the server closed c.
func probe(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(protocol.AppendPacketString(nil, protocol.Req, protocol.EchoReq, "ping")); err != nil {
		return false
	}
	f, err := protocol.NewReader(c, protocol.Limits{}).Next()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close: %v", err)
		}
		return false
	}
	if f.Text || f.Packet.Type != protocol.EchoRes {
		t.Fatalf("got %v, want ECHO_RES", f.Packet.Type)
	}
	return true
}

func dialOpen(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestBinaryMaxConnections: beyond --max-connections only loopback peers
// get in, LoopbackReserve of them; beyond that every connection is closed
// at once; closed connections free their slots.
func TestBinaryMaxConnections(t *testing.T) {
	t.Parallel()
	const max = 20
	p := logOnFailure(t, startGserverd(t, "--max-connections", "20"))
	var conns []net.Conn
	for i := range max {
		c := dialOpen(t, p.Addr)
		if !probe(t, c) {
			t.Fatalf("connection %d of %d refused", i+1, max)
		}
		conns = append(conns, c)
	}

	// The server is full: a loopback admin gets a reserved slot.
	admin := dialOpen(t, p.Addr)
	_ = admin.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(admin, "version\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(admin).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("admin version when full = %q, %v; want OK <version>", line, err)
	}
	conns = append(conns, admin)

	// Test connections are loopback too: the rest of the reserve, then
	// refusals.
	var got []bool
	for range 2 * max {
		c := dialOpen(t, p.Addr)
		got = append(got, probe(t, c))
		conns = append(conns, c)
	}
	for i, ok := range got {
		if want := i < server.LoopbackReserve-1; ok != want {
			t.Fatalf("connection %d beyond the limit and the admin: answered %v, want %v (all: %v)", i+1, ok, want, got)
		}
	}
	if !strings.Contains(p.Output(), "refusing connections: max connections reached") {
		t.Errorf("no log line about refused connections")
	}

	for _, c := range conns {
		c.Close()
	}
	eventually(t, "a new connection is served once the others are closed", func() bool {
		c := dialOpen(t, p.Addr)
		defer c.Close()
		return probe(t, c)
	})
	for range max {
		if !probe(t, dialOpen(t, p.Addr)) {
			t.Fatalf("a connection below the limit refused after the others closed")
		}
	}
}

// TestBinaryPacketTimeout: a connection that began a packet and stalls is
// closed after --packet-timeout; an idle connection stays.
func TestBinaryPacketTimeout(t *testing.T) {
	t.Parallel()
	p := logOnFailure(t, startGserverd(t, "--packet-timeout", "1s"))
	idle := dialOpen(t, p.Addr)
	half := dialOpen(t, p.Addr)
	start := time.Now()
	if _, err := half.Write([]byte("\x00REQ\x00")); err != nil { // 5 of 12 header bytes
		t.Fatal(err)
	}
	_ = half.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := half.Read(make([]byte, 64))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("half-header connection: read %d bytes, %v; want EOF (closed by the server)", n, err)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("half-header connection closed after %v, before the 1s timeout", el)
	}
	// The idle connection has now been idle longer than the timeout.
	if !probe(t, idle) {
		t.Fatalf("idle connection closed by the packet timeout")
	}

	// A half admin line is bounded too.
	text := dialOpen(t, p.Addr)
	if _, err := io.WriteString(text, "vers"); err != nil {
		t.Fatal(err)
	}
	_ = text.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := text.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("half admin line: read %d bytes, %v; want EOF", n, err)
	}
	// The log reaches us through a pipe: wait for it.
	eventually(t, "the log line about the packet timeout", func() bool {
		return strings.Contains(p.Output(), "packet not completed in time")
	})
}
