package worker_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/gworkerd/gworkerd/worker"
)

// TestReconnectLogLevels: a server that cannot be reached is a warning
// once; the retries that follow, every backoff, log at debug level only,
// so that a server down does not fill the log.
func TestReconnectLogLevels(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused from now on
	log, hook := test.NewNullLogger()
	log.Level = logrus.DebugLevel
	w := newWorker(t, worker.Options{
		Servers:   []string{addr},
		Functions: map[string]worker.FunctionConfig{"f": {Handler: worker.HandlerFunc(func(context.Context, worker.Job) ([]byte, error) { return nil, nil })}},
		Logger:    log,
	})
	runWorker(t, w)
	attempts := func() (warn, debug int) {
		for _, e := range hook.AllEntries() {
			if !strings.Contains(e.Message, "cannot connect") {
				continue
			}
			if e.Level == logrus.DebugLevel {
				debug++
			} else {
				warn++
				if e.Level != logrus.WarnLevel {
					t.Errorf("attempt logged at %v", e.Level)
				}
			}
		}
		return warn, debug
	}
	eventually(t, 30*time.Second, "three retries", func() bool { _, d := attempts(); return d >= 3 })
	if warn, _ := attempts(); warn != 1 {
		t.Errorf("%d warnings for an unreachable server, want 1", warn)
	}
}
