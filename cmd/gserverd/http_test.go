package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestLoopbackAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ listen, want string }{
		{"127.0.0.1:0", "127.0.0.1:"},
		{"0.0.0.0:0", "127.0.0.1:"},
		{"[::]:0", "127.0.0.1:"},
	} {
		ln, err := net.Listen("tcp", tc.listen)
		if err != nil {
			t.Logf("%s: %v (no such address family here)", tc.listen, err)
			continue
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		got := loopbackAddr([]net.Listener{ln})
		ln.Close()
		if got != tc.want+port {
			t.Errorf("loopbackAddr(%s) = %q, want %q", tc.listen, got, tc.want+port)
		}
	}
	if got := loopbackAddr(nil); got != "" {
		t.Errorf("loopbackAddr(nil) = %q", got)
	}
}

// TestBinaryHTTPEndpoint runs gserverd with --http-listen and --http-token
// and drives its HTTP endpoint: ready, 401 without the token, a submit
// over HTTP that /metrics then counts.
func TestBinaryHTTPEndpoint(t *testing.T) {
	t.Parallel()
	hport := testpeer.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(hport)
	p := testpeer.StartGserverd(t, "-q", "builtin", "--http-listen", "127.0.0.1:"+strconv.Itoa(hport), "--http-token", "tok")
	defer p.Stop()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req := func(method, path, token string) *http.Response {
		t.Helper()
		r, _ := http.NewRequest(method, base+path, strings.NewReader("payload"))
		r.Header.Set("X-Gearman-Background", "true")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, p.Output())
		}
		resp.Body.Close()
		return resp
	}
	// The Gearman port is bound before the replay; /readyz turns 200 after it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp := req("GET", "/readyz", "")
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("/readyz: %s", resp.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp := req("POST", "/api/v1/jobs/e2e", ""); resp.StatusCode != 401 {
		t.Errorf("submit without the token: %s, want 401", resp.Status)
	}
	if resp := req("POST", "/api/v1/jobs/e2e", "tok"); resp.StatusCode != 202 || !strings.HasPrefix(resp.Header.Get("X-Gearman-Job-Handle"), "H:") {
		t.Errorf("submit with the token: %s, handle %q", resp.Status, resp.Header.Get("X-Gearman-Job-Handle"))
	}
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tp expfmt.TextParser
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var got []string
	for _, m := range fams["gearman_jobs"].GetMetric() {
		got = append(got, m.GetLabel()[0].GetValue()+"="+strconv.FormatFloat(m.GetGauge().GetValue(), 'g', -1, 64))
	}
	if strings.Join(got, ",") != "e2e=1" {
		t.Errorf("gearman_jobs = %v, want [e2e=1] (only the job submitted with the token)", got)
	}
	if v := fams["gserverd_jobs_submitted_total"].GetMetric(); len(v) != 1 || v[0].GetCounter().GetValue() != 1 {
		t.Errorf("gserverd_jobs_submitted_total = %v, want 1", v)
	}
}
