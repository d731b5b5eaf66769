package worker_test

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"time"

	"github.com/gworkerd/gworkerd/worker"
)

// Example shows a worker serving one function on two servers. It needs
// running servers, so it is compiled but not run.
func Example() {
	w, err := worker.New(worker.Options{
		Servers:     []string{"127.0.0.1:4730", "127.0.0.1:4731"},
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
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	_ = w.Run(ctx) // returns after the running jobs are finished
}
