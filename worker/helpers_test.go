package worker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker"
)

func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd")) }

// target is a job server implementation the worker is tested against.
type target struct {
	name  string
	start func(t *testing.T, args ...string) *testpeer.Process
}

// targets returns the C gearmand and our gserverd.
func targets() []target {
	return []target{
		{"gearmand", func(t *testing.T, args ...string) *testpeer.Process {
			return testpeer.StartGearmand(t, args...)
		}},
		{"gserverd", func(t *testing.T, args ...string) *testpeer.Process {
			return testpeer.StartGserverd(t, args...)
		}},
	}
}

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.Out = io.Discard
	if testing.Verbose() {
		l.Out = os.Stderr
		l.Level = logrus.DebugLevel
	}
	return l.WithField("test", t.Name())
}

// runWorker starts w.Run in a goroutine. stop cancels its context and
// returns Run's error; done is closed when Run has returned, after which
// stop returns at once. Cleanup stops it too.
func runWorker(t *testing.T, w *worker.Worker) (stop func() error, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err error
	go func() { err = w.Run(ctx); close(ch) }()
	stop = func() error {
		cancel()
		select {
		case <-ch:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not return within 30s of cancel")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ch
}

func newWorker(t *testing.T, opts worker.Options) *worker.Worker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Backoff.Initial == 0 {
		opts.Backoff = worker.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	w, err := worker.New(opts)
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	return w
}

// eventually polls cond (state held by another process) until it holds.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling another process's state
	}
}

// client is a minimal raw Gearman client for the tests.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *protocol.Reader
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: protocol.NewReader(c, protocol.Limits{})}
}

func (c *client) write(typ protocol.Type, args ...string) {
	c.t.Helper()
	if _, err := c.conn.Write(protocol.AppendPacketString(nil, protocol.Req, typ, args...)); err != nil {
		c.t.Fatalf("write %s: %v", typ, err)
	}
}

func (c *client) next(timeout time.Duration) protocol.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	f, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f.Packet.Clone()
}

// exceptions enables the exceptions option on the connection.
func (c *client) exceptions() {
	c.t.Helper()
	c.write(protocol.OptionReq, "exceptions")
	if p := c.next(5 * time.Second); p.Type != protocol.OptionRes {
		c.t.Fatalf("OPTION_REQ exceptions: got %s", p.Type)
	}
}

func (c *client) submit(typ protocol.Type, fn, unique, payload string) string {
	c.t.Helper()
	c.write(typ, fn, unique, payload)
	p := c.next(5 * time.Second)
	if p.Type != protocol.JobCreated {
		c.t.Fatalf("submit %s: got %s %q", fn, p.Type, p.Args)
	}
	return string(p.Arg(0))
}

// outcome is everything a foreground client received for one job.
type outcome struct {
	Data, Warnings []string
	Status         []string // "num/den"
	End            protocol.Type
	Result         string // WORK_COMPLETE data or WORK_EXCEPTION data
}

// wait collects packets for handle until the job ends.
func (c *client) wait(handle string, timeout time.Duration) outcome {
	c.t.Helper()
	return c.waitAll([]string{handle}, timeout)[handle]
}

// waitAll collects packets for several jobs of this connection, in any
// order, until each has ended.
func (c *client) waitAll(handles []string, timeout time.Duration) map[string]outcome {
	c.t.Helper()
	out := make(map[string]outcome, len(handles))
	open := make(map[string]bool, len(handles))
	for _, h := range handles {
		open[h] = true
	}
	deadline := time.Now().Add(timeout)
	for len(open) > 0 {
		p := c.next(time.Until(deadline))
		h := string(p.Arg(0))
		if p.Type == protocol.WorkFail {
			// gearmand sends an exception to a plain client as WORK_FAIL
			// with body "HANDLE\0" (docs/PROTOCOL.md section 4.8).
			h = strings.TrimSuffix(h, "\x00")
		}
		if !open[h] {
			c.t.Fatalf("packet %s for handle %q, want one of %q", p.Type, p.Arg(0), handles)
		}
		o := out[h]
		switch p.Type {
		case protocol.WorkData:
			o.Data = append(o.Data, string(p.Arg(1)))
		case protocol.WorkWarning:
			o.Warnings = append(o.Warnings, string(p.Arg(1)))
		case protocol.WorkStatus:
			o.Status = append(o.Status, fmt.Sprintf("%s/%s", p.Arg(1), p.Arg(2)))
		case protocol.WorkComplete, protocol.WorkException:
			o.End, o.Result = p.Type, string(p.Arg(1))
			delete(open, h)
		case protocol.WorkFail:
			o.End = p.Type
			delete(open, h)
		default:
			c.t.Fatalf("unexpected %s", p.Type)
		}
		out[h] = o
	}
	return out
}

// adminStatus returns the server's `status` line for fn.
func adminStatus(t *testing.T, addr, fn string) protocol.FunctionStatus {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial admin: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "status\n"); err != nil {
		t.Fatal(err)
	}
	lines, err := protocol.ReadAdminList(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	st, err := protocol.ParseStatus(lines)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Function == fn {
			return s
		}
	}
	return protocol.FunctionStatus{Function: fn}
}

// adminWorkers returns the `workers` lines that registered fn.
func adminWorkers(t *testing.T, addr, fn string) []protocol.WorkerInfo {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial admin: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "workers\n"); err != nil {
		t.Fatal(err)
	}
	lines, err := protocol.ReadAdminList(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("workers: %v", err)
	}
	ws, err := protocol.ParseWorkers(lines)
	if err != nil {
		t.Fatal(err)
	}
	var out []protocol.WorkerInfo
	for _, w := range ws {
		for _, f := range w.Functions {
			if f == fn {
				out = append(out, w)
				break
			}
		}
	}
	return out
}
