package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// TestHTTPScale runs the gworkerd daemon with http_listen and http_token,
// scales a function over HTTP (refused without the token) and reads the
// new child in /metrics.
func TestHTTPScale(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  rev:\n    count: 1\n", 5*time.Second)
	base := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	e.appendConfig("http_listen: " + base + "\nhttp_token: tok\n")
	e.script("rev", "rev")
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 15*time.Second, "rev running", func() bool { return len(e.running("rev")) == 1 })

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	post := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+base+"/api/v1/functions/rev/scale?n=2", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST scale: %v\nlog:\n%s", err, e.logTail())
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != 401 {
		t.Errorf("scale without the token: %d, want 401", code)
	}
	if st := e.status(); len(st.Functions) != 1 || st.Functions[0].Desired != 1 {
		t.Fatalf("refused scale changed the supervisor: %+v", st.Functions)
	}
	if code := post("tok"); code != 200 {
		t.Fatalf("scale with the token: %d", code)
	}
	waitFor(t, 15*time.Second, "two rev children", func() bool { return len(e.running("rev")) == 2 })
	resp, err := hc.Get("http://" + base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	running := -1.0
	for _, m := range fams["gworkerd_children"].GetMetric() {
		var fn, state string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "function":
				fn = l.GetValue()
			case "state":
				state = l.GetValue()
			}
		}
		if fn == "rev" && state == "running" {
			running = m.GetGauge().GetValue()
		}
	}
	if running != 2 {
		t.Errorf("gworkerd_children{function=rev,state=running} = %v, want 2", running)
	}
}

// TestHTTPLogsAndCounters runs the gworkerd daemon with a job script:
// its children's output streams over /api/v1/functions/rev/logs (refused
// without the token), first the kept lines then live ones, and the
// counters of /metrics follow a completed job, a failed one and a killed
// child.
func TestHTTPLogsAndCounters(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  rev:\n    count: 1\n", 5*time.Second)
	base := "http://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	e.appendConfig("http_listen: " + strings.TrimPrefix(base, "http://") + "\nhttp_token: tok\n")
	e.script("rev", `in=$(cat)
if [ "$in" = bad ]; then echo "bad input: $in" >&2; exit 1; fi
printf '%s' "$in" | rev`)
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 15*time.Second, "rev running", func() bool { return len(e.running("rev")) == 1 })
	child := e.running("rev")[0]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := submit(ctx, gd.Addr, "rev", "abc", false); err != nil || out != "cba" {
		t.Fatalf("rev abc = %q, %v\nlog:\n%s", out, err, e.logTail())
	}
	if _, err := submit(ctx, gd.Addr, "rev", "bad", false); err == nil {
		t.Fatal("rev bad succeeded")
	}

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", base+"/api/v1/functions/rev/logs", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("logs without the token: %d, want 401", resp.StatusCode)
	}

	// The stream, with the token: read by one goroutine until the end of
	// the test.
	sctx, scancel := context.WithCancel(ctx)
	req, _ = http.NewRequestWithContext(sctx, "GET", base+"/api/v1/functions/rev/logs", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("logs: %d", resp.StatusCode)
	}
	lines := make(chan supervise.LogLine, 1024)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var l supervise.LogLine
				if json.Unmarshal([]byte(d), &l) == nil {
					lines <- l
				}
			}
		}
	}()
	defer func() { scancel(); resp.Body.Close(); <-readDone }()
	// expect reads lines until one of pid on stderr contains every part.
	expect := func(pid int, parts ...string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("log stream ended; wanted %q from pid %d", parts, pid)
				}
				all := l.Pid == pid && l.Stream == "stderr" && l.Function == "rev"
				for _, p := range parts {
					all = all && strings.Contains(l.Line, p)
				}
				if all {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no log line %q from pid %d", parts, pid)
			}
		}
	}
	// The kept lines: the child registered, and the failed job's stderr.
	expect(child, "registered with server")
	expect(child, "job failed", "bad input: bad")

	scrape := func(name string, labels ...string) float64 { return metric(t, base, name, labels...) }
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gworkerd_jobs_total", []string{"function=rev", "outcome=completed"}, 1},
		{"gworkerd_jobs_total", []string{"function=rev", "outcome=failed"}, 1},
		{"gworkerd_job_duration_seconds", []string{"function=rev"}, 2},
		{"gworkerd_child_restarts_total", []string{"function=rev"}, 0},
	} {
		// The child reports a job's end after sending its result: wait.
		waitFor(t, 15*time.Second, c.name+strings.Join(c.labels, ","), func() bool { return scrape(c.name, c.labels...) == c.want })
	}

	// The failed job is logged once, structured, at warning level: not
	// again inside a "child: ..." entry.
	var failedLines []string
	for _, le := range e.logEntries() {
		if strings.Contains(le.msg, "job failed") {
			failedLines = append(failedLines, le.fields["level"]+" "+le.msg)
		}
	}
	if len(failedLines) != 1 || failedLines[0] != "warning job failed" {
		t.Errorf("job failed logged as %q, want once, structured, at warning level\n%s", failedLines, e.logTail())
	}

	// A killed child is a restart; its successor's lines come live.
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a new rev child", func() bool {
		r := e.running("rev")
		return len(r) == 1 && r[0] != child
	})
	expect(e.running("rev")[0], "registered with server")
	if got := scrape("gworkerd_child_restarts_total", "function=rev"); got != 1 {
		t.Errorf("restarts after a kill = %v, want 1", got)
	}
	if got := scrape("gworkerd_jobs_total", "function=rev", "outcome=completed"); got != 1 {
		t.Errorf("completed after the kill = %v, want 1 (a counter)", got)
	}
}

