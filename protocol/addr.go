package protocol

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultPort is the Gearman port (IANA's "gearman", gearmand's default).
const DefaultPort = 4730

// ErrBadAddr is wrapped by ParseServerAddr's errors.
var ErrBadAddr = errors.New("bad server address")

// ParseServerAddr returns the dial address of a job server given as a
// user writes it: "host:port" and "[v6]:port" keep their port; a host
// without one ("host", "10.0.0.1", "[::1]", or a bare IPv6 address
// "::1", which cannot carry a port) gets DefaultPort. Surrounding spaces
// are dropped and the port is written in decimal without leading zeros;
// an empty host is the local system, as for net.Dial. The error wraps
// ErrBadAddr for an empty address, a port that is not a number from 1 to
// 65535, and a host holding brackets, blanks or control characters.
//
// Every normaliser of server addresses (client, worker, supervise, the
// configs and the command-line tools) is this one.
func ParseServerAddr(s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", fmt.Errorf("%w: empty", ErrBadAddr)
	}
	host, port, err := net.SplitHostPort(in)
	if err != nil { // no port
		host, port = in, strconv.Itoa(DefaultPort)
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
	}
	if i := strings.IndexFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '[' || r == ']' }); i >= 0 {
		return "", fmt.Errorf("%w: %q: host %q holds %q", ErrBadAddr, in, host, host[i:i+1])
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%w: %q: port %q is not a number from 1 to 65535", ErrBadAddr, in, port)
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10)), nil
}

// ServerAddr is ParseServerAddr for an address known to be good (a
// program's default, an address read back from a Client): a bad one is
// returned trimmed, for the dial to report.
func ServerAddr(s string) string {
	a, err := ParseServerAddr(s)
	if err != nil {
		return strings.TrimSpace(s)
	}
	return a
}
