package testpeer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Main is a TestMain body: it builds the named commands of ./cmd once for
// the whole test binary (unless GWORKERD_BIN already points at a build,
// as in make test) and points GWORKERD_BIN at them, runs the tests, and
// when they pass checks that no goroutine leaked. It returns the exit
// code. A build failure fails the run before any test, with the compiler's
// output.
func Main(m *testing.M, commands ...string) int {
	if len(commands) > 0 && os.Getenv("GWORKERD_BIN") == "" {
		dir, err := os.MkdirTemp("", "gworkerd-test-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "testpeer:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := build(dir, commands); err != nil {
			fmt.Fprintln(os.Stderr, "testpeer:", err)
			return 1
		}
		os.Setenv("GWORKERD_BIN", dir)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
	}
	return code
}

// build builds ./cmd/<name> for each name into dir.
func build(dir string, commands []string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range commands {
		args = append(args, "./cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return nil
}
