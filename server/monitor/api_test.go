package monitor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/monitor"
)

func TestAPIServerAndFunctions(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{Version: "v-test"}, true)
	c := e.dial(t)
	c.send(protocol.SubmitJobLowBg, "thumb", "u1", "x")
	c.expect(protocol.JobCreated)

	resp, body := do(t, "GET", e.base+"/api/v1/server", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/server: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var si monitor.ServerInfo
	if err := json.Unmarshal([]byte(body), &si); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if si.Version != "v-test" || !si.Ready || si.Submitted != 1 || si.Jobs != 1 || si.Functions != 1 || si.Connections != 1 {
		t.Errorf("server info = %+v", si)
	}

	resp, body = do(t, "GET", e.base+"/api/v1/functions", "", nil)
	var fns []monitor.FunctionInfo
	if err := json.Unmarshal([]byte(body), &fns); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /api/v1/functions: %s %v %q", resp.Status, err, body)
	}
	if len(fns) != 1 || fns[0].Name != "thumb" || fns[0].Low != 1 || fns[0].Queued != 1 || fns[0].Total != 1 {
		t.Errorf("functions = %+v", fns)
	}
}

func TestSubmitOverHTTP(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)

	// Background, high priority: 202 with the handle, queued as high.
	resp, body := do(t, "POST", e.base+"/api/v1/jobs/resize", "img", map[string]string{
		"X-Gearman-Background": "true", "X-Gearman-Priority": "high", "X-Gearman-Unique": "k1",
	})
	var res monitor.SubmitResult
	if err := json.Unmarshal([]byte(body), &res); resp.StatusCode != http.StatusAccepted || err != nil {
		t.Fatalf("background submit: %s %v %q", resp.Status, err, body)
	}
	if !strings.HasPrefix(res.Handle, "H:test:") || resp.Header.Get("X-Gearman-Job-Handle") != res.Handle {
		t.Errorf("handle %q, header %q", res.Handle, resp.Header.Get("X-Gearman-Job-Handle"))
	}
	st := e.srv.Stats()
	if len(st.Functions) != 1 || st.Functions[0].Name != "resize" || st.Functions[0].High != 1 {
		t.Errorf("after background submit: %+v", st.Functions)
	}
	w := e.dial(t)
	w.send(protocol.CanDo, "resize")
	w.send(protocol.GrabJobUniq)
	p := w.expect(protocol.JobAssignUniq)
	if string(p.Arg(2)) != "k1" || string(p.Arg(3)) != "img" {
		t.Errorf("assigned %q, want unique k1 payload img", p.Args)
	}
	w.send(protocol.WorkComplete, string(p.Arg(0)), "")

	// Foreground: the answer is the result, WORK_DATA first.
	type answer struct {
		resp *http.Response
		body string
	}
	got := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", e.base+"/api/v1/jobs/resize", strings.NewReader("abc"))
		resp, err := client.Do(req)
		if err != nil {
			got <- answer{}
			return
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
		got <- answer{resp, sb.String()}
	}()
	waitQueued(t, e, "resize", 1)
	w.send(protocol.GrabJob)
	p = w.expect(protocol.JobAssign)
	w.send(protocol.WorkData, string(p.Arg(0)), "c")
	w.send(protocol.WorkComplete, string(p.Arg(0)), "ba")
	a := <-got
	if a.resp == nil || a.resp.StatusCode != 200 || a.body != "cba" || a.resp.Header.Get("X-Gearman-Job-Handle") != string(p.Arg(0)) {
		t.Errorf("foreground submit: %+v %q", a.resp, a.body)
	}

	// Foreground WORK_FAIL: 500.
	go func() {
		resp, body := do(t, "POST", e.base+"/api/v1/jobs/resize", "x", nil)
		got <- answer{resp, body}
	}()
	waitQueued(t, e, "resize", 1)
	w.send(protocol.GrabJob)
	p = w.expect(protocol.JobAssign)
	w.send(protocol.WorkFail, string(p.Arg(0)))
	if a := <-got; a.resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("failed job: %s %q, want 500", a.resp.Status, a.body)
	}

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		code               int
	}{
		{"bad priority", "POST", "/api/v1/jobs/resize", map[string]string{"X-Gearman-Priority": "urgent", "X-Gearman-Background": "true"}, 400},
		{"bad background", "POST", "/api/v1/jobs/resize", map[string]string{"X-Gearman-Background": "maybe"}, 400},
		{"PUT on action", "PUT", "/api/v1/jobs/resize", nil, 405},
		{"GET reads a handle, submits nothing", "GET", "/api/v1/jobs/resize", nil, 404},
		{"POST on read", "POST", "/api/v1/server", nil, 405},
		{"cross-site", "POST", "/api/v1/jobs/resize", map[string]string{"Sec-Fetch-Site": "cross-site", "X-Gearman-Background": "true"}, 403},
		{"foreign origin", "POST", "/api/v1/jobs/resize", map[string]string{"Origin": "http://evil.example", "X-Gearman-Background": "true"}, 403},
	} {
		before := e.srv.Stats().Submitted
		resp, body := do(t, tc.method, e.base+tc.path, "x", tc.hdr)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %s %q, want %d", tc.name, resp.Status, body, tc.code)
		}
		if after := e.srv.Stats().Submitted; after != before {
			t.Errorf("%s: submitted %d -> %d, want no change", tc.name, before, after)
		}
	}
}

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{Token: "s3cret"}, true)
	for _, tc := range []struct {
		name, method, path, auth string
		code                     int
	}{
		{"no token read", "GET", "/api/v1/server", "", 401},
		{"no token functions", "GET", "/api/v1/functions", "", 401},
		{"no token events", "GET", "/api/v1/events", "", 401},
		{"no token submit", "POST", "/api/v1/jobs/f", "", 401},
		{"wrong token submit", "POST", "/api/v1/jobs/f", "Bearer nope", 401},
		{"basic auth submit", "POST", "/api/v1/jobs/f", "Basic czNjcmV0", 401},
		{"token read", "GET", "/api/v1/server", "Bearer s3cret", 200},
		{"metrics open", "GET", "/metrics", "", 200},
		{"page open", "GET", "/", "", 200},
	} {
		hdr := map[string]string{"X-Gearman-Background": "true"}
		if tc.auth != "" {
			hdr["Authorization"] = tc.auth
		}
		resp, body := do(t, tc.method, e.base+tc.path, "x", hdr)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %s %q, want %d", tc.name, resp.Status, body, tc.code)
		}
		if st := e.srv.Stats(); st.Submitted != 0 || len(st.Functions) != 0 {
			t.Fatalf("%s: the server changed: %+v", tc.name, st)
		}
	}
	resp, body := do(t, "POST", e.base+"/api/v1/jobs/f", "x", map[string]string{"Authorization": "Bearer s3cret", "X-Gearman-Background": "true"})
	if resp.StatusCode != http.StatusAccepted || e.srv.Stats().Submitted != 1 {
		t.Errorf("submit with the token: %s %q, submitted %d", resp.Status, body, e.srv.Stats().Submitted)
	}
}

