package client_test

import (
	"context"
	"log"
	"net"
	"time"

	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/worker"
)

// exampleServer starts a Gearman server in this process on a port the
// kernel picks, with a worker for the functions the examples call, and
// returns its address and a function that stops both: the examples then
// run, and their output is checked, where a real deployment would dial
// gserverd or gearmand.
func exampleServer() (addr string, stop func()) {
	so := server.DefaultOptions()
	so.JobHandlePrefix = "H:example"
	srv, err := server.New(so)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	addr = ln.Addr().String()

	w, err := worker.New(worker.Options{
		Servers:     []string{addr},
		Concurrency: 2,
		Functions: map[string]worker.FunctionConfig{
			"reverse": {Handler: worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
				b := append([]byte(nil), j.Payload()...)
				for i, k := 0, len(b)-1; i < k; i, k = i+1, k-1 {
					b[i], b[k] = b[k], b[i]
				}
				return b, nil
			})},
			"report": {Handler: worker.HandlerFunc(func(ctx context.Context, j worker.Job) ([]byte, error) {
				for i := 1; i <= 2; i++ {
					if err := j.SendData(ctx, []byte("line\n")); err != nil {
						return nil, err
					}
					if err := j.SendStatus(ctx, i, 2); err != nil {
						return nil, err
					}
				}
				return []byte("report " + string(j.Payload()) + " done"), nil
			})},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	worked := make(chan struct{})
	go func() { defer close(worked); _ = w.Run(ctx) }()
	return addr, func() {
		cancel()
		<-worked
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		<-served
	}
}
