package monitor_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/monitor"
	"github.com/gworkerd/gworkerd/server/store/embedded"
)

// want is one expected figure of /metrics.
type want struct {
	name   string
	labels []string
	value  float64
}

func check(t *testing.T, stage string, fams map[string]*dto.MetricFamily, wants []want) {
	t.Helper()
	for _, w := range wants {
		got, ok := value(fams, w.name, w.labels...)
		if !ok {
			t.Errorf("%s: %s%v missing", stage, w.name, w.labels)
			continue
		}
		if got != w.value {
			t.Errorf("%s: %s%v = %v, want %v", stage, w.name, w.labels, got, w.value)
		}
	}
}

// waitFor scrapes until the figures match (for effects the protocol does
// not acknowledge, like WORK_COMPLETE), then checks them once more.
func waitFor(t *testing.T, e *env, stage string, wants []want) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		fams := e.scrape(t)
		ok := true
		for _, w := range wants {
			if got, found := value(fams, w.name, w.labels...); !found || got != w.value {
				ok = false
			}
		}
		if ok || time.Now().After(deadline) {
			check(t, stage, fams, wants)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsMoveAsJobsRun(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)
	fn := "function=reverse"

	fams := e.scrape(t)
	if _, ok := value(fams, "gearman_jobs", fn); ok {
		t.Fatalf("gearman_jobs{%s} before any job", fn)
	}
	check(t, "start", fams, []want{
		{"gserverd_jobs_submitted_total", nil, 0},
		{"gserverd_connections", nil, 0},
	})

	w := e.dial(t)
	w.send(protocol.CanDo, "reverse")
	w.sync()
	c := e.dial(t)
	c.send(protocol.SubmitJobBg, "reverse", "", "abc")
	c.expect(protocol.JobCreated)
	c.send(protocol.SubmitJobHighBg, "reverse", "", "def")
	c.expect(protocol.JobCreated)
	check(t, "two queued", e.scrape(t), []want{
		{"gserverd_connections", nil, 2},
		{"gserverd_jobs", nil, 2},
		{"gserverd_jobs_submitted_total", nil, 2},
		{"gserverd_function_queued_jobs", []string{fn, "priority=normal"}, 1},
		{"gserverd_function_queued_jobs", []string{fn, "priority=high"}, 1},
		{"gserverd_function_queued_jobs", []string{fn, "priority=low"}, 0},
		{"gserverd_function_workers", []string{fn}, 1},
		{"gserverd_function_running_jobs", []string{fn}, 0},
		{"gearman_jobs", []string{fn}, 2},
		{"gearman_jobs_waiting", []string{fn}, 2},
		{"gearman_jobs_running", []string{fn}, 0},
		{"gearman_workers", []string{fn}, 1},
	})

	w.send(protocol.GrabJob)
	high := w.expect(protocol.JobAssign)
	check(t, "one running", e.scrape(t), []want{
		{"gserverd_running_jobs", nil, 1},
		{"gserverd_function_running_jobs", []string{fn}, 1},
		{"gserverd_function_queued_jobs", []string{fn, "priority=high"}, 0},
		{"gearman_jobs", []string{fn}, 2},
		{"gearman_jobs_waiting", []string{fn}, 1},
		{"gearman_jobs_running", []string{fn}, 1},
		{"gserverd_job_wait_seconds", []string{fn}, 1},
		{"gserverd_job_run_seconds", []string{fn}, 0},
	})
	if age, _ := value(e.scrape(t), "gserverd_function_oldest_queued_seconds", fn); age <= 0 || age > 60 {
		t.Errorf("oldest queued age %v s with one job queued, want a small positive age", age)
	}

	w.send(protocol.WorkFail, string(high.Arg(0)))
	w.send(protocol.GrabJob)
	normal := w.expect(protocol.JobAssign)
	w.send(protocol.WorkComplete, string(normal.Arg(0)), "cba")
	w.sync()
	check(t, "done", e.scrape(t), []want{
		{"gserverd_jobs_completed_total", nil, 1},
		{"gserverd_jobs_failed_total", nil, 1},
		{"gserverd_jobs_submitted_total", nil, 2},
		{"gserverd_jobs", nil, 0},
		{"gserverd_running_jobs", nil, 0},
		{"gearman_jobs", []string{fn}, 0},
		{"gearman_jobs_running", []string{fn}, 0},
		{"gserverd_job_wait_seconds", []string{fn}, 2},
		{"gserverd_job_run_seconds", []string{fn}, 2},
		{"gserverd_function_oldest_queued_seconds", []string{fn}, 0},
	})

	_ = w.nc.Close()
	waitFor(t, e, "worker gone", []want{
		{"gserverd_connections", nil, 1},
		{"gearman_workers", []string{fn}, 0},
	})
}

func TestReadyAfterAttach(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, false)
	if resp, _ := do(t, "GET", e.base+"/healthz", "", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz before attach: %s, want 200", resp.Status)
	}
	if resp, _ := do(t, "GET", e.base+"/readyz", "", nil); resp.StatusCode != 503 {
		t.Errorf("/readyz before attach: %s, want 503", resp.Status)
	}
	if _, ok := e.scrape(t)["gserverd_jobs"]; ok {
		t.Errorf("/metrics has gserverd_jobs before attach")
	}
	e.mon.Attach(e.srv)
	if resp, _ := do(t, "GET", e.base+"/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("/readyz after attach: %s, want 200", resp.Status)
	}
	if _, ok := e.scrape(t)["gserverd_jobs"]; !ok {
		t.Errorf("/metrics lacks gserverd_jobs after attach")
	}
}

// TestStoreMetrics runs the server on the real embedded store and checks
// that store writes show in the latency and batch histograms.
func TestStoreMetrics(t *testing.T) {
	t.Parallel()
	st, err := embedded.Open(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := startWith(t, monitor.Options{}, true, func(o *server.Options) { o.Store = st })
	check(t, "start", e.scrape(t), []want{
		{"gserverd_store_write_seconds", []string{"op=add"}, 0},
		{"gserverd_store_batch_jobs", []string{"op=add"}, 0},
		{"gserverd_store_errors_total", []string{"op=add"}, 0},
	})
	c := e.dial(t)
	for range 3 {
		c.send(protocol.SubmitJobBg, "durable", "", "x")
		c.expect(protocol.JobCreated)
	}
	fams := e.scrape(t)
	check(t, "three stored", fams, []want{
		{"gserverd_store_write_seconds", []string{"op=add"}, 3},
		{"gserverd_store_batch_jobs", []string{"op=add"}, 3},
	})
	if h := histogram(fams, "gserverd_store_batch_jobs", "op=add"); h == nil || h.GetSampleSum() != 3 {
		t.Errorf("batch sum %v, want 3 jobs", h)
	}
	if h := histogram(fams, "gserverd_store_write_seconds", "op=add"); h == nil || h.GetSampleSum() <= 0 {
		t.Errorf("write latency sum %v, want > 0", h)
	}
	w := e.dial(t)
	w.send(protocol.CanDo, "durable")
	for range 3 {
		w.send(protocol.GrabJob)
		p := w.expect(protocol.JobAssign)
		w.send(protocol.WorkComplete, string(p.Arg(0)), "")
	}
	w.sync()
	deadline := time.Now().Add(ioTimeout)
	for {
		h := histogram(e.scrape(t), "gserverd_store_batch_jobs", "op=delete")
		if h != nil && h.GetSampleSum() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deletes of 3 finished jobs not measured: %v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func histogram(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Histogram {
	return metric(fams, name, labels...).GetHistogram()
}
