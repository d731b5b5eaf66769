package jobs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/worker"
)

func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd")) }

// target is a job server the handlers are served through end to end.
type target struct {
	name  string
	start func(t *testing.T) *testpeer.Process
}

// targets returns the C gearmand and our gserverd.
func targets() []target {
	return []target{
		{"gearmand", func(t *testing.T) *testpeer.Process { return testpeer.StartGearmand(t) }},
		{"gserverd", func(t *testing.T) *testpeer.Process { return testpeer.StartGserverd(t) }},
	}
}

// recJob is a worker.Job that records what the handler sends, for tests
// of handlers without a server (the end-to-end tests use real servers).
type recJob struct {
	handle, function, unique string
	payload                  []byte

	mu                     sync.Mutex
	status, data, warnings []string
}

var _ worker.Job = (*recJob)(nil)

func newJob(function, payload string) *recJob {
	return &recJob{handle: "H:test:1", function: function, unique: "u-1", payload: []byte(payload)}
}

func (j *recJob) Handle() string   { return j.handle }
func (j *recJob) Function() string { return j.function }
func (j *recJob) Unique() string   { return j.unique }
func (j *recJob) Payload() []byte  { return j.payload }
func (j *recJob) Server() string   { return "127.0.0.1:4730" }
func (j *recJob) Attempt() int     { return 1 }

func (j *recJob) SendData(_ context.Context, b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data = append(j.data, string(b))
	return nil
}

func (j *recJob) SendWarning(_ context.Context, b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.warnings = append(j.warnings, string(b))
	return nil
}

func (j *recJob) SendStatus(_ context.Context, n, d int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status = append(j.status, fmt.Sprintf("%d/%d", n, d))
	return nil
}

func (j *recJob) sent() (status, data, warnings []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.status...), append([]string(nil), j.data...), append([]string(nil), j.warnings...)
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
