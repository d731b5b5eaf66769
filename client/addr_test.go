package client_test

import (
	"slices"
	"testing"

	"github.com/gworkerd/gworkerd/client"
)

// Server addresses are written as users write them; each gets the
// Gearman port when it has none, IPv6 literals included.
func TestServerAddresses(t *testing.T) {
	t.Parallel()
	c, err := client.New([]string{"gear1", "10.0.0.1:4731", "[::1]", "::2", "[::3]:99"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []string{"gear1:4730", "10.0.0.1:4731", "[::1]:4730", "[::2]:4730", "[::3]:99"}
	if got := c.Servers(); !slices.Equal(got, want) {
		t.Errorf("Servers() = %q, want %q", got, want)
	}
}
