package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// conn is one raw Gearman connection: gchaos speaks the protocol
// directly so that what it counts is what the server sent.
type conn struct {
	nc  net.Conn
	r   *protocol.Reader
	out []byte
}

func dial(ctx context.Context, addr string) (*conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gchaos: dial %s: %w", addr, err)
	}
	return &conn{nc: nc, r: protocol.NewReader(nc, protocol.Limits{}), out: make([]byte, 0, 64<<10)}, nil
}

func (c *conn) add(t protocol.Type, args ...string) {
	c.out = protocol.AppendPacketString(c.out, protocol.Req, t, args...)
}

func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		return fmt.Errorf("gchaos: write: %w", err)
	}
	return nil
}

func (c *conn) send(t protocol.Type, args ...string) error {
	c.add(t, args...)
	return c.flush()
}

func (c *conn) close() { _ = c.nc.Close() }

// admin sends an admin command and returns its reply: the lines up to
// "." for a listing (status, workers), else the one line.
func (c *conn) admin(cmd string, listing bool) ([]string, error) {
	if _, err := c.nc.Write([]byte(cmd + "\n")); err != nil {
		return nil, fmt.Errorf("gchaos: admin %s: %w", cmd, err)
	}
	var lines []string
	for {
		f, err := c.r.Next()
		if err != nil {
			return nil, fmt.Errorf("gchaos: admin %s: %w", cmd, err)
		}
		if !f.Text {
			continue // a packet for another purpose of this connection
		}
		line := string(f.Line)
		if !listing {
			return []string{line}, nil
		}
		if line == "." {
			return lines, nil
		}
		lines = append(lines, line)
	}
}

// queued returns the total of fn's jobs in the admin status (queued and
// running), 0 when the server does not list fn.
func (c *conn) queued(fn string) (int, error) {
	lines, err := c.admin("status", true)
	if err != nil {
		return 0, err
	}
	st, err := protocol.ParseStatus(lines)
	if err != nil {
		return 0, fmt.Errorf("gchaos: status: %w", err)
	}
	for _, f := range st {
		if f.Function == fn {
			return f.Total, nil
		}
	}
	return 0, nil
}

// queuedAt dials addr for one status reading.
func queuedAt(ctx context.Context, addr, fn string) (int, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	return c.queued(fn)
}

// errCode returns an ERROR packet's code, or a description of another
// packet.
func errCode(p *protocol.Packet) string {
	if p.Type == protocol.Error {
		return protocol.ParseError(p).Code
	}
	return strings.ToUpper(p.Type.String())
}
