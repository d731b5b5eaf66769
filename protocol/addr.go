package protocol

import (
	"net"
	"strconv"
	"strings"
)

// DefaultPort is the Gearman port (IANA's "gearman", gearmand's default).
const DefaultPort = 4730

// ServerAddr returns the dial address of a job server given as a user
// writes it: "host:port" and "[v6]:port" are kept; a host without a
// port ("host", "10.0.0.1", "[::1]", or a bare IPv6 address "::1") gets
// DefaultPort. Surrounding spaces are dropped.
func ServerAddr(s string) string {
	s = strings.TrimSpace(s)
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	host := s
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, strconv.Itoa(DefaultPort))
}
