package monitor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/worker"
	"github.com/gworkerd/gworkerd/worker/supervise"
	"github.com/gworkerd/gworkerd/worker/supervise/monitor"
)

// Environment of the "worker" child.
const (
	envServer   = "GWORKERD_MONITOR_TEST_SERVER"
	envFunction = "GWORKERD_MONITOR_TEST_FUNCTION"
)

// workerChild is a real Gearman worker (the worker package) serving one
// function, reporting to the master like gworkerd's children. It prints
// "worker ready pid N" at start and "job PAYLOAD" for each job on stdout.
// Payloads: "fail" fails the job (stderr "failing job fail");
// "hold:PATH" waits until PATH exists, then completes; "crash:PATH" exits with status 3 in the middle of the job when PATH
// does not exist yet (creating it, so that the redone job completes);
// anything else completes with the payload upper-cased.
func workerChild() int {
	rep := supervise.OpenReporter()
	fn := os.Getenv(envFunction)
	fmt.Printf("worker ready pid %d\n", os.Getpid())
	h := worker.HandlerFunc(func(_ context.Context, job worker.Job) ([]byte, error) {
		p := string(job.Payload())
		fmt.Printf("job %s\n", p)
		if p == "fail" {
			fmt.Fprintln(os.Stderr, "failing job fail")
			return nil, errors.New("asked to fail")
		}
		if path, ok := strings.CutPrefix(p, "hold:"); ok {
			for {
				if _, err := os.Stat(path); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond) // the test creates PATH; nothing to wait on but the file
			}
		}
		if path, ok := strings.CutPrefix(p, "crash:"); ok {
			if f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
				f.Close()
				fmt.Fprintln(os.Stderr, "crashing in the middle of a job")
				os.Exit(3)
			}
		}
		return []byte(strings.ToUpper(p)), nil
	})
	w, err := worker.New(worker.Options{
		Servers:   []string{os.Getenv(envServer)},
		Functions: map[string]worker.FunctionConfig{fn: {Handler: h}},
		OnEvent: func(ev worker.Event) {
			switch ev.Kind {
			case worker.Connected:
				rep.Ready()
			case worker.JobStarted:
				rep.JobStarted(ev.Handle, ev.Time)
			case worker.JobDone:
				rep.JobFinished(ev.Handle, true, nil, ev.Duration)
			case worker.JobFailed, worker.JobAbandoned:
				rep.JobFinished(ev.Handle, false, ev.Err, ev.Duration)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	hb, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rep.Run(hb, clock.Real{}, time.Second) }()
	err = w.Run(ctx)
	cancel()
	<-done
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startWorkers runs a supervisor of one "worker" child of fn served by
// the gearmand at addr, and a monitor with token "tok".
func startWorkers(t *testing.T, addr, fn string) *env {
	t.Helper()
	return startSpec(t, "tok", supervise.Options{
		Functions: []supervise.FunctionSpec{{
			Name: fn, Count: 1, Path: os.Args[0],
			Env: []string{helperEnv + "=worker", envServer + "=" + addr, envFunction + "=" + fn},
		}},
		Backoff: supervise.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	})
}

// submit runs one foreground job on the raw protocol and returns its
// result.
func submit(t *testing.T, addr, fn, data string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	res, err := testpeer.SubmitJob(ctx, addr, fn, data, false, false)
	if err != nil && !errors.Is(err, testpeer.ErrJobFailed) {
		t.Fatalf("job %q: %v", data, err)
	}
	return res, err
}

// TestMetricsCountJobsAndRestarts runs real jobs on a real worker child
// (completed, failed, and one that crashes the child and is redone by
// its successor) and reads the counters and the histogram in /metrics
// with the Prometheus text parser.
func TestMetricsCountJobsAndRestarts(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := startWorkers(t, gd.Addr, "upper")
	fn := "function=upper"
	e.waitGauge(t, 1, "gworkerd_children", fn, "state=running")
	for name, want := range map[string]float64{
		"gworkerd_child_restarts_total": 0,
		"gworkerd_job_duration_seconds": 0,
	} {
		if got := e.gauge(t, name, fn); got != want {
			t.Errorf("before any job: %s = %v, want %v", name, got, want)
		}
	}
	if got := e.gauge(t, "gworkerd_jobs_total", fn, "outcome=completed"); got != 0 {
		t.Errorf("before any job: completed = %v, want 0", got)
	}

	for _, p := range []string{"a", "b", "c"} {
		if got, err := submit(t, gd.Addr, "upper", p); err != nil || got != strings.ToUpper(p) {
			t.Fatalf("job %q = %q, %v", p, got, err)
		}
	}
	if _, err := submit(t, gd.Addr, "upper", "fail"); err == nil {
		t.Fatal(`job "fail" succeeded`)
	}
	e.waitGauge(t, 3, "gworkerd_jobs_total", fn, "outcome=completed")
	e.waitGauge(t, 1, "gworkerd_jobs_total", fn, "outcome=failed")
	e.waitGauge(t, 4, "gworkerd_job_duration_seconds", fn)
	if got := e.gauge(t, "gworkerd_child_restarts_total", fn); got != 0 {
		t.Errorf("restarts = %v before any crash, want 0", got)
	}

	crash := "crash:" + t.TempDir() + "/crashed"
	if got, err := submit(t, gd.Addr, "upper", crash); err != nil || got != strings.ToUpper(crash) {
		t.Fatalf("crashing job = %q, %v (want it redone by the next child)", got, err)
	}
	e.waitGauge(t, 1, "gworkerd_child_restarts_total", fn)
	e.waitGauge(t, 4, "gworkerd_jobs_total", fn, "outcome=completed")
	e.waitGauge(t, 1, "gworkerd_jobs_total", fn, "outcome=lost")
	e.waitGauge(t, 5, "gworkerd_job_duration_seconds", fn)
	e.waitGauge(t, 1, "gworkerd_children", fn, "state=running")
	// The old per-slot restart count of the new child is 1 as well; the
	// counter is the supervisor's and survives a scale to zero.
	if code, body := e.do(t, "POST", "/api/v1/functions/upper/scale?n=0", "tok"); code != 200 {
		t.Fatalf("scale 0: %d %s", code, body)
	}
	e.waitGauge(t, 0, "gworkerd_children", fn, "state=running")
	if got := e.gauge(t, "gworkerd_child_restarts_total", fn); got != 1 {
		t.Errorf("restarts after scale 0 = %v, want 1", got)
	}
	if got := e.gauge(t, "gworkerd_jobs_total", fn, "outcome=completed"); got != 4 {
		t.Errorf("completed after scale 0 = %v, want 4", got)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// openLogs opens the log stream of fn and returns its events on a
// channel, closed when the stream ends (the test's cleanup cancels it).
func openLogs(t *testing.T, e *env, fn, token string) <-chan sseEvent {
	t.Helper()
	return openLogsQuery(t, e, fn, "", token)
}

// openLogsQuery is openLogs with a query string ("tail=1").
func openLogsQuery(t *testing.T, e *env, fn, query, token string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/functions/"+fn+"/logs?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		resp.Body.Close()
		t.Fatalf("logs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return ch
}

// nextLine returns the next "line" event, failing on anything else.
func nextLine(t *testing.T, ch <-chan sseEvent) supervise.LogLine {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("log stream ended")
		}
		if ev.name != "line" {
			t.Fatalf("event %q %s, want a line", ev.name, ev.data)
		}
		var l supervise.LogLine
		if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
			t.Fatalf("line %q: %v", ev.data, err)
		}
		return l
	case <-time.After(ioTimeout):
		t.Fatal("no log line")
	}
	return supervise.LogLine{}
}

// TestLogStream reads the output of a real worker child over SSE: the
// lines printed before the client connected (backlog), then new ones as
// jobs run, with pid, stream and time.
func TestLogStream(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := startWorkers(t, gd.Addr, "echo")
	e.waitGauge(t, 1, "gworkerd_children", "function=echo", "state=running")
	if _, err := submit(t, gd.Addr, "echo", "before"); err != nil {
		t.Fatal(err)
	}
	st, err := e.sup.Status(context.Background())
	if err != nil || len(st.Children) != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	pid := st.Children[0].Pid

	ch := openLogs(t, e, "echo", "tok")
	want := func(stream, text string) {
		t.Helper()
		l := nextLine(t, ch)
		if l.Line != text || l.Stream != stream || l.Pid != pid || l.Function != "echo" || l.Time.IsZero() {
			t.Fatalf("line %+v, want %s %q from pid %d", l, stream, text, pid)
		}
	}
	// The backlog: everything the child printed so far.
	want("stdout", fmt.Sprintf("worker ready pid %d", pid))
	want("stdout", "job before")
	// Then live.
	if _, err := submit(t, gd.Addr, "echo", "live-1"); err != nil {
		t.Fatal(err)
	}
	want("stdout", "job live-1")
	// ?tail=1: only the last line kept, then live; ?tail=0: live only.
	tail1 := openLogsQuery(t, e, "echo", "tail=1", "tok")
	if l := nextLine(t, tail1); l.Line != "job live-1" {
		t.Fatalf("tail=1 starts with %q, want the last line, job live-1", l.Line)
	}
	tail0 := openLogsQuery(t, e, "echo", "tail=0", "tok")
	if _, err := submit(t, gd.Addr, "echo", "live-2"); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]<-chan sseEvent{"tail=0": tail0, "tail=1": tail1, "all": ch} {
		if l := nextLine(t, c); l.Line != "job live-2" {
			t.Fatalf("%s: next line %q, want job live-2", name, l.Line)
		}
	}
	if code, body := e.do(t, "GET", "/api/v1/functions/echo/logs?tail=-1", "tok"); code != 400 {
		t.Errorf("tail=-1: %d %q, want 400", code, body)
	}
	if _, err := submit(t, gd.Addr, "echo", "fail"); err == nil {
		t.Fatal(`job "fail" succeeded`)
	}
	// stdout and stderr are read apart: their lines may come in either
	// order.
	got := map[string]string{}
	for range 2 {
		l := nextLine(t, ch)
		got[l.Stream] = l.Line
	}
	if got["stdout"] != "job fail" || got["stderr"] != "failing job fail" {
		t.Fatalf("lines of the failing job: %q", got)
	}
}

// startSpec is start with the supervisor's options given.
func startSpec(t *testing.T, token string, opts supervise.Options) *env {
	t.Helper()
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 5 * time.Second
	}
	sup, err := supervise.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, sup, monitor.Options{Token: token})
}

// TestLogStreamLimit: past MaxLogStreams a log stream is refused with
// 503 while the open one goes on.
func TestLogStreamLimit(t *testing.T) {
	t.Parallel()
	sup, err := supervise.New(supervise.Options{
		Functions:   []supervise.FunctionSpec{{Name: "thumb", Count: 1, Path: os.Args[0], Env: []string{helperEnv + "=idle"}}},
		StopTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := serve(t, sup, monitor.Options{Token: "tok", MaxLogStreams: 1})
	e.waitGauge(t, 1, "gworkerd_children", "function=thumb", "state=running")
	ch := openLogs(t, e, "thumb", "tok")
	if l := nextLine(t, ch); l.Line != "idle child ready" {
		t.Fatalf("first line %+v", l)
	}
	if code, body := e.do(t, "GET", "/api/v1/functions/thumb/logs", "tok"); code != 503 {
		t.Errorf("second stream: %d %s, want 503", code, body)
	}
}
