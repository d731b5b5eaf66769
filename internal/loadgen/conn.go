package loadgen

import (
	"context"
	"fmt"
	"net"

	"github.com/gworkerd/gworkerd/protocol"
)

// conn is one Gearman connection of the load generator. It is used by one
// goroutine at a time, except that Close may be called from anywhere to
// unblock it.
type conn struct {
	nc  net.Conn
	r   *protocol.Reader
	out []byte // encode buffer, reused between writes
}

func dial(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &conn{nc: nc, r: protocol.NewReader(nc, protocol.Limits{}), out: make([]byte, 0, 64<<10)}, nil
}

// add appends a request packet to the pending output.
func (c *conn) add(t protocol.Type, args ...string) {
	c.out = protocol.AppendPacketString(c.out, protocol.Req, t, args...)
}

// flush writes the pending output.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		return fmt.Errorf("loadgen: write: %w", err)
	}
	return nil
}

// send writes one request packet now.
func (c *conn) send(t protocol.Type, args ...string) error {
	c.add(t, args...)
	return c.flush()
}

// next reads the next binary packet. An ERROR packet is returned as a
// *protocol.ErrorPacket; a text line is an error too (we never send admin
// commands on these connections). The packet's bytes are valid until the
// next call.
func (c *conn) next() (protocol.Packet, error) {
	f, err := c.r.Next()
	if err != nil {
		return protocol.Packet{}, fmt.Errorf("loadgen: read: %w", err)
	}
	if f.Text {
		return protocol.Packet{}, fmt.Errorf("loadgen: unexpected text line %q", f.Line)
	}
	if f.Packet.Type == protocol.Error {
		return protocol.Packet{}, fmt.Errorf("loadgen: server error: %w", protocol.ParseError(&f.Packet))
	}
	return f.Packet, nil
}

// echo sends ECHO_REQ and waits for its ECHO_RES, skipping nothing: it is
// used on idle connections to check the server answers.
func (c *conn) echo() error {
	if err := c.send(protocol.EchoReq, "ping"); err != nil {
		return err
	}
	p, err := c.next()
	if err != nil {
		return err
	}
	if p.Type != protocol.EchoRes {
		return fmt.Errorf("loadgen: got %v, want ECHO_RES", p.Type)
	}
	return nil
}

func (c *conn) close() error { return c.nc.Close() }
