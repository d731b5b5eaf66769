package rawio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/rawio"
)

// pair returns the two ends of a kind of stream: what is written to w is
// read from r.
type pair func(t *testing.T) (r, w any, closeR, closeW func())

func tcpPair(t *testing.T) (any, any, func(), func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w, func() { r.Close() }, func() { w.Close() }
}

func osPipe(t *testing.T) (any, any, func(), func()) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w, func() { r.Close() }, func() { w.Close() }
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]pair{"tcp": tcpPair, "pipe": osPipe} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, w, _, closeW := mk(t)
			rc, ok := rawio.New(r)
			if !ok {
				t.Fatal("New(reader): not ok")
			}
			wc, ok := rawio.New(w)
			if !ok {
				t.Fatal("New(writer): not ok")
			}
			// Larger than a pipe's or socket's buffer: the writer waits
			// for the poller midway.
			want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			errc := make(chan error, 1)
			go func() {
				n, err := wc.Write(want)
				if err == nil && n != len(want) {
					err = io.ErrShortWrite
				}
				closeW()
				errc <- err
			}()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("Write: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
			}
			if n, err := rc.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Fatalf("Read after the end: got %d, %v; want 0, io.EOF", n, err)
			}
		})
	}
}

func TestDeadlineAndClose(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]pair{"tcp": tcpPair, "pipe": osPipe} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, _, closeR, _ := mk(t)
			rc, ok := rawio.New(r)
			if !ok {
				t.Fatal("New: not ok")
			}
			type deadliner interface{ SetReadDeadline(time.Time) error }
			if err := r.(deadliner).SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if _, err := rc.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read past the deadline: got %v, want os.ErrDeadlineExceeded", err)
			}
			if err := r.(deadliner).SetReadDeadline(time.Time{}); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := rc.Read(make([]byte, 8))
				errc <- err
			}()
			time.AfterFunc(10*time.Millisecond, closeR)
			if err := <-errc; !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Read on a closed descriptor: got %v, want ErrClosed", err)
			}
		})
	}
}

func TestNewFallsBack(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := rawio.New(a); ok {
		t.Error("New(net.Pipe end): got ok, want false (no descriptor)")
	}
	f, err := os.Open(os.DevNull) // a regular file: blocking mode
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := rawio.New(f); ok {
		t.Error("New(blocking file): got ok, want false")
	}
}
