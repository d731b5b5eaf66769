package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	gclient "github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/worker"
)

// Example shows a worker serving one function. Here the server runs in
// this process so that the example runs; a deployment lists its gserverd
// or gearmand servers, e.g. "127.0.0.1:4730", "10.0.0.2:4730", and runs
// the worker until SIGTERM (signal.NotifyContext).
func Example() {
	addr, stopServer := exampleServer()
	defer stopServer()

	w, err := worker.New(worker.Options{
		Servers:     []string{addr},
		Concurrency: 4,
		Functions: map[string]worker.FunctionConfig{
			"shout": {
				Timeout: 30 * time.Second, // CAN_DO_TIMEOUT
				Retries: 1,
				Handler: worker.HandlerFunc(func(ctx context.Context, j worker.Job) ([]byte, error) {
					if len(j.Payload()) == 0 {
						return nil, worker.Exception(errors.New("empty workload"))
					}
					if err := j.SendStatus(ctx, 1, 1); err != nil {
						return nil, err
					}
					return append(j.Payload(), '!'), nil
				}),
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// A client calls the function.
	c, err := gclient.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	job, err := c.Submit(ctx, "shout", []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	res, err := job.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", res.Output())

	stop()
	<-done // Run returns after the running jobs are finished
	// Output: hello!
}

// exampleServer starts a Gearman server in this process on a port the
// kernel picks and returns its address and a function that stops it.
func exampleServer() (addr string, stop func()) {
	srv, err := server.New(server.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}
}
