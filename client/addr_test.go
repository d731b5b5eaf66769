package client_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

// Server addresses are written as users write them; each gets the
// Gearman port when it has none, IPv6 literals included.
func TestServerAddresses(t *testing.T) {
	t.Parallel()
	c, err := client.New([]string{"gear1", "10.0.0.1:4731", "[::1]", "::2", "[::3]:99", " gear1:4730 "})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []string{"gear1:4730", "10.0.0.1:4731", "[::1]:4730", "[::2]:4730", "[::3]:99"}
	if got := c.Servers(); !slices.Equal(got, want) {
		t.Errorf("Servers() = %q, want %q", got, want)
	}
}

// An address no dial could use is refused by New, naming it.
func TestServerAddressesRefused(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "gear1:", "gear1:0", "gear1:65536", "[[::1]]", "gear 1"} {
		c, err := client.New([]string{"gear1", bad})
		if !errors.Is(err, protocol.ErrBadAddr) {
			t.Errorf("New with %q: %v, want an error wrapping protocol.ErrBadAddr", bad, err)
		}
		if c != nil {
			c.Close()
		}
	}
}
