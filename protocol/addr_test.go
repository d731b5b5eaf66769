package protocol

import (
	"net"
	"strings"
	"testing"
)

func TestServerAddr(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"gear1", "gear1:4730"},
		{"gear1:4731", "gear1:4731"},
		{"10.0.0.1", "10.0.0.1:4730"},
		{"10.0.0.1:99", "10.0.0.1:99"},
		{"[::1]", "[::1]:4730"},
		{"::1", "[::1]:4730"},
		{"[::1]:4731", "[::1]:4731"},
		{"fe80::1%eth0", "[fe80::1%eth0]:4730"},
		{" gear1 ", "gear1:4730"},
	}
	for _, tc := range tests {
		if got := ServerAddr(tc.in); got != tc.want {
			t.Errorf("ServerAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// ServerAddr always returns an address net.SplitHostPort accepts, and
// keeps one that already has a port.
func FuzzServerAddr(f *testing.F) {
	for _, s := range []string{"gear1", "[::1]", "::1", "a:1", "[", "]", "[[::1]]", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, in := ServerAddr(s), strings.TrimSpace(s)
		if _, _, err := net.SplitHostPort(in); err == nil && got != in {
			t.Fatalf("ServerAddr(%q) = %q: changed an address with a port", s, got)
		}
		if _, _, err := net.SplitHostPort(got); err != nil && !hasBracketOrPercent(s) {
			t.Fatalf("ServerAddr(%q) = %q: %v", s, got, err)
		}
	})
}

// hasBracketOrPercent: inputs no address fix can save ("[", "a]b").
func hasBracketOrPercent(s string) bool {
	for _, r := range s {
		if r == '[' || r == ']' {
			return true
		}
	}
	return false
}
