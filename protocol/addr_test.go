package protocol

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestParseServerAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string // want "" means an error
	}{
		{"host", "gear1", "gear1:4730"},
		{"host:port", "gear1:4731", "gear1:4731"},
		{"IPv4", "10.0.0.1", "10.0.0.1:4730"},
		{"IPv4:port", "10.0.0.1:99", "10.0.0.1:99"},
		{"[v6]", "[::1]", "[::1]:4730"},
		{"[v6]:port", "[::1]:4731", "[::1]:4731"},
		{"bare v6", "::1", "[::1]:4730"},
		{"bare v6, long", "2001:db8::8a2e:370:7334", "[2001:db8::8a2e:370:7334]:4730"},
		{"bare v6 with zone", "fe80::1%eth0", "[fe80::1%eth0]:4730"},
		{"[v6 with zone]:port", "[fe80::1%eth0]:5", "[fe80::1%eth0]:5"},
		{"spaces around", " gear1 \t", "gear1:4730"},
		{"leading zeros in the port", "gear1:04731", "gear1:4731"},
		{"highest port", "gear1:65535", "gear1:65535"},
		{"empty host is the local system", ":4731", ":4731"},
		{"empty", "", ""},
		{"blank", "  ", ""},
		{"empty port", "gear1:", ""},
		{"port 0", "gear1:0", ""},
		{"port too high", "gear1:65536", ""},
		{"named port", "gear1:gearman", ""},
		{"negative port", "gear1:-1", ""},
		{"signed port", "gear1:+1", ""},
		{"bad port on v6", "[::1]:x", ""},
		{"doubled brackets", "[[::1]]", ""},
		{"open bracket", "[::1", ""},
		{"stray bracket", "gear]1", ""},
		{"blank inside", "gear 1", ""},
		{"control character", "gear\x001", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseServerAddr(tc.in)
			if tc.want == "" {
				if err == nil || !errors.Is(err, ErrBadAddr) {
					t.Errorf("ParseServerAddr(%q) = %q, %v; want an ErrBadAddr", tc.in, got, err)
				}
				if sa := ServerAddr(tc.in); sa != strings.TrimSpace(tc.in) {
					t.Errorf("ServerAddr(%q) = %q, want the input trimmed", tc.in, sa)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseServerAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			if sa := ServerAddr(tc.in); sa != tc.want {
				t.Errorf("ServerAddr(%q) = %q, want %q", tc.in, sa, tc.want)
			}
		})
	}
}

// An address ParseServerAddr accepts comes out as one net.SplitHostPort
// splits into a host without brackets and a port from 1 to 65535, that
// ParseServerAddr keeps as it is, and that ServerAddr gives too; an
// input already in that form is kept; a rejected one wraps ErrBadAddr.
func FuzzParseServerAddr(f *testing.F) {
	for _, s := range []string{"gear1", "gear1:4731", "[::1]", "::1", "[::1]:1", "a:1", "fe80::1%eth0", ":0",
		"[", "]", "[[::1]]", "", " ", "a:", "a:065535", "a:99999", "[]", "[]:1", "1::1:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseServerAddr(s)
		if err != nil {
			if !errors.Is(err, ErrBadAddr) || got != "" {
				t.Fatalf("ParseServerAddr(%q) = %q, %v: error without ErrBadAddr", s, got, err)
			}
			if sa := ServerAddr(s); sa != strings.TrimSpace(s) {
				t.Fatalf("ServerAddr(%q) = %q for a rejected address", s, sa)
			}
			return
		}
		host, port, serr := net.SplitHostPort(got)
		if serr != nil {
			t.Fatalf("ParseServerAddr(%q) = %q: %v", s, got, serr)
		}
		if p, perr := strconv.Atoi(port); perr != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
			t.Fatalf("ParseServerAddr(%q) = %q: port %q", s, got, port)
		}
		if strings.ContainsAny(host, "[] ") {
			t.Fatalf("ParseServerAddr(%q) = %q: host %q", s, got, host)
		}
		if again, err := ParseServerAddr(got); err != nil || again != got {
			t.Fatalf("ParseServerAddr(%q) = %q, %v; it gave that for %q", got, again, err, s)
		}
		if sa := ServerAddr(s); sa != got {
			t.Fatalf("ServerAddr(%q) = %q, ParseServerAddr gives %q", s, sa, got)
		}
		if h, p, err := net.SplitHostPort(strings.TrimSpace(s)); err == nil && net.JoinHostPort(h, p) == strings.TrimSpace(s) {
			if n, _ := strconv.Atoi(p); strconv.Itoa(n) == p && got != strings.TrimSpace(s) {
				t.Fatalf("ParseServerAddr(%q) = %q: changed an address in dial form", s, got)
			}
		}
	})
}
