package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const ioTimeout = 10 * time.Second

// testServer is a Server listening on 127.0.0.1:0.
type testServer struct {
	*Server
	addr string
	done chan error
}

func startServer(t *testing.T, mod func(*Options)) *testServer {
	t.Helper()
	o := DefaultOptions()
	o.JobHandlePrefix = "H:test"
	o.Version = "1.1.20+ds"
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{Server: s, done: make(chan error, 1)}
	ts.addr = ln.Addr().String()
	go func() { ts.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// tconn is a raw test client: it writes packets and reads exact bytes.
type tconn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) dial(t *testing.T) *tconn {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &tconn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *tconn) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *tconn) send(typ protocol.Type, args ...string) {
	c.t.Helper()
	c.write(protocol.AppendPacketString(nil, protocol.Req, typ, args...))
}

func (c *tconn) sendLine(line string) {
	c.t.Helper()
	c.write([]byte(line))
}

type rpacket struct {
	magic protocol.Magic
	typ   protocol.Type
	body  []byte
}

func (p rpacket) args() []string {
	n := p.typ.Args()
	if n == 0 {
		return nil
	}
	parts := strings.SplitN(string(p.body), "\x00", n)
	return parts
}

func (p rpacket) String() string {
	return p.typ.String() + " " + strings.ReplaceAll(string(p.body), "\x00", `\0`)
}

func (c *tconn) readPacket() (rpacket, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr [12]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return rpacket{}, err
	}
	p := rpacket{
		magic: protocol.Magic(binary.BigEndian.Uint32(hdr[0:])),
		typ:   protocol.Type(binary.BigEndian.Uint32(hdr[4:])),
	}
	p.body = make([]byte, binary.BigEndian.Uint32(hdr[8:]))
	if _, err := io.ReadFull(c.br, p.body); err != nil {
		return rpacket{}, err
	}
	return p, nil
}

func (c *tconn) next() rpacket {
	c.t.Helper()
	p, err := c.readPacket()
	if err != nil {
		c.t.Fatalf("read packet: %v", err)
	}
	if p.magic != protocol.Res {
		c.t.Fatalf("magic %v, want RES", p.magic)
	}
	return p
}

// expect reads one packet and checks its type and body (args joined by NUL).
func (c *tconn) expect(typ protocol.Type, args ...string) rpacket {
	c.t.Helper()
	p := c.next()
	want := strings.Join(args, "\x00")
	if p.typ != typ || string(p.body) != want {
		c.t.Fatalf("got %v, want %v %q", p, typ, strings.ReplaceAll(want, "\x00", `\0`))
	}
	return p
}

func (c *tconn) expectError(code, text string) {
	c.t.Helper()
	c.expect(protocol.Error, code, text)
}

// expectType reads one packet of type typ and returns its arguments.
func (c *tconn) expectType(typ protocol.Type) []string {
	c.t.Helper()
	p := c.next()
	if p.typ != typ {
		c.t.Fatalf("got %v, want %v", p, typ)
	}
	return p.args()
}

// submit sends a SUBMIT_* and returns the handle of JOB_CREATED.
func (c *tconn) submit(typ protocol.Type, fn, unique, data string) string {
	c.t.Helper()
	c.send(typ, fn, unique, data)
	return c.expectType(protocol.JobCreated)[0]
}

// sync proves that the server has handled everything sent before: it
// sends an ECHO and expects its answer next.
func (c *tconn) sync() {
	c.t.Helper()
	c.send(protocol.EchoReq, "sync")
	c.expect(protocol.EchoRes, "sync")
}

// expectNothing checks that nothing arrives before an ECHO round trip.
func (c *tconn) expectNothing() { c.t.Helper(); c.sync() }

// readLine reads one raw text line including its terminator.
func (c *tconn) readLine() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: %v (got %q)", err, l)
	}
	return l
}

// admin sends a command line and returns the raw reply: one line, or a
// list up to and including ".\n".
func (c *tconn) admin(line string) string {
	c.t.Helper()
	c.sendLine(line + "\n")
	return c.readReply()
}

func (c *tconn) readReply() string {
	c.t.Helper()
	first := c.readLine()
	if strings.HasPrefix(first, "OK") || strings.HasPrefix(first, "ERR") || first == ".\n" {
		return first
	}
	var b strings.Builder
	b.WriteString(first)
	for {
		l := c.readLine()
		b.WriteString(l)
		if l == ".\n" {
			return b.String()
		}
	}
}

// expectClosed checks that the server closes the connection.
func (c *tconn) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(c.br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection not closed (read %q)", b)
		}
	}
}

// worker registers functions and returns the connection.
func (ts *testServer) worker(t *testing.T, fns ...string) *tconn {
	t.Helper()
	w := ts.dial(t)
	for _, f := range fns {
		w.send(protocol.CanDo, f)
	}
	w.sync()
	return w
}

// grab sends GRAB_JOB and returns handle, function and data.
func (c *tconn) grab() (handle, fn, data string) {
	c.t.Helper()
	c.send(protocol.GrabJob)
	a := c.expectType(protocol.JobAssign)
	return a[0], a[1], a[2]
}

func (c *tconn) grabNone() {
	c.t.Helper()
	c.send(protocol.GrabJob)
	c.expect(protocol.NoJob)
}

// waitFor polls cond until it holds (state changes driven by other
// connections settle asynchronously).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
