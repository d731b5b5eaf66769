// Package interop runs real Gearman peers (the gearman and gearadmin CLIs,
// PHP's gearman extension, Perl's Gearman::Client and Gearman::Worker, and
// raw protocol packets) against both the C gearmand 1.1.20 and gserverd.
//
// Every test runs against both targets, so a test that passes on gearmand
// proves it encodes gearmand's behaviour. Checks where docs/PROTOCOL.md section 0
// deliberately differs from gearmand 1.1.20 run on gserverd only and say so
// in their name (".../gserverd-only/..."). Each test names the docs/PROTOCOL.md
// section 7 checklist item it covers.
//
// It is a test-only package.
package interop

import (
	"flag"
	"os"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// The checks wait on sockets and peer processes, not on the CPU: run
	// more of them at once than -parallel's default of GOMAXPROCS.
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("8")
	}
	// Build gserverd once for all tests unless the Makefile already did.
	return testpeer.Main(m, "gserverd")
}

// target is a job server the suite runs against.
type target struct {
	name  string
	start func(t testing.TB, args ...string) *testpeer.Process
}

func (tg target) gserverd() bool { return tg.name == "gserverd" }

func targets() []target {
	return []target{
		{"gearmand", testpeer.StartGearmand},
		{"gserverd", testpeer.StartGserverd},
	}
}
