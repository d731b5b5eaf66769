package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/internal/version"
)

// TestMain builds gserverd once for the tests that run the binary (unless
// GWORKERD_BIN points at a build, as in make test) and checks for leaked
// goroutines.
func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd")) }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestRunActions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     string // substring
		stderr     string // exact
		stdoutNone bool
	}{
		{name: "version", args: []string{"-V"}, stdout: "gserverd " + version.String() + "\n"},
		{name: "help", args: []string{"-h"}, stdout: "-j, --job-retries"},
		{name: "help wins over bad values", args: []string{"-j", "900", "--help"}, stdout: "Usage: gserverd"},
		{name: "check-args ok", args: []string{"--check-args", "-p", "4731"}, stdoutNone: true},
		{name: "check-args bad", args: []string{"--check-args", "-w", "-1"}, code: 1, stderr: "gserverd: --worker-wakeup: want at least 0, got -1\n", stdoutNone: true},
		{name: "bad env", args: []string{"--check-args"}, env: map[string]string{"GSERVERD_KEEPALIVE_COUNT": "0"}, code: 1,
			stderr: "gserverd: GSERVERD_KEEPALIVE_COUNT (environment): keepalive_count: want -1 (system default) or a positive number, got 0\n", stdoutNone: true},
		{name: "-vv stacks", args: []string{"--check-args", "-vv"}, stdoutNone: true},
		{name: "ignored gearmand option warns", args: []string{"--check-args", "--coredump"},
			stderr: "gserverd: warning: --coredump: accepted and ignored: a Go program dumps core only with GOTRACEBACK=crash (and ulimit -c)\n", stdoutNone: true},
		{name: "argument", args: []string{"start"}, code: 1, stderr: "gserverd: unexpected argument \"start\" (see gserverd --help)\n", stdoutNone: true},
		{name: "missing value", args: []string{"-p"}, code: 1, stderr: "gserverd: flag needs an argument: 'p' in -p (see gserverd --help)\n", stdoutNone: true},
		{name: "-v after -- is an argument", args: []string{"--", "-v"}, code: 1, stderr: "gserverd: unexpected argument \"-v\" (see gserverd --help)\n", stdoutNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(tt.args, envOf(tt.env), &out, &errOut)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut.String())
			}
			if tt.stdoutNone && out.Len() != 0 {
				t.Errorf("stdout %q, want none", out.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.stdout)
			}
			if errOut.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", errOut.String(), tt.stderr)
			}
		})
	}
}
