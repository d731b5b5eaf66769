package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd", "gclient")) }

// binary returns the path of one of the project's binaries.
func binary(t testing.TB, name string) string { return testpeer.Binary(t, name) }

var targets = []struct {
	name  string
	start func(t testing.TB, args ...string) *testpeer.Process
}{
	{"gearmand", testpeer.StartGearmand},
	{"gserverd", func(t testing.TB, args ...string) *testpeer.Process {
		binary(t, "gserverd")
		return testpeer.StartGserverd(t, args...)
	}},
}

type result struct {
	code           int
	stdout, stderr string
}

// gclient runs the command line in-process.
func gclient(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, os.LookupEnv, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func startWorker(t *testing.T, addr, fn string, cmd ...string) {
	t.Helper()
	bin := testpeer.Require(t, "gearman")
	h, p, _ := net.SplitHostPort(addr)
	testpeer.Start(t, exec.Command(bin, append([]string{"-w", "-h", h, "-p", p, "-f", fn, "--"}, cmd...)...))
	waitWorker(t, addr, fn)
}

func startPHPWorker(t *testing.T, addr, prefix string) {
	t.Helper()
	php := testpeer.RequirePHPGearman(t)
	h, p, _ := net.SplitHostPort(addr)
	testpeer.Start(t, exec.Command(php, filepath.Join("..", "..", "client", "testdata", "worker.php"), h, p, prefix))
	waitWorker(t, addr, prefix+".echo")
}

func waitWorker(t *testing.T, addr, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := gclient(t, "", "--servers", addr, "admin", "status", "--json")
		var st []struct {
			Function string `json:"function"`
			Workers  int    `json:"workers"`
		}
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil {
			for _, s := range st {
				if s.Function == fn && s.Workers > 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no worker for %s after 10s", fn)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's status
	}
}

var handleRE = regexp.MustCompile(`^[^\s]+:\d+\n$`)