// TestHTTPHostCheck runs the gworkerd daemon with http_token_file and
// http_allowed_hosts: a scale whose Host is a foreign name (a DNS-rebound
// page) is refused and changes nothing, even with the token; the
// loopback address, localhost and the allowed name are served.
func TestHTTPHostCheck(t *testing.T) {
	t.Parallel()
	gs := testpeer.StartGserverd(t, "-q", "builtin", "--http-listen", "")
	defer gs.Stop()
	e := newEnv(t, gs.Addr, "  rev:\n    count: 1\n", 5*time.Second)
	port := strconv.Itoa(testpeer.FreePort(t))
	tokFile := filepath.Join(e.dir, "token")
	if err := os.WriteFile(tokFile, []byte("s3cret-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.appendConfig("http_listen: 127.0.0.1:" + port + "\nhttp_token_file: " + tokFile + "\nhttp_allowed_hosts: [dash.example]\n")
	e.script("rev", "rev")
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 15*time.Second, "rev running", func() bool { return len(e.running("rev")) == 1 })
	if cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err != nil {
		t.Errorf("read cmdline: %v", err)
	} else if strings.Contains(string(cmdline), "s3cret-tok") {
		t.Errorf("the token is on the command line: %q", cmdline)
	}

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	scale := func(host string, n int) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://127.0.0.1:"+port+"/api/v1/functions/rev/scale?n="+strconv.Itoa(n), nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer s3cret-tok")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST scale: %v\nlog:\n%s", err, e.logTail())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, host := range []string{"evil.example:" + port, "evil.example", "localhost.evil.example:" + port} {
		if code, body := scale(host, 3); code != http.StatusMisdirectedRequest || !strings.Contains(body, "http_allowed_hosts") {
			t.Errorf("scale as %s: %d %q, want 421 naming http_allowed_hosts", host, code, body)
		}
	}
	if st := e.status(); len(st.Functions) != 1 || st.Functions[0].Desired != 1 {
		t.Fatalf("refused scale changed the supervisor: %+v", st.Functions)
	}
	for i, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "dash.example:" + port} {
		if code, body := scale(host, 2+i); code != 200 {
			t.Fatalf("scale as %s: %d %q, want 200", host, code, body)
		}
		if st := e.status(); len(st.Functions) != 1 || st.Functions[0].Desired != 2+i {
			t.Fatalf("scale as %s: %+v, want desired %d", host, st.Functions, 2+i)
		}
	}
}
