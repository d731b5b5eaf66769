package client_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd")) }

func startGserverd(t testing.TB, args ...string) *testpeer.Process {
	t.Helper()
	return testpeer.StartGserverd(t, args...)
}

// target is a job server the interop tests run against.
type target struct {
	name  string
	start func(t testing.TB, args ...string) *testpeer.Process
}

var targets = []target{
	{"gearmand", testpeer.StartGearmand},
	{"gserverd", startGserverd},
}

// forTargets runs f once per server implementation, each on a fresh server.
func forTargets(t *testing.T, f func(t *testing.T, srv *testpeer.Process)) {
	t.Helper()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			f(t, tg.start(t))
		})
	}
}

func newClient(t testing.TB, addrs ...string) *client.Client {
	t.Helper()
	c, err := client.New(addrs, client.WithDialTimeout(time.Second), client.WithBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var fnSeq atomic.Int64

// fname returns a function name unique within the test binary.
func fname(t testing.TB) string {
	r := strings.NewReplacer("/", "_", " ", "_")
	return r.Replace(t.Name()) + "_" + strconv.Itoa(int(fnSeq.Add(1)))
}

func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// startGearmanWorker runs `gearman -w -f fn -- cmd...` against addr and
// waits until the server lists it.
func startGearmanWorker(t testing.TB, addr, fn string, cmd ...string) *testpeer.Process {
	t.Helper()
	bin := testpeer.Require(t, "gearman")
	h, p := hostPort(t, addr)
	args := append([]string{"-w", "-h", h, "-p", p, "-f", fn, "--"}, cmd...)
	proc := testpeer.Start(t, exec.Command(bin, args...))
	waitWorkers(t, addr, fn, 1)
	return proc
}

// startPHPWorker runs testdata/worker.php with functions prefix.*.
func startPHPWorker(t testing.TB, addr, prefix string) *testpeer.Process {
	t.Helper()
	php := testpeer.RequirePHPGearman(t)
	h, p := hostPort(t, addr)
	proc := testpeer.Start(t, exec.Command(php, filepath.Join("testdata", "worker.php"), h, p, prefix))
	waitWorkers(t, addr, prefix+".echo", 1)
	return proc
}

// waitWorkers waits until the server's `status` shows n workers for fn.
func waitWorkers(t testing.TB, addr, fn string, n int) {
	t.Helper()
	c := newClient(t, addr)
	waitFor(t, 10*time.Second, "workers for "+fn, func() bool {
		st, err := c.Admin(addr).Status(context.Background())
		if err != nil {
			return false
		}
		for _, s := range st {
			if s.Function == fn && s.Workers >= n {
				return true
			}
		}
		return false
	})
}

// waitFor polls cond until it holds, or fails the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a server we cannot subscribe to
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

type (
	protocolStatus = protocol.FunctionStatus
	protocolJob    = protocol.JobInfo
)
