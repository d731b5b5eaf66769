package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

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
	tp := expfmt.NewTextParser(model.LegacyValidation)
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

// TestBinaryHTTPLimits runs gserverd with --http-metrics-functions 2 and
// --http-max-streams 1: of 5 functions, /metrics shows the 2 busiest and
// sums the 3 others as function="_other"; a second event stream gets 503.
func TestBinaryHTTPLimits(t *testing.T) {
	t.Parallel()
	hport := testpeer.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(hport)
	p := testpeer.StartGserverd(t, "-q", "builtin", "--http-listen", "127.0.0.1:"+strconv.Itoa(hport),
		"--http-metrics-functions", "2", "--http-max-streams", "1")
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(method, path string) *http.Response {
		t.Helper()
		r, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader("x"))
		r.Header.Set("X-Gearman-Background", "true")
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, p.Output())
		}
		return resp
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp := get("GET", "/readyz")
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %s", resp.Status)
		}
	}
	// f1 gets 3 jobs and f2 2: the busiest; f3..f5 one each.
	for i, n := range []int{3, 2, 1, 1, 1} {
		for range n {
			if resp := get("POST", "/api/v1/jobs/f"+strconv.Itoa(i+1)); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("submit: %s", resp.Status)
			} else {
				resp.Body.Close()
			}
		}
	}
	resp := get("GET", "/metrics")
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var got []string
	for _, m := range fams["gearman_jobs"].GetMetric() {
		got = append(got, m.GetLabel()[0].GetValue()+"="+strconv.FormatFloat(m.GetGauge().GetValue(), 'g', -1, 64))
	}
	if strings.Join(got, ",") != "_other=3,f1=3,f2=2" {
		t.Errorf("gearman_jobs = %v, want [_other=3 f1=3 f2=2]", got)
	}

	first := get("GET", "/api/v1/events")
	defer first.Body.Close()
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first event stream: %s", first.Status)
	}
	second := get("GET", "/api/v1/events")
	body, _ := io.ReadAll(second.Body)
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "--http-max-streams") {
		t.Errorf("second event stream with --http-max-streams 1: %s %q, want 503 naming the flag", second.Status, body)
	}
}

var httpProtocolAddr = regexp.MustCompile(`HTTP protocol \(-r http\) listening.*?addr="?([^\s,"]+)`)

// TestBinaryHTTPProtocol runs gserverd with -r http --http-port 0 (the
// interop suite compares the answers with gearmand's): a background POST
// is answered at JOB_CREATED; SIGTERM with a foreground request waiting
// closes the HTTP port and its connection, and gserverd exits 0.
func TestBinaryHTTPProtocol(t *testing.T) {
	t.Parallel()
	p := startGserverd(t, "-q", "builtin", "--http-listen", "", "-r", "http", "--http-port", "0")
	var addr string
	eventually(t, "gserverd logs the HTTP protocol's address", func() bool {
		m := httpProtocolAddr.FindStringSubmatch(p.Output())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	exchange := func(req string) (string, error) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			return "", err
		}
		b, err := io.ReadAll(c)
		return string(b), err
	}
	got, err := exchange("POST /e2e HTTP/1.1\r\nX-Gearman-Background: true\r\nContent-Length: 1\r\n\r\nx")
	if err != nil || !regexp.MustCompile(`^HTTP/1\.0 200 OK\r\nX-Gearman-Job-Handle: H:[^\r]+:1\r\nX-Gearman-Command: JOB_CREATED\r\nContent-Length: 0\r\nServer: gserverd/[^\r]+\r\n\r\n$`).MatchString(got) {
		t.Fatalf("background POST: %q, %v", got, err)
	}

	waiting := make(chan error, 1)
	go func() {
		_, err := exchange("POST /nobody HTTP/1.1\r\nContent-Length: 1\r\n\r\nx")
		waiting <- err
	}()
	eventually(t, "the foreground job is queued", func() bool { return queueTotal(t, p.Addr, "nobody") == 1 })
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("gserverd did not exit on SIGTERM with an HTTP request waiting: %s", p.Output())
	}
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0: %s", code, p.Output())
	}
	if err := <-waiting; err != nil {
		t.Errorf("the waiting request's connection was not closed: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the HTTP port %s still accepts after the exit", addr)
	}
}

// TestBinaryHTTPPortInUse: a taken --http-port fails the start (status 1)
// with an error naming the flag.
func TestBinaryHTTPPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_, stderr, code := runBinary(t, nil, "-q", "builtin", "-L", "127.0.0.1", "-p", "0", "--http-listen", "", "-r", "http", "--http-port", port)
	if code != 1 || !strings.Contains(stderr, "flag --http-port: cannot listen") || !strings.Contains(stderr, "127.0.0.1:"+port) {
		t.Errorf("status %d, stderr %q; want 1 and an error naming --http-port", code, stderr)
	}
}

// TestBinaryHTTPHostCheck runs gserverd with --http-token-file: the token
// is not on its command line, and a request whose Host is a foreign name
// (a DNS-rebound page) is refused before anything runs, token or not,
// while the loopback address and localhost are served.
func TestBinaryHTTPHostCheck(t *testing.T) {
	t.Parallel()
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("s3cret-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hport := strconv.Itoa(testpeer.FreePort(t))
	p := testpeer.StartGserverd(t, "-q", "builtin", "--http-listen", "127.0.0.1:"+hport, "--http-token-file", tokFile)
	defer p.Stop()
	if cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/cmdline"); err != nil {
		t.Errorf("read cmdline: %v", err)
	} else if strings.Contains(string(cmdline), "s3cret-tok") {
		t.Errorf("the token is on the command line: %q", cmdline)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req := func(method, path, host string) (int, string) {
		t.Helper()
		r, _ := http.NewRequest(method, "http://127.0.0.1:"+hport+path, strings.NewReader("payload"))
		r.Host = host
		r.Header.Set("X-Gearman-Background", "true")
		r.Header.Set("Authorization", "Bearer s3cret-tok")
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, p.Output())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, _ := req("GET", "/readyz", "localhost:"+hport)
		if code == 200 {
			break
		}
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("/readyz: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, path := range []string{"/api/v1/jobs/rebound", "/api/v1/functions/rebound/maxqueue?n=1"} {
		if code, body := req("POST", path, "evil.example:"+hport); code != http.StatusMisdirectedRequest || !strings.Contains(body, "--http-allowed-hosts") {
			t.Errorf("POST %s as evil.example: %d %q, want 421 naming --http-allowed-hosts", path, code, body)
		}
	}
	if code, _ := req("GET", "/metrics", "evil.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("GET /metrics as evil.example: %d, want 421", code)
	}
	if code, body := req("GET", "/api/v1/functions", "127.0.0.1:"+hport); code != 200 || strings.Contains(body, "rebound") {
		t.Errorf("functions after the refused requests: %d %s, want no function rebound", code, body)
	}
	if code, _ := req("POST", "/api/v1/jobs/local", "127.0.0.1:"+hport); code != 202 {
		t.Errorf("submit as 127.0.0.1: %d, want 202", code)
	}
	if code, body := req("GET", "/api/v1/functions", "localhost:"+hport); code != 200 || !strings.Contains(body, `"local"`) {
		t.Errorf("functions as localhost: %d %s, want the job submitted as 127.0.0.1", code, body)
	}
}
