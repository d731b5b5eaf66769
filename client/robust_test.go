package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestFleet runs three servers, stops one in the middle of a stream of
// submits, and checks that every submit succeeds and that a unique
// always lands on the same live server.
func TestFleet(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srvs := []*testpeer.Process{tg.start(t), tg.start(t), tg.start(t)}
			addrs := []string{srvs[0].Addr, srvs[1].Addr, srvs[2].Addr}
			c := newClient(t, addrs...)
			ctx := ctxT(t, 60*time.Second)
			fn := fname(t)
			const n = 300
			placed := map[string]string{}
			perServer := map[string]int{}
			for i := range n {
				if i == n/2 {
					srvs[1].Stop()
				}
				u := "u" + strconv.Itoa(i%50)
				h, err := c.SubmitBackground(ctx, fn, []byte("x"), client.Unique(u))
				if err != nil {
					t.Fatalf("submit %d (unique %s) with %s stopped=%v: %v", i, u, addrs[1], i >= n/2, err)
				}
				h2, err := c.SubmitBackground(ctx, fn, []byte("y"))
				if err != nil {
					t.Fatalf("submit %d without unique: %v", i, err)
				}
				perServer[h2.Server]++
				if i >= n/2 && (h.Server == addrs[1] || h2.Server == addrs[1]) {
					t.Fatalf("submit %d went to the stopped server", i)
				}
				want := c.ServerFor(u)
				if i >= n/2 && want == addrs[1] {
					// The unique's server is down: it must stick to one other.
					if prev, ok := placed["down:"+u]; ok && prev != h.Server {
						t.Errorf("unique %s moved from %s to %s while %s was down", u, prev, h.Server, addrs[1])
					}
					placed["down:"+u] = h.Server
					continue
				}
				if h.Server != want {
					t.Errorf("unique %s went to %s, want %s", u, h.Server, want)
				}
			}
			for _, a := range addrs {
				if perServer[a] < n/10 {
					t.Errorf("round robin sent only %d of %d jobs to %s", perServer[a], n, a)
				}
			}
		})
	}
}

// proxy sits between the client and a server; it can hold back what the
// server sends (to make replies late on demand).
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	gate     chan struct{} // closed while replies flow
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, gate: make(chan struct{})}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) hold() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *proxy) release() {
	p.mu.Lock()
	close(p.gate)
	p.mu.Unlock()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(up, down)
			up.Close()
		}()
		go func() {
			defer p.wg.Done()
			defer down.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					p.mu.Lock()
					gate := p.gate
					p.mu.Unlock()
					<-gate
					if _, werr := down.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestGearmanGoDefects reproduces the situations where gearman-go's
// client goes wrong and checks that this client does not.
func TestGearmanGoDefects(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		fn := fname(t)
		startGearmanWorker(t, srv.Addr, fn, "cat")

		t.Run("timeout then mixed-up result", func(t *testing.T) {
			px := startProxy(t, srv.Addr)
			c := newClient(t, px.addr())
			if _, _, err := c.Echo(ctxT(t, 5*time.Second), []byte("warm")); err != nil {
				t.Fatal(err)
			}
			px.hold()
			short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, err := c.Submit(short, fn, []byte("A-payload"))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Submit A with replies held back: %v, want DeadlineExceeded", err)
			}
			_, err = c.SubmitBackground(ctxT(t, 200*time.Millisecond), fn+"-none", []byte("A2"))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("SubmitBackground A2: %v, want DeadlineExceeded", err)
			}
			type out struct {
				job *client.Job
				err error
			}
			ch := make(chan out, 1)
			go func() {
				j, err := c.Submit(ctxT(t, 10*time.Second), fn, []byte("B-payload"))
				ch <- out{j, err}
			}()
			echo := make(chan []byte, 1)
			go func() {
				b, _, _ := c.Echo(ctxT(t, 10*time.Second), []byte("C-echo"))
				echo <- b
			}()
			px.release()
			o := <-ch
			if o.err != nil {
				t.Fatal(o.err)
			}
			res, err := o.job.Wait(ctxT(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Output()) != "B-payload" {
				t.Errorf("job B returned %q, want B-payload (a late reply to A was handed to B)", res.Output())
			}
			if got := <-echo; string(got) != "C-echo" {
				t.Errorf("echo returned %q, want C-echo", got)
			}
		})

		t.Run("status alongside submit", func(t *testing.T) {
			c := newClient(t, srv.Addr)
			ctx := ctxT(t, 30*time.Second)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						id := fmt.Sprintf("g%d-%d", g, i)
						h, err := c.SubmitBackground(ctx, fn+"-queued", []byte(id), client.Unique(id))
						if err != nil {
							errs <- err
							return
						}
						st, err := c.Status(ctx, h)
						if err != nil || st.Handle != h.ID || !st.Known {
							errs <- fmt.Errorf("Status(%v) = %+v, %v", h, st, err)
							return
						}
						su, err := c.StatusUnique(ctx, id)
						if err != nil || su.Handle != id || !su.Known {
							errs <- fmt.Errorf("StatusUnique(%s) = %+v, %v", id, su, err)
							return
						}
						e, _, err := c.Echo(ctx, []byte(id))
						if err != nil || string(e) != id {
							errs <- fmt.Errorf("Echo(%s) = %q, %v", id, e, err)
							return
						}
						if i%5 == 0 {
							j, err := c.Submit(ctx, fn, []byte(id))
							if err != nil {
								errs <- err
								return
							}
							r, err := j.Wait(ctx)
							if err != nil || string(r.Output()) != id {
								errs <- fmt.Errorf("job %s returned %q, %v", id, r.Output(), err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})

		t.Run("pool with dead and silent servers", func(t *testing.T) {
			silent, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var held []net.Conn
			var mu sync.Mutex
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					cn, err := silent.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					held = append(held, cn)
					mu.Unlock()
				}
			}()
			t.Cleanup(func() {
				silent.Close()
				<-done
				mu.Lock()
				for _, cn := range held {
					cn.Close()
				}
				mu.Unlock()
			})
			dead := testpeer.DeadAddr(t)
			c, err := client.New([]string{silent.Addr().String(), dead, srv.Addr},
				client.WithRequestTimeout(300*time.Millisecond), client.WithBackoff(time.Second, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t, 30*time.Second)
			var wg sync.WaitGroup
			var failed sync.Map
			for g := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 5 {
						h, err := c.SubmitBackground(ctx, fn+"-pool", []byte("x"))
						if err != nil {
							failed.Store(g*100+i, err)
							continue
						}
						if h.Server != srv.Addr {
							failed.Store(g*100+i, fmt.Errorf("job placed on %s", h.Server))
						}
					}
				}()
			}
			wg.Wait()
			failed.Range(func(k, v any) bool {
				t.Errorf("submit %v: %v", k, v)
				return true
			})
			closed := make(chan struct{})
			go func() { _ = c.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return: deadlock")
			}
			// With every server failing, the error names each of them.
			c2, _ := client.New([]string{dead, silent.Addr().String()}, client.WithRequestTimeout(200*time.Millisecond))
			defer c2.Close()
			_, err = c2.SubmitBackground(ctxT(t, 5*time.Second), fn, nil)
			var se *client.ServerError
			if !errors.As(err, &se) || !bytes.Contains([]byte(err.Error()), []byte(dead)) ||
				!bytes.Contains([]byte(err.Error()), []byte(silent.Addr().String())) || !errors.Is(err, client.ErrTimeout) {
				t.Errorf("error with every server failing = %v, want one naming %s and %s", err, dead, silent.Addr())
			}
		})
	})
}

