package gearhttp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/gearhttp"
	"github.com/gworkerd/gworkerd/server/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const ioTimeout = 10 * time.Second

// env is an in-process gserverd on 127.0.0.1:0 with gearmand's HTTP
// protocol on another port.
type env struct {
	srv     *server.Server
	http    *gearhttp.Server
	gearman string // Gearman address
	addr    string // HTTP protocol address
	served  chan error
}

func start(t *testing.T, opts gearhttp.Options) *env {
	t.Helper()
	return startWith(t, opts, nil)
}

// startWith is start with the job server's options changed by mod.
func startWith(t *testing.T, opts gearhttp.Options, mod func(*server.Options)) *env {
	t.Helper()
	so := server.DefaultOptions()
	so.JobHandlePrefix = "H:test"
	if mod != nil {
		mod(&so)
	}
	srv, err := server.New(so)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(gln) }()
	if opts.Submitter == nil {
		opts.Submitter = srv
	}
	opts.Version = "v-test"
	hs, err := gearhttp.New(opts)
	if err != nil {
		t.Fatalf("gearhttp.New: %v", err)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e := &env{srv: srv, http: hs, gearman: gln.Addr().String(), addr: hln.Addr().String(), served: make(chan error, 1)}
	go func() { e.served <- hs.Serve(hln) }()
	t.Cleanup(func() {
		_ = hs.Close()
		if err := <-e.served; err != nil && !errors.Is(err, gearhttp.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		_ = srv.Close()
		<-sdone
	})
	return e
}

// exchange sends a raw request and reads the answer until the server
// closes the connection.
func exchange(t *testing.T, addr, req string) string {
	t.Helper()
	got, err := tryExchange(addr, req, false)
	if err != nil {
		t.Fatalf("%q: %v (got %q)", req, err, got)
	}
	return got
}

// tryExchange with halfClose closes the sending side after req.
func tryExchange(addr, req string, halfClose bool) (string, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	if halfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// worker is a raw Gearman worker connection.
type worker struct {
	t  *testing.T
	nc net.Conn
	rd *protocol.Reader
}

func (e *env) worker(t *testing.T, fn string) *worker {
	t.Helper()
	nc, err := net.Dial("tcp", e.gearman)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	w := &worker{t: t, nc: nc, rd: protocol.NewReader(nc, protocol.Limits{})}
	w.send(protocol.CanDo, fn)
	return w
}

func (w *worker) send(typ protocol.Type, args ...string) {
	w.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := protocol.WritePacket(w.nc, protocol.Req, typ, b...); err != nil {
		w.t.Fatalf("write %v: %v", typ, err)
	}
}

func (w *worker) read() protocol.Packet {
	w.t.Helper()
	_ = w.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	f, err := w.rd.Next()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return f.Packet.Clone()
}

// grab waits for a job (PRE_SLEEP, NOOP) and returns JOB_ASSIGN_UNIQ's
// arguments: handle, function, unique, payload.
func (w *worker) grab() []string {
	w.t.Helper()
	for {
		w.send(protocol.GrabJobUniq)
		p := w.read()
		switch p.Type {
		case protocol.JobAssignUniq:
			out := make([]string, len(p.Args))
			for i, a := range p.Args {
				out[i] = string(a)
			}
			return out
		case protocol.NoJob:
			w.send(protocol.PreSleep)
			if p := w.read(); p.Type != protocol.Noop {
				w.t.Fatalf("got %v, want NOOP", p.Type)
			}
		default:
			w.t.Fatalf("got %v, want JOB_ASSIGN_UNIQ or NO_JOB", p.Type)
		}
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	e := start(t, gearhttp.Options{MaxPayload: 100})
	const srvHdr = "Server: gserverd/v-test\r\n"
	// $H is the handle the worker got; $F the test's function.
	for _, tc := range []struct {
		name string
		req  string
		// work answers the job (nil: no job is expected).
		work func(w *worker, handle string)
		job  []string // unique, payload the worker must see
		want string
		// halfClose: the client closes its sending side after the request.
		halfClose bool
	}{
		{name: "foreground: WORK_DATA then WORK_COMPLETE, status and warning skipped",
			req: "POST /$F HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
			work: func(w *worker, h string) {
				w.send(protocol.WorkStatus, h, "1", "2")
				w.send(protocol.WorkWarning, h, "careful")
				w.send(protocol.WorkData, h, "AB")
				w.send(protocol.WorkComplete, h, "CD")
			},
			job:  []string{"-", "hello"},
			want: "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: $H\r\nX-Gearman-Command: WORK_COMPLETE\r\nContent-Length: 4\r\n" + srvHdr + "\r\nABCD"},
		{name: "WORK_FAIL keeps the whole handle",
			req:  "POST /$F HTTP/1.0\r\nX-Gearman-Unique: u1\r\nX-Gearman-Priority: low\r\n\r\n",
			work: func(w *worker, h string) { w.send(protocol.WorkFail, h) },
			job:  []string{"u1", ""},
			want: "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: $H\r\nX-Gearman-Command: WORK_FAIL\r\nContent-Length: 0\r\n" + srvHdr + "\r\n"},
		{name: "WORK_EXCEPTION is WORK_FAIL",
			req:  "PUT /$F HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
			work: func(w *worker, h string) { w.send(protocol.WorkException, h, "boom") },
			job:  []string{"-", "x"},
			want: "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: $H\r\nX-Gearman-Command: WORK_FAIL\r\nContent-Length: 0\r\n" + srvHdr + "\r\n"},
		{name: "HEAD: no command header, no body",
			req:  "HEAD /$F HTTP/1.0\r\n\r\n",
			work: func(w *worker, h string) { w.send(protocol.WorkComplete, h, "RESULT") },
			job:  []string{"-", ""},
			want: "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: $H\r\nContent-Length: 6\r\n" + srvHdr + "\r\n"},
		{name: "GET: the body is not the payload",
			req:  "GET /$F HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
			work: func(w *worker, h string) { w.send(protocol.WorkComplete, h, "ok") },
			job:  []string{"-", ""},
			want: "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: $H\r\nX-Gearman-Command: WORK_COMPLETE\r\nContent-Length: 2\r\n" + srvHdr + "\r\nok"},
		{name: "keep-alive is not: one answer, then closed",
			req:  "POST /$F HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\nPOST /$F HTTP/1.1\r\n\r\n",
			work: func(w *worker, h string) { w.send(protocol.WorkComplete, h, "1") },
			job:  []string{"-", ""},
			want: "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: $H\r\nX-Gearman-Command: WORK_COMPLETE\r\nContent-Length: 1\r\n" + srvHdr + "\r\n1"},
		{name: "no function", req: "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
			want: "HTTP/1.0 404 NOT_FOUND\r\n" + srvHdr + "Content-Length: 0\r\n\r\n"},
		{name: "HEAD without a function", req: "HEAD / HTTP/1.0\r\n\r\n",
			want: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n" + srvHdr + "\r\n"},
		{name: "unique too long", req: "POST /$F HTTP/1.0\r\nX-Gearman-Unique: " + strings.Repeat("u", 65) + "\r\n\r\n",
			want: "HTTP/1.0 400 Bad Request\r\nX-Gearman-Command: ERROR\r\nContent-Length: 41\r\n" + srvHdr + "\r\nARGUMENT_TOO_LARGE Unique value too large"},
		{name: "body over MaxPayload", req: "POST /$F HTTP/1.0\r\nContent-Length: 101\r\n\r\n",
			want: "HTTP/1.0 413 Request Entity Too Large\r\n" + srvHdr + "Content-Length: 0\r\n\r\n"},
		{name: "method not served: closed", req: "DELETE /$F HTTP/1.0\r\n\r\n", want: ""},
		{name: "TRACE: closed", req: "TRACE / HTTP/1.0\r\n\r\n", want: ""},
		{name: "HTTP/2.0: closed", req: "POST /$F HTTP/2.0\r\n\r\n", want: ""},
		{name: "no version: closed", req: "POST /$F\r\n\r\n", want: ""},
		{name: "body cut short: closed", req: "POST /$F HTTP/1.0\r\nContent-Length: 9\r\n\r\nabc", want: "", halfClose: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fn := "f" + strings.NewReplacer(" ", "_", ":", "", ",", "", "/", "").Replace(tc.name)
			req := strings.ReplaceAll(tc.req, "$F", fn)
			got := make(chan string, 1)
			go func() {
				s, err := tryExchange(e.addr, req, tc.halfClose)
				if err != nil {
					s = "error: " + err.Error()
				}
				got <- s
			}()
			handle := ""
			if tc.work != nil {
				w := e.worker(t, fn)
				job := w.grab()
				handle = job[0]
				if job[1] != fn || job[2] != tc.job[0] || job[3] != tc.job[1] {
					t.Errorf("job %q, want function %q unique %q payload %q", job, fn, tc.job[0], tc.job[1])
				}
				tc.work(w, handle)
			}
			want := strings.ReplaceAll(tc.want, "$H", handle)
			if g := <-got; g != want {
				t.Errorf("answer\n got %q\nwant %q", g, want)
			}
			if tc.work == nil {
				for _, f := range e.srv.Stats().Functions {
					if f.Name == fn && f.High+f.Normal+f.Low+f.Running > 0 {
						t.Errorf("a job was created: %+v", f)
					}
				}
			}
		})
	}
}

// TestBackground: JOB_CREATED at once; priority and unique reach the
// queue; the same unique, and the same payload without one, coalesce.
func TestBackground(t *testing.T) {
	t.Parallel()
	e := start(t, gearhttp.Options{})
	const fn = "bg"
	post := func(hdr, body string) string {
		t.Helper()
		a := exchange(t, e.addr, "POST /"+fn+" HTTP/1.1\r\nX-Gearman-Background: true\r\n"+hdr+"Content-Length: "+
			strconv.Itoa(len(body))+"\r\n\r\n"+body)
		head, rest, _ := strings.Cut(a, "\r\nX-Gearman-Command: JOB_CREATED\r\nContent-Length: 0\r\nServer: gserverd/v-test\r\n\r\n")
		h, ok := strings.CutPrefix(head, "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: ")
		if !ok || rest != "" || !strings.HasPrefix(h, "H:test:") {
			t.Fatalf("answer %q", a)
		}
		return h
	}
	low := post("X-Gearman-Priority: LOW\r\nX-Gearman-Unique: l\r\n", "low")
	normal := post("", "normal")
	high := post("x-gearman-priority: high\r\n", "high")
	if again := post("X-Gearman-Unique: l\r\n", "ignored"); again != low {
		t.Errorf("same unique: handle %s, want %s", again, low)
	}
	if again := post("", "normal"); again != normal {
		t.Errorf("same payload, no unique: handle %s, want %s", again, normal)
	}
	w := e.worker(t, fn)
	for _, want := range [][]string{{high, "-", "high"}, {normal, "-", "normal"}, {low, "l", "low"}} {
		job := w.grab()
		if job[0] != want[0] || job[2] != want[1] || job[3] != want[2] {
			t.Errorf("got job %q, want %q", job, want)
		}
		w.send(protocol.WorkComplete, job[0], "")
	}
}

// TestClientLeaves: a client that closes while its job is queued takes
// the job with it. Meanwhile the job server has no connection: the job
// was submitted in process.
func TestClientLeaves(t *testing.T) {
	t.Parallel()
	e := start(t, gearhttp.Options{})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "POST /leave HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to be queued", func() bool { return queued(e, "leave") == 1 })
	if n := e.srv.Stats().Connections; n != 0 {
		t.Errorf("%d Gearman connections while a foreground request waits, want 0", n)
	}
	_ = c.Close()
	waitFor(t, "the job to go", func() bool { return queued(e, "leave") == 0 })
}

func queued(e *env, fn string) int {
	for _, f := range e.srv.Stats().Functions {
		if f.Name == fn {
			return f.High + f.Normal + f.Low
		}
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's figures
	}
}

// TestShutdown: Shutdown stops accepting but lets a waiting foreground
// request get its answer.
func TestShutdown(t *testing.T) {
	t.Parallel()
	e := start(t, gearhttp.Options{})
	got := make(chan string, 1)
	go func() {
		s, err := tryExchange(e.addr, "POST /sd HTTP/1.0\r\n\r\n", false)
		if err != nil {
			s = "error: " + err.Error()
		}
		got <- s
	}()
	w := e.worker(t, "sd")
	job := w.grab()
	down := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		down <- e.http.Shutdown(ctx)
	}()
	if err := <-e.served; !errors.Is(err, gearhttp.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	e.served <- gearhttp.ErrServerClosed // for the cleanup
	if _, err := net.DialTimeout("tcp", e.addr, ioTimeout); err == nil {
		t.Errorf("a connection was accepted after Shutdown")
	}
	w.send(protocol.WorkComplete, job[0], "done")
	if g := <-got; !strings.HasSuffix(g, "\r\n\r\ndone") {
		t.Errorf("answer during Shutdown: %q", g)
	}
	if err := <-down; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestGearmanDown: a submit to a job server that is closed is answered
// 503.
func TestGearmanDown(t *testing.T) {
	t.Parallel()
	e := start(t, gearhttp.Options{})
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.0 503 Service Unavailable\r\nServer: gserverd/v-test\r\nContent-Length: 0\r\n\r\n"
	if got := exchange(t, e.addr, "POST /f HTTP/1.0\r\n\r\n"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// failStore is a store whose writes fail, as on a full disk.
type failStore struct{}

func (failStore) Add(context.Context, ...store.Job) error             { return errors.New("disk full") }
func (failStore) Delete(context.Context, ...store.Ref) error          { return nil }
func (failStore) Replay(context.Context, func(store.Job) error) error { return nil }
func (failStore) Close() error                                        { return nil }

// TestRefused: a submit the job server refuses with QUEUE_ERROR (maxqueue,
// the queue memory bound, a failed store write) is answered 503 with the
// error, never with a job handle, and creates no job.
func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		mod   func(*server.Options)
		setup func(t *testing.T, e *env)
		text  string
	}{
		{name: "maxqueue",
			setup: func(t *testing.T, e *env) {
				e.srv.SetMaxQueue("f", [3]int{1, 1, 1})
				exchange(t, e.addr, "POST /f HTTP/1.0\r\nX-Gearman-Background: true\r\nContent-Length: 5\r\n\r\nfirst")
			},
			text: "QUEUE_ERROR " + protocol.TextQueueFull},
		{name: "queue memory bound", mod: func(o *server.Options) { o.MaxQueueMemory = 100 },
			text: "QUEUE_ERROR Job queue is full: memory bound"},
		{name: "store write fails", mod: func(o *server.Options) { o.Store = failStore{} },
			text: "QUEUE_ERROR QUEUE_ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startWith(t, gearhttp.Options{}, tc.mod)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			before := e.srv.Stats()
			got := exchange(t, e.addr, "POST /f HTTP/1.0\r\nX-Gearman-Background: true\r\nContent-Length: 1\r\n\r\nx")
			want := "HTTP/1.0 503 Service Unavailable\r\nX-Gearman-Command: ERROR\r\nContent-Length: " + strconv.Itoa(len(tc.text)) +
				"\r\nServer: gserverd/v-test\r\n\r\n" + tc.text
			if got != want {
				t.Errorf("answer\n got %q\nwant %q", got, want)
			}
			if after := e.srv.Stats(); after.Jobs != before.Jobs || after.Submitted != before.Submitted {
				t.Errorf("jobs %d -> %d, submitted %d -> %d; want no change", before.Jobs, after.Jobs, before.Submitted, after.Submitted)
			}
		})
	}
}
