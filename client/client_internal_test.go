package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock/clocktest"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	clk := clocktest.New()
	c, err := New([]string{testpeer.DeadAddr(t)}, WithClock(clk), WithBackoff(time.Second, 4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.servers[0]
	ctx := context.Background()
	steps := []struct {
		advance     time.Duration
		wantBackoff bool
	}{
		{0, false},                      // first dial: refused; backoff 1s less up to 20%
		{0, true},                       // within 0.8s
		{700 * time.Millisecond, true},  // still within
		{400 * time.Millisecond, false}, // 1.1s: dial again, refused; next backoff 1.6s..2s
		{1500 * time.Millisecond, true},
		{1000 * time.Millisecond, false}, // 2.5s after the last dial
		{3 * time.Second, true},          // 4s cap, at least 3.2s with jitter
		{1200 * time.Millisecond, false},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		_, err := c.conn(ctx, s, false)
		if err == nil {
			t.Fatalf("step %d: dial to a closed port succeeded", i)
		}
		if got := errors.Is(err, ErrBackoff); got != st.wantBackoff {
			t.Errorf("step %d: error %v, backoff = %v, want %v", i, err, got, st.wantBackoff)
		}
	}
	// force ignores the backoff.
	if _, err := c.conn(ctx, s, true); err == nil || errors.Is(err, ErrBackoff) {
		t.Errorf("forced dial: %v, want a dial error", err)
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	addrs := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	c, err := New(addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Round robin: each server comes first once per three calls.
	first := map[string]int{}
	for range 30 {
		first[c.order("")[0].addr]++
	}
	for _, a := range addrs {
		if first[a] != 10 {
			t.Errorf("round robin put %s first %d times of 30, want 10", a, first[a])
		}
	}
	// Rendezvous: stable, independent of the order servers are given in,
	// and spread.
	rev, _ := New([]string{addrs[2], addrs[1], addrs[0]})
	defer rev.Close()
	spread := map[string]int{}
	for i := range 3000 {
		u := "job-" + strconv.Itoa(i)
		a, b := c.ServerFor(u), rev.ServerFor(u)
		if a != b || a != c.ServerFor(u) {
			t.Fatalf("unique %s maps to %s and %s", u, a, b)
		}
		spread[a]++
	}
	for _, a := range addrs {
		if spread[a] < 800 || spread[a] > 1200 {
			t.Errorf("server %s got %d of 3000 uniques, want about 1000", a, spread[a])
		}
	}
	// Removing a server moves only its uniques.
	two, _ := New(addrs[:2])
	defer two.Close()
	for i := range 300 {
		u := "job-" + strconv.Itoa(i)
		if a := c.ServerFor(u); a != addrs[2] && two.ServerFor(u) != a {
			t.Errorf("unique %s moved from %s to %s when another server left", u, a, two.ServerFor(u))
		}
	}
}

func TestNewNoServers(t *testing.T) {
	t.Parallel()
	if _, err := New(nil); !errors.Is(err, ErrNoServers) {
		t.Errorf("New(nil) = %v, want ErrNoServers", err)
	}
	c, err := New([]string{"localhost", "localhost:4730", "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Servers(); len(got) != 2 || got[0] != "localhost:4730" {
		t.Errorf("Servers() = %v, want [localhost:4730 127.0.0.1:1]", got)
	}
}

// fakeServer accepts connections on loopback and answers each with
// reply(request bytes so far) until the test ends.
func fakeServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// FuzzReplies feeds arbitrary server output to the client: it must
// return (an answer or an error), never panic or hang, and Close must
// return.
func FuzzReplies(f *testing.F) {
	res := func(typ byte, body string) []byte {
		b := []byte{0, 'R', 'E', 'S', 0, 0, 0, typ, 0, 0, 0, byte(len(body))}
		return append(b, body...)
	}
	f.Add(append(res(27, "exceptions"), res(17, "ping")...))
	f.Add(append(res(27, "exceptions"), res(8, "H:x:1")...))
	f.Add(append(res(27, "exceptions"), res(19, "ERR\x00text")...))
	f.Add(append(res(27, "exceptions"), res(20, "H:x:1\x001\x000\x001\x002")...))
	f.Add(append(res(27, "exceptions"), res(13, "H:x:1\x00done")...))
	f.Add([]byte("OK 1.0\n"))
	f.Add([]byte{0, 'R', 'E', 'S', 0, 0, 0, 99, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		addr := fakeServer(t, func(c net.Conn) {
			_, _ = c.Write(data)
			_, _ = io.Copy(io.Discard, c)
		})
		c, err := New([]string{addr}, WithRequestTimeout(50*time.Millisecond), WithDialTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _, _ = c.Echo(ctx, []byte("ping"))
		if j, err := c.Submit(ctx, "f", nil); err == nil {
			short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
			_, _ = j.Wait(short)
			cancel2()
		}
		_, _ = c.Status(ctx, Handle{ID: "H:x:1"})
		done := make(chan struct{})
		go func() { _ = c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close hung")
		}
	})
}

// TestClose checks that Close ends waiting calls and jobs, and that
// calls after Close fail with ErrClosed.
func TestClose(t *testing.T) {
	t.Parallel()
	// A server that answers OPTION_REQ and JOB_CREATED, then nothing.
	addr := fakeServer(t, func(c net.Conn) {
		r := protocol.NewReader(c, protocol.Limits{})
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			switch f.Packet.Type {
			case protocol.OptionReq:
				_ = protocol.WritePacket(c, protocol.Res, protocol.OptionRes, f.Packet.Arg(0))
			case protocol.SubmitJob:
				_ = protocol.WritePacket(c, protocol.Res, protocol.JobCreated, []byte("H:x:1"))
			}
		}
	})
	c, err := New([]string{addr}, WithRequestTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	job, err := c.Submit(ctx, "f", nil)
	if err != nil {
		t.Fatal(err)
	}
	echoErr := make(chan error, 1)
	go func() {
		_, _, err := c.Echo(ctx, []byte("never answered"))
		echoErr <- err
	}()
	// Wait until the echo is queued on the connection.
	for {
		s := c.servers[0]
		s.mu.Lock()
		cn := s.conn
		s.mu.Unlock()
		cn.mu.Lock()
		n := len(cn.pending)
		cn.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond) // the echo goroutine is about to enqueue
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-echoErr; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting Echo after Close: %v, want ErrClosed", err)
	}
	if _, err := job.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("job Wait after Close: %v, want ErrClosed", err)
	}
	if _, err := c.SubmitBackground(ctx, "f", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SubmitBackground after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// scripted starts a fake server that answers OPTION_REQ and replies to
// SUBMIT_JOB with the given packets.
func scripted(t *testing.T, replies ...[]byte) string {
	t.Helper()
	return fakeServer(t, func(c net.Conn) {
		r := protocol.NewReader(c, protocol.Limits{})
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			switch f.Packet.Type {
			case protocol.OptionReq:
				_ = protocol.WritePacket(c, protocol.Res, protocol.OptionRes, f.Packet.Arg(0))
			case protocol.SubmitJob:
				for _, p := range replies {
					_, _ = c.Write(p)
				}
			}
		}
	})
}

func res(typ protocol.Type, args ...string) []byte {
	return protocol.AppendPacketString(nil, protocol.Res, typ, args...)
}

func TestScriptedReplies(t *testing.T) {
	t.Parallel()
	created := res(protocol.JobCreated, "H:x:1")
	tests := []struct {
		name       string
		replies    [][]byte
		submitErr  func(error) bool
		wantKinds  string
		waitErr    func(error) bool
		wantResult string
	}{
		{
			name:      "WORK_FAIL with gearmand's trailing NUL",
			replies:   [][]byte{created, res(protocol.WorkFail, "H:x:1\x00")},
			wantKinds: "fail",
			waitErr:   func(err error) bool { return errors.Is(err, ErrJobFailed) },
		},
		{
			name: "events for another handle are ignored",
			replies: [][]byte{created, res(protocol.WorkData, "H:x:2", "other"), res(protocol.WorkStatus, "H:x:1", "3", "4"),
				res(protocol.WorkData, "H:x:1", "a\x00b"), res(protocol.WorkComplete, "H:x:1", "done")},
			wantKinds:  "status,data,complete",
			waitErr:    func(err error) bool { return err == nil },
			wantResult: "a\x00bdone",
		},
		{
			name:      "exception",
			replies:   [][]byte{created, res(protocol.WorkException, "H:x:1", "boom")},
			wantKinds: "exception",
			waitErr: func(err error) bool {
				var ex *ExceptionError
				return errors.As(err, &ex) && string(ex.Data) == "boom"
			},
		},
		{
			name:    "ERROR instead of JOB_CREATED",
			replies: [][]byte{res(protocol.Error, "QUEUE_ERROR", "Job queue is full")},
			submitErr: func(err error) bool {
				var ep *protocol.ErrorPacket
				return errors.As(err, &ep) && ep.Code == "QUEUE_ERROR"
			},
		},
		{
			name:      "wrong reply type closes the connection",
			replies:   [][]byte{res(protocol.EchoRes, "x")},
			submitErr: func(err error) bool { return errors.Is(err, ErrProtocol) },
		},
		{
			name:      "bad frame after JOB_CREATED",
			replies:   [][]byte{created, []byte("\x00BAD\x00\x00\x00\x08\x00\x00\x00\x00")},
			wantKinds: "error",
			waitErr:   func(err error) bool { return errors.Is(err, ErrConnLost) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New([]string{scripted(t, tt.replies...)}, WithRequestTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			job, err := c.Submit(ctx, "f", nil)
			if tt.submitErr != nil {
				if !tt.submitErr(err) {
					t.Fatalf("Submit error = %v, not the expected one", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for ev := range job.Events(ctx) {
				kinds = append(kinds, ev.Kind.String())
			}
			if got := strings.Join(kinds, ","); got != tt.wantKinds {
				t.Errorf("events %s, want %s", got, tt.wantKinds)
			}
			r, err := job.Wait(ctx)
			if !tt.waitErr(err) {
				t.Errorf("Wait error = %v, not the expected one", err)
			}
			if r != nil && string(r.Output()) != tt.wantResult {
				t.Errorf("output %q, want %q", r.Output(), tt.wantResult)
			}
		})
	}
}

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// TestHeldRequestsOneWrite: requests held on a connection are written by
// flush in one write, in the order they were held (SubmitBackgroundBatch);
// enqueue writes at once.
func TestHeldRequestsOneWrite(t *testing.T) {
	t.Parallel()
	ours, theirs := net.Pipe()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(theirs)
		got <- b
	}()
	cc := &countingConn{Conn: ours}
	cfg := defaultConfig()
	var readers sync.WaitGroup
	readers.Add(1)
	cn := newConn("pipe", cc, &cfg, &readers)
	var want []byte
	for i := range 50 {
		pkt := res(protocol.SubmitJobBg, "f", "", strconv.Itoa(i))
		want = append(want, pkt...)
		if err := cn.hold(pkt, newPending(protocol.JobCreated, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := cc.count(); n != 0 {
		t.Fatalf("%d writes before flush, want 0", n)
	}
	cn.flush()
	if n := cc.count(); n != 1 {
		t.Errorf("flush of 50 held requests made %d writes, want 1", n)
	}
	last := res(protocol.EchoReq, "x")
	want = append(want, last...)
	if err := cn.enqueue(last, newPending(protocol.EchoRes, nil)); err != nil {
		t.Fatal(err)
	}
	if n := cc.count(); n != 2 {
		t.Errorf("enqueue made %d writes in all, want 2", n)
	}
	cn.fail(ErrClosed)
	readers.Wait()
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("the wire carried %d bytes, not the %d held and enqueued, in order", len(b), len(want))
	}
}
