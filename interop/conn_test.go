package interop

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// wait bounds every read in the raw tests.
const wait = 10 * time.Second

// rawConn is a byte-level Gearman connection: it writes packets with
// protocol.AppendPacket and reads replies byte-exactly.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) send(typ protocol.Type, args ...string) {
	c.t.Helper()
	c.write(protocol.AppendPacketString(nil, protocol.Req, typ, args...))
}

// pkt is a packet read from the server, with its raw bytes.
type pkt struct {
	typ  protocol.Type
	args []string
	raw  []byte
}

func (p pkt) String() string { return fmt.Sprintf("%s %q", p.typ, p.args) }

// readPacket reads one binary packet; it fails the test on a text reply,
// a timeout or a closed connection.
func (c *rawConn) readPacket() pkt {
	c.t.Helper()
	p, err := c.tryPacket(wait)
	if err != nil {
		c.t.Fatalf("read packet: %v", err)
	}
	return p
}

func (c *rawConn) tryPacket(d time.Duration) (pkt, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	hdr := make([]byte, protocol.HeaderSize)
	if _, err := io.ReadFull(c.r, hdr); err != nil {
		return pkt{}, err
	}
	if string(hdr[:4]) != "\x00RES" {
		return pkt{}, fmt.Errorf("reply starts with %q, want \\0RES", hdr)
	}
	size := int(uint32(hdr[8])<<24 | uint32(hdr[9])<<16 | uint32(hdr[10])<<8 | uint32(hdr[11]))
	body := make([]byte, size)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pkt{}, err
	}
	raw := append(hdr, body...)
	_, f, ok, err := protocol.NewDecoder(protocol.Limits{MaxPayload: 1 << 30}).Next(raw)
	if err != nil || !ok {
		return pkt{}, fmt.Errorf("decode %q: ok %v err %v", raw, ok, err)
	}
	p := pkt{typ: f.Packet.Type, raw: raw}
	for _, a := range f.Packet.Args {
		p.args = append(p.args, string(a))
	}
	return p, nil
}

// expect reads one packet and checks its type and arguments exactly.
func (c *rawConn) expect(typ protocol.Type, args ...string) pkt {
	c.t.Helper()
	p := c.readPacket()
	if p.typ != typ || strings.Join(p.args, "\x00") != strings.Join(args, "\x00") || len(p.args) != len(args) {
		c.t.Fatalf("got %v (raw %q), want %s %q", p, p.raw, typ, args)
	}
	return p
}

// expectType reads one packet and checks its type only.
func (c *rawConn) expectType(typ protocol.Type) pkt {
	c.t.Helper()
	p := c.readPacket()
	if p.typ != typ {
		c.t.Fatalf("got %v (raw %q), want %s", p, p.raw, typ)
	}
	return p
}

// expectError reads an ERROR packet with the exact code and text.
func (c *rawConn) expectError(code, text string) {
	c.t.Helper()
	c.expect(protocol.Error, code, text)
}

// barrier sends ECHO_REQ and expects ECHO_RES as the next packet: nothing
// else was queued for this connection before it.
func (c *rawConn) barrier() {
	c.t.Helper()
	c.send(protocol.EchoReq, "barrier")
	c.expect(protocol.EchoRes, "barrier")
}

// readText reads n bytes of text reply.
func (c *rawConn) readN(n int) string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// line reads one text line with its terminator.
func (c *rawConn) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(wait))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: %v (got %q)", err, s)
	}
	return s
}

// list reads the lines of a list reply up to ".\n", which it checks.
func (c *rawConn) list() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == ".\n" {
			return out
		}
		if !strings.HasSuffix(l, "\n") || strings.HasSuffix(l, "\r\n") {
			c.t.Fatalf("list line %q: want \\n without \\r", l)
		}
		out = append(out, strings.TrimSuffix(l, "\n"))
	}
}

// admin sends a text command and returns the list reply.
func (c *rawConn) adminList(cmd string) []string {
	c.t.Helper()
	c.write([]byte(cmd + "\n"))
	return c.list()
}

// expectClosed checks the server closes the connection; packets it sends
// before closing are returned.
func (c *rawConn) expectClosed() []pkt {
	c.t.Helper()
	var got []pkt
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		p, err := c.tryPacket(time.Until(deadline))
		if err == nil {
			got = append(got, p)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		return got // EOF or reset: closed
	}
	c.t.Fatalf("connection still open after %v (packets before: %v)", wait, got)
	return nil
}

// names gives each test its own function names, so tests can share one
// server.
type names struct{ n atomic.Int64 }

func (n *names) fn(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano()%1e6, n.n.Add(1))
}

// statusOf returns the `status` line for fn, or "" when it is not listed.
func statusOf(t *testing.T, addr, fn string) string {
	t.Helper()
	for _, l := range dial(t, addr).adminList("status") {
		if strings.HasPrefix(l, fn+"\t") {
			return l
		}
	}
	return ""
}

// waitFor polls cond (an observation of another process) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a server that cannot signal us
	}
}
