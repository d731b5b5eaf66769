package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/monitor"
	"github.com/gworkerd/gworkerd/server/store"
)

// failStore is a store whose writes fail, as on a full disk.
type failStore struct{}

func (failStore) Add(context.Context, ...store.Job) error             { return errors.New("disk full") }
func (failStore) Delete(context.Context, ...store.Ref) error          { return nil }
func (failStore) Replay(context.Context, func(store.Job) error) error { return nil }
func (failStore) Close() error                                        { return nil }

// TestSubmitRefused: a submit the server refuses answers with the status
// of its ERROR: 503 for QUEUE_ERROR (maxqueue, the queue memory bound, a
// failed store write: no handle, no job), 400 for ARGUMENT_TOO_LARGE.
func TestSubmitRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mod    func(*server.Options)
		setup  func(t *testing.T, e *env)
		unique string
		code   int
		body   string
	}{
		{name: "maxqueue",
			setup: func(t *testing.T, e *env) {
				if resp, body := do(t, "POST", e.base+"/api/v1/functions/f/maxqueue?n=1", "", nil); resp.StatusCode != 200 {
					t.Fatalf("maxqueue: %s %q", resp.Status, body)
				}
				if resp, body := do(t, "POST", e.base+"/api/v1/jobs/f", "first", map[string]string{"X-Gearman-Background": "true"}); resp.StatusCode != 202 {
					t.Fatalf("first submit: %s %q", resp.Status, body)
				}
			},
			code: http.StatusServiceUnavailable, body: "QUEUE_ERROR: " + protocol.TextQueueFull},
		{name: "queue memory bound", mod: func(o *server.Options) { o.MaxQueueMemory = 100 },
			code: http.StatusServiceUnavailable, body: "QUEUE_ERROR: Job queue is full: memory bound"},
		{name: "store write fails", mod: func(o *server.Options) { o.Store = failStore{} },
			code: http.StatusServiceUnavailable, body: "QUEUE_ERROR: QUEUE_ERROR"},
		{name: "unique too long", unique: strings.Repeat("u", 65),
			code: http.StatusBadRequest, body: "ARGUMENT_TOO_LARGE: " + protocol.TextUniqueTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startWith(t, monitor.Options{}, true, tc.mod)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			before := e.srv.Stats()
			hdr := map[string]string{"X-Gearman-Background": "true"}
			if tc.unique != "" {
				hdr["X-Gearman-Unique"] = tc.unique
			}
			resp, body := do(t, "POST", e.base+"/api/v1/jobs/f", "payload", hdr)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%s %q, want %d with %q", resp.Status, body, tc.code, tc.body)
			}
			if h := resp.Header.Get("X-Gearman-Job-Handle"); h != "" {
				t.Errorf("a refused submit got a handle: %s", h)
			}
			if after := e.srv.Stats(); after.Jobs != before.Jobs || after.Submitted != before.Submitted {
				t.Errorf("jobs %d -> %d, submitted %d -> %d; want no change", before.Jobs, after.Jobs, before.Submitted, after.Submitted)
			}
		})
	}
}

// TestSubmitInProcess: a foreground submit over HTTP holds no Gearman
// connection while it waits, and a client that leaves takes its queued
// job with it, as a disconnecting Gearman client does.
func TestSubmitInProcess(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", e.base+"/api/v1/jobs/leave", strings.NewReader("x"))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered: " + resp.Status)
		}
		done <- err
	}()
	waitQueued(t, e, "leave", 1)
	if n := e.srv.Stats().Connections; n != 0 {
		t.Errorf("%d Gearman connections while a foreground HTTP submit waits, want 0", n)
	}
	_, body := do(t, "GET", e.base+"/api/v1/server", "", nil)
	var si monitor.ServerInfo
	if err := json.Unmarshal([]byte(body), &si); err != nil || si.Connections != 0 {
		t.Errorf("/api/v1/server while a foreground HTTP submit waits: %q, want 0 connections", body)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled request: %v", err)
	}
	waitQueued(t, e, "leave", 0)
	if s := e.srv.Stats(); s.Jobs != 0 {
		t.Errorf("%d jobs after the client left, want 0", s.Jobs)
	}
}
