package testpeer

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestDeadAddrRefuses(t *testing.T) {
	addr := DeadAddr(t)
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("dial %s succeeded, want connection refused", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	// The port stays taken: nobody else can listen on it during the test.
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("listen on %s succeeded while DeadAddr holds it", addr)
	}
}
