package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/worker/supervise"
	"github.com/gworkerd/gworkerd/worker/supervise/monitor"
)

const helperEnv = "GWORKERD_MONITOR_TEST_CHILD"

// TestMain doubles as the supervised child (the helper-process pattern):
// "idle" reports ready and waits for SIGTERM; "worker" serves jobs (see
// workerChild).
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "idle":
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Println("idle child ready")
		supervise.OpenReporter().Ready()
		<-term
		os.Exit(0)
	case "worker":
		os.Exit(workerChild())
	}
	goleak.VerifyTestMain(m)
}

const ioTimeout = 20 * time.Second

var client = &http.Client{Timeout: ioTimeout, Transport: &http.Transport{DisableKeepAlives: true}}

type env struct {
	sup  *supervise.Supervisor
	base string
}

func start(t *testing.T, token string) *env {
	t.Helper()
	sup, err := supervise.New(supervise.Options{
		Functions: []supervise.FunctionSpec{{
			Name: "thumb", Count: 1, Path: os.Args[0], Env: []string{helperEnv + "=idle"},
		}},
		StopTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, sup, monitor.Options{Token: token})
}

// serve runs sup and a monitor of it until the test ends.
func serve(t *testing.T, sup *supervise.Supervisor, opts monitor.Options) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- sup.Run(ctx) }()
	mon := monitor.New(sup, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- mon.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), ioTimeout)
		defer scancel()
		if err := mon.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-serveDone; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		cancel()
		<-runDone
	})
	return &env{sup: sup, base: "http://" + ln.Addr().String()}
}

func (e *env) do(t *testing.T, method, path, token string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gauge scrapes /metrics and returns the value of one gauge or counter,
// or the sample count of a histogram ("k=v" labels); -1 when missing.
func (e *env) gauge(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := client.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return find(fams[name], labels)
}

func find(f *dto.MetricFamily, labels []string) float64 {
next:
	for _, m := range f.GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || (lp.GetName() == k && lp.GetValue() == v)
			}
			if !ok {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// waitGauge scrapes until the gauge has the value.
func (e *env) waitGauge(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		got := e.gauge(t, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsAndActions(t *testing.T) {
	t.Parallel()
	e := start(t, "tok")
	fn := "function=thumb"
	e.waitGauge(t, 1, "gworkerd_children", fn, "state=running")
	if got := e.gauge(t, "gworkerd_desired_children", fn); got != 1 {
		t.Errorf("desired %v, want 1", got)
	}
	if got := e.gauge(t, "gworkerd_supervisor_up"); got != 1 {
		t.Errorf("up %v, want 1", got)
	}

	// Refused requests change nothing.
	for _, tc := range []struct {
		name, method, path, token string
		hdr                       []string
		code                      int
	}{
		{"no token", "POST", "/api/v1/functions/thumb/scale?n=2", "", nil, 401},
		{"wrong token", "POST", "/api/v1/functions/thumb/scale?n=2", "nope", nil, 401},
		{"status without token", "GET", "/api/v1/status", "", nil, 401},
		{"logs without token", "GET", "/api/v1/functions/thumb/logs", "", nil, 401},
		{"logs with a wrong token", "GET", "/api/v1/functions/thumb/logs", "nope", nil, 401},
		{"logs of an unknown function", "GET", "/api/v1/functions/nope/logs", "tok", nil, 404},
		{"cross-site", "POST", "/api/v1/functions/thumb/scale?n=2", "tok", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"foreign origin", "POST", "/api/v1/functions/thumb/stop", "tok", []string{"Origin", "http://evil.example"}, 403},
		{"GET action", "GET", "/api/v1/functions/thumb/stop", "tok", nil, 405},
		{"bad count", "POST", "/api/v1/functions/thumb/scale?n=-1", "tok", nil, 400},
		{"unknown action", "POST", "/api/v1/functions/thumb/explode", "tok", nil, 404},
		{"unknown function", "POST", "/api/v1/functions/nope/stop", "tok", nil, 404},
	} {
		if code, body := e.do(t, tc.method, tc.path, tc.token, tc.hdr...); code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.code)
		}
		st, err := e.sup.Status(context.Background())
		if err != nil || len(st.Functions) != 1 || st.Functions[0].Desired != 1 || st.Functions[0].Stopped {
			t.Fatalf("%s: supervisor changed: %+v %v", tc.name, st.Functions, err)
		}
	}

	if code, body := e.do(t, "POST", "/api/v1/functions/thumb/scale?n=2", "tok"); code != 200 {
		t.Fatalf("scale: %d %q", code, body)
	}
	e.waitGauge(t, 2, "gworkerd_children", fn, "state=running")
	code, body := e.do(t, "GET", "/api/v1/status", "tok")
	var st supervise.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("status: %d %v %q", code, err, body)
	}
	if len(st.Children) != 2 || st.Children[0].Pid == 0 || st.Children[1].Pid == 0 || st.Functions[0].Desired != 2 {
		t.Errorf("status after scale: %+v", st)
	}

	if code, body := e.do(t, "POST", "/api/v1/functions/thumb/stop", "tok"); code != 200 {
		t.Fatalf("stop: %d %q", code, body)
	}
	e.waitGauge(t, 0, "gworkerd_children", fn, "state=running")
	e.waitGauge(t, 0, "gworkerd_desired_children", fn)
	if code, body := e.do(t, "POST", "/api/v1/functions/thumb/start", "tok"); code != 200 {
		t.Fatalf("start: %d %q", code, body)
	}
	e.waitGauge(t, 2, "gworkerd_children", fn, "state=running")
}
