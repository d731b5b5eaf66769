package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker"
)

// TestSilentServerDoesNotStallOthers: a server that stops answering
// (packets dropped, not reset: a host cut off from the network, as when
// a fleet member is cut) holds a grab of the worker unanswered. With one
// slot, that grab would keep the worker from every other server for as
// long as TCP takes to give up (minutes). After GrabTimeout the worker
// drops that connection and serves the other server's jobs.
func TestSilentServerDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			silent, live := tg.start(t), tg.start(t)
			p, err := tcpproxy.New(silent.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			defer p.Resume()
			p.Stall()
			var done atomic.Int32
			w := newWorker(t, worker.Options{
				Servers:     []string{p.Addr(), live.Addr},
				Concurrency: 1,
				GrabTimeout: 300 * time.Millisecond,
				Functions: map[string]worker.FunctionConfig{"echo": {Handler: worker.HandlerFunc(
					func(_ context.Context, j worker.Job) ([]byte, error) {
						done.Add(1)
						return j.Payload(), nil
					})}},
			})
			stop, _ := runWorker(t, w)
			// The worker is registered on the live server, and what it
			// sent to the silent one (its registration and first grab) is
			// held back.
			eventually(t, 20*time.Second, "the worker registered on the live server and held up by the silent one", func() bool {
				return len(adminWorkers(t, live.Addr, "echo")) == 1 && p.Held() > 0
			})
			c := dialClient(t, live.Addr)
			var hs []string
			for range 10 {
				hs = append(hs, c.submit(protocol.SubmitJob, "echo", "", "x"))
			}
			for h, got := range c.waitAll(hs, 60*time.Second) {
				if got.End != protocol.WorkComplete {
					t.Errorf("job %s on the live server: %+v", h, got)
				}
			}
			if n := done.Load(); n != 10 {
				t.Errorf("%d jobs run, want 10", n)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
