package tcpproxy_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
)

// TestStall checks the proxy holds bytes while stalled and forwards
// them on resume.
func TestStall(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}()
	p, err := tcpproxy.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip := func(msg string, bound time.Duration) error {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(bound))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			t.Errorf("echo through the proxy: got %q, want %q", buf, msg)
		}
		return nil
	}
	if err := roundTrip("before", 30*time.Second); err != nil {
		t.Fatalf("before the stall: %v", err)
	}
	p.Stall()
	var ne net.Error
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read while stalled: %d bytes, %v, want a timeout", n, err)
	}
	if h := p.Held(); h != 1 {
		t.Errorf("Held() = %d while the echo is held, want 1", h)
	}
	p.Resume()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after resume: got %q, %v, want the held bytes", buf, err)
	}
	_ = c.Close()
	p.Close()
	_ = ln.Close()
	<-done
}

// TestCut: a cut closes the open connections and refuses new ones until
// Restore.
func TestCut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := tcpproxy.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	echo := func() error {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	open, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	_ = open.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(open, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if n, err := open.Read(make([]byte, 1)); err == nil {
		t.Fatalf("an open connection after the cut read %d bytes, want it closed", n)
	}
	if err := echo(); err == nil {
		t.Fatal("a new connection was served while cut")
	}
	p.Restore()
	if err := echo(); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
}

// TestStallOn: StallOn holds the connection that sends the pattern (from
// that chunk on) while the other connections, and new ones, carry on;
// Resume forwards what was held.
func TestStallOn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := tcpproxy.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	echo := func(c net.Conn, msg string) error {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			t.Errorf("echo: got %q, want %q", buf, msg)
		}
		return nil
	}
	a, b := dial(), dial()
	if err := echo(a, "before"); err != nil {
		t.Fatal(err)
	}
	p.StallOn([]byte("DELETE"))
	if err := echo(b, "insert"); err != nil {
		t.Fatalf("a chunk without the pattern: %v", err)
	}
	if _, err := a.Write([]byte("a DELETE")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Held() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Held() = %d 30s after the pattern was sent, want 1", p.Held())
		}
		time.Sleep(time.Millisecond) // poll the condition, bounded
	}
	// The other connection, a new one, and the pattern again (StallOn is
	// one-shot) all pass.
	if err := echo(b, "b DELETE"); err != nil {
		t.Fatalf("another open connection while one is stalled: %v", err)
	}
	if err := echo(dial(), "new"); err != nil {
		t.Fatalf("a new connection while one is stalled: %v", err)
	}
	_ = a.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if n, err := a.Read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read on the stalled connection: %d bytes, %v, want a timeout", n, err)
	}
	p.Resume()
	_ = a.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 8)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "a DELETE" {
		t.Fatalf("after Resume: got %q, %v, want the held bytes", buf, err)
	}
}

// TestListen: Listen serves on the address it is given (here another
// loopback address than New's), on a port the kernel chose.
func TestListen(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}()
	p, err := tcpproxy.Listen("127.0.0.2:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	host, port, err := net.SplitHostPort(p.Addr())
	if err != nil || host != "127.0.0.2" || port == "0" {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.2 and the port the kernel chose", p.Addr(), err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo through the proxy: got %q, %v, want %q", buf, err, "hi")
	}
	_ = c.Close()
	p.Close()
	<-done
}