// TestConcurrentSubmit has 64 goroutines share one Client.
func TestConcurrentSubmit(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		fn := fname(t)
		ctx := ctxT(t, 60*time.Second)
		const goroutines, each = 64, 25
		handles := make([][]client.Handle, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					var opts []client.SubmitOption
					if i%3 == 0 {
						opts = append(opts, client.Priority(client.High))
					}
					h, err := c.SubmitBackground(ctx, fn, []byte(strconv.Itoa(i)), opts...)
					if err != nil {
						t.Errorf("goroutine %d submit %d: %v", g, i, err)
						return
					}
					handles[g] = append(handles[g], h)
				}
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, hs := range handles {
			for _, h := range hs {
				if seen[h.ID] {
					t.Errorf("handle %s returned twice", h.ID)
				}
				seen[h.ID] = true
			}
		}
		if len(seen) != goroutines*each {
			t.Errorf("%d distinct handles, want %d", len(seen), goroutines*each)
		}
		st, err := c.Admin("").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hasFunc(st, fn, goroutines*each) {
			t.Errorf("server status %+v, want %d jobs of %s", st, goroutines*each, fn)
		}
		// The batch call pipelines from one goroutine.
		reqs := make([]client.Request, 500)
		for i := range reqs {
			reqs[i] = client.Request{Function: fn + "-batch", Payload: []byte("b"), Options: []client.SubmitOption{client.Unique("b" + strconv.Itoa(i%250))}}
		}
		out := c.SubmitBackgroundBatch(ctx, reqs)
		for i, o := range out {
			if o.Err != nil {
				t.Fatalf("batch job %d: %v", i, o.Err)
			}
			if i >= 250 && o.Handle != out[i-250].Handle {
				t.Errorf("batch job %d: handle %v, want %v (same unique)", i, o.Handle, out[i-250].Handle)
			}
		}
	})
}

// TestServerReturns checks that a server that was down when the client
// started is used again once it is up (after its backoff), and takes
// back the uniques that hash to it.
func TestServerReturns(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		port := testpeer.FreePort(t)
		late := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		c, err := client.New([]string{late, srv.Addr}, client.WithBackoff(50*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		ctx := ctxT(t, 30*time.Second)
		fn := fname(t)
		// A unique that belongs to the late server.
		u := ""
		for i := 0; u == ""; i++ {
			if k := "k" + strconv.Itoa(i); c.ServerFor(k) == late {
				u = k
			}
		}
		h, err := c.SubmitBackground(ctx, fn, nil, client.Unique(u))
		if err != nil || h.Server != srv.Addr {
			t.Fatalf("submit while %s is down: %v on %q, want success on %s", late, err, h.Server, srv.Addr)
		}
		// Start the same kind of server on the late address.
		var bin string
		var args []string
		if t.Name() == "TestServerReturns/gearmand" {
			bin = testpeer.Require(t, "gearmand")
			args = []string{"-p", strconv.Itoa(port), "-L", "127.0.0.1", "--log-file", "stderr", "-t", "2"}
		} else {
			bin = testpeer.Binary(t, "gserverd")
			args = []string{"-p", strconv.Itoa(port), "-L", "127.0.0.1", "--log-file", "stderr", "--data-dir", t.TempDir()}
		}
		testpeer.Start(t, exec.Command(bin, args...))
		testpeer.WaitListening(t, late, 10*time.Second)
		waitFor(t, 10*time.Second, "the unique to move back to "+late, func() bool {
			h, err := c.SubmitBackground(ctx, fn, nil, client.Unique(u))
			return err == nil && h.Server == late
		})
	})
}
