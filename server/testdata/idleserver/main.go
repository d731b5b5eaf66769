// Command idleserver runs the server package on 127.0.0.1:0 for tests
// that need it in another process (many connections under -race). It
// prints the address, then serves until its standard input closes.
package main

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/gworkerd/gworkerd/server"
)

func main() {
	s, err := server.New(server.DefaultOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = s.Close()
	}()
	_ = s.Serve(ln)
}