func TestEventsStream(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/events", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	next := func() monitor.Snapshot {
		t.Helper()
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s monitor.Snapshot
				if err := json.Unmarshal([]byte(d), &s); err != nil {
					t.Fatalf("event %q: %v", d, err)
				}
				return s
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return monitor.Snapshot{}
	}
	if s := next(); s.Server.Submitted != 0 || !s.Server.Ready {
		t.Fatalf("first snapshot %+v", s.Server)
	}
	c := e.dial(t)
	c.send(protocol.SubmitJobBg, "mail", "", "x")
	c.expect(protocol.JobCreated)
	for {
		s := next()
		if s.Server.Submitted == 1 {
			if len(s.Functions) != 1 || s.Functions[0].Name != "mail" || s.Functions[0].Normal != 1 {
				t.Errorf("functions in snapshot: %+v", s.Functions)
			}
			break
		}
	}
	// Shutdown of the monitor ends the stream (the cleanup checks Serve
	// returns; goleak checks the handler goroutine is gone).
	sctx, scancel := context.WithTimeout(context.Background(), ioTimeout)
	defer scancel()
	if err := e.mon.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown with an open stream: %v", err)
	}
	for sc.Scan() {
	}
}

// waitQueued waits until function fn has n normal jobs queued.
func waitQueued(t *testing.T, e *env, fn string, n int) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for time.Now().Before(deadline) {
		for _, f := range e.srv.Stats().Functions {
			if f.Name == fn && f.Normal == n {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never had %d queued jobs: %+v", fn, n, e.srv.Stats().Functions)
}

func TestSubmitUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   monitor.Options
		attach bool
	}{
		{"not ready (replay running)", monitor.Options{}, false},
		{"submitting off", monitor.Options{NoSubmit: true}, true},
	} {
		e := start(t, tc.opts, tc.attach)
		resp, body := do(t, "POST", e.base+"/api/v1/jobs/f", "x", map[string]string{"X-Gearman-Background": "true"})
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: %s %q, want 503", tc.name, resp.Status, body)
		}
		if st := e.srv.Stats(); st.Submitted != 0 {
			t.Errorf("%s: submitted %d", tc.name, st.Submitted)
		}
	}
}
