package worker_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker"
)

// interopFunctions are the handlers the peer clients call.
func interopFunctions() map[string]worker.FunctionConfig {
	return map[string]worker.FunctionConfig{
		"reverse": {Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
			r := []rune(string(j.Payload()))
			for i, k := 0, len(r)-1; i < k; i, k = i+1, k-1 {
				r[i], r[k] = r[k], r[i]
			}
			return []byte(string(r)), nil
		})},
		"progress": {Handler: worker.HandlerFunc(func(ctx context.Context, j worker.Job) ([]byte, error) {
			for i := 1; i <= 2; i++ {
				if err := j.SendStatus(ctx, i, 2); err != nil {
					return nil, err
				}
				if err := j.SendData(ctx, []byte("part"+strconv.Itoa(i))); err != nil {
					return nil, err
				}
			}
			return []byte("all done"), nil
		})},
		"fail": {Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) {
			return nil, errors.New("nope")
		})},
		"except": {Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) {
			return nil, worker.Exception(errors.New("it broke"))
		})},
	}
}

// TestGearmanCLIClient: the gearman CLI (libgearman) as the client.
func TestGearmanCLIClient(t *testing.T) {
	t.Parallel()
	gearman := testpeer.Require(t, "gearman")
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantCode int
	}{
		{"result", []string{"-f", "reverse", "hello gearman"}, "namraeg olleh", 0},
		// The CLI prints WORK_DATA and the result, then one line per WORK_STATUS.
		{"data and status", []string{"-f", "progress", "x"}, "part1part2all done50% Complete\n100% Complete\n", 0},
		{"fail", []string{"-f", "fail", "x"}, "", 1},
	}
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			host, port, _ := net.SplitHostPort(srv.Addr)
			w := newWorker(t, worker.Options{Servers: []string{srv.Addr}, Functions: interopFunctions()})
			stop, _ := runWorker(t, w)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, gearman, append([]string{"-h", host, "-p", port}, tt.args...)...)
					var stdout, stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					err := cmd.Run()
					code := 0
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						code = ee.ExitCode()
					} else if err != nil {
						t.Fatalf("gearman: %v", err)
					}
					if stdout.String() != tt.wantOut || code != tt.wantCode {
						t.Errorf("gearman %v: stdout %q exit %d, want %q exit %d (stderr %q)",
							tt.args, stdout.String(), code, tt.wantOut, tt.wantCode, stderr.String())
					}
				})
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPHPClient: PHP's gearman extension as the client, with callbacks.
func TestPHPClient(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"result", []string{"reverse", "héllo"}, "complete:olléh\n"},
		{"data and status", []string{"progress", "x"}, "status:1/2\ndata:part1\nstatus:2/2\ndata:part2\ncomplete:all done\n"},
		{"fail", []string{"fail", "x"}, "fail\n"},
		{"exception", []string{"except", "x", "exceptions"}, "exception:it broke\n"},
		// Observed with php-gearman 2.1.0 on libgearman 1.1.20: the
		// extension asks for exceptions by itself.
		{"exception without the option", []string{"except", "x"}, "exception:it broke\n"},
	}
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			host, port, _ := net.SplitHostPort(srv.Addr)
			w := newWorker(t, worker.Options{Servers: []string{srv.Addr}, Functions: interopFunctions()})
			stop, _ := runWorker(t, w)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, php, append([]string{"testdata/client.php", host, port}, tt.args...)...)
					out, err := cmd.CombinedOutput()
					if err != nil && !strings.Contains(tt.want, "fail") {
						t.Fatalf("php: %v\n%s", err, out)
					}
					if string(out) != tt.want {
						t.Errorf("php client %v:\n got %q\nwant %q", tt.args, out, tt.want)
					}
				})
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReconnect: the server is stopped and a new one started on the same
// port; the worker reconnects, re-registers and serves again.
func TestReconnect(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			first := tg.start(t) // also skips when the target is unavailable
			bin, args := first.Cmd.Path, first.Cmd.Args[1:]
			first.Stop()
			// Restart on a fixed port with the same command line.
			port := testpeer.FreePort(t)
			args = withPort(args, port)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			startAt := func() *testpeer.Process {
				cmd := exec.Command(bin, args...)
				cmd.Env = first.Cmd.Env // and the same environment (gserverd's data dir)
				p := testpeer.Start(t, cmd)
				p.Addr = addr
				testpeer.WaitListening(t, addr, 10*time.Second)
				return p
			}
			srv := startAt()

			var mu sync.Mutex
			kinds := map[worker.EventKind]int{}
			w := newWorker(t, worker.Options{
				Servers:   []string{addr},
				Functions: interopFunctions(),
				OnEvent:   func(e worker.Event) { mu.Lock(); kinds[e.Kind]++; mu.Unlock() },
			})
			stop, _ := runWorker(t, w)
			count := func(k worker.EventKind) int { mu.Lock(); defer mu.Unlock(); return kinds[k] }

			c := dialClient(t, addr)
			if got := c.wait(c.submit(protocol.SubmitJob, "reverse", "", "abc"), 10*time.Second); got.Result != "cba" {
				t.Fatalf("before restart: %+v", got)
			}
			srv.Stop()
			eventually(t, 10*time.Second, "disconnect event", func() bool { return count(worker.Disconnected) >= 1 })
			srv = startAt()
			eventually(t, 10*time.Second, "re-registration", func() bool { return count(worker.Connected) >= 2 })
			c = dialClient(t, addr)
			if got := c.wait(c.submit(protocol.SubmitJob, "reverse", "", "xyz"), 10*time.Second); got.Result != "zyx" {
				t.Fatalf("after restart: %+v", got)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
		})
	}
}

// withPort replaces the value of -p in a server command line.
func withPort(args []string, port int) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "-p" {
			out[i+1] = strconv.Itoa(port)
		}
	}
	return out
}

// TestMultipleServers: one worker serves jobs submitted to three servers,
// and a server that is down at start does not stop the others.
func TestMultipleServers(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			a, b := tg.start(t), tg.start(t)
			down := testpeer.DeadAddr(t)
			w := newWorker(t, worker.Options{Servers: []string{a.Addr, down, b.Addr}, Functions: interopFunctions(), Concurrency: 3})
			stop, _ := runWorker(t, w)
			for _, addr := range []string{a.Addr, b.Addr} {
				c := dialClient(t, addr)
				if got := c.wait(c.submit(protocol.SubmitJobHigh, "reverse", "u1", addr), 10*time.Second); got.End != protocol.WorkComplete {
					t.Fatalf("server %s: %+v", addr, got)
				}
			}
			if n := w.Stats().Connected; n != 2 {
				t.Errorf("connected to %d servers, want 2", n)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
