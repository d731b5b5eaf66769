package monitor_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/monitor"
)

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

// TestJobsAPI lists, finds, cancels jobs and sets maxqueue over real HTTP
// against a server fed by raw Gearman connections.
func TestJobsAPI(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)
	c := e.dial(t)
	var handles []string
	for i := range 4 {
		c.send(protocol.SubmitJobBg, "thumb", "u"+strconv.Itoa(i), "payload")
		p := c.expect(protocol.JobCreated)
		handles = append(handles, string(p.Arg(0)))
	}
	c.send(protocol.SubmitJobHigh, "mail", "m1", "hello")
	mp := c.expect(protocol.JobCreated)
	mail := string(mp.Arg(0))
	w := e.dial(t)
	w.send(protocol.SetClientID, "mailer")
	w.send(protocol.CanDo, "mail")
	w.send(protocol.GrabJob)
	w.expect(protocol.JobAssign)

	get := func(path string, code int) string {
		t.Helper()
		resp, body := do(t, "GET", e.base+path, "", nil)
		if resp.StatusCode != code {
			t.Fatalf("GET %s: %s %q, want %d", path, resp.Status, body, code)
		}
		return body
	}

	for _, tc := range []struct {
		query       string
		total, rows int
		first       string
	}{
		{"", 5, 5, handles[0]},
		{"?function=thumb", 4, 4, handles[0]},
		{"?function=thumb&offset=1&limit=2", 4, 2, handles[1]},
		{"?state=running", 1, 1, mail},
		{"?function=mail&state=queued", 0, 0, ""},
		{"?function=nosuch", 0, 0, ""},
	} {
		page := decode[monitor.JobsPage](t, get("/api/v1/jobs"+tc.query, 200))
		if page.Total != tc.total || len(page.Jobs) != tc.rows || (tc.first != "" && page.Jobs[0].Handle != tc.first) {
			t.Errorf("jobs%s: %+v, want %d rows of %d starting %s", tc.query, page, tc.rows, tc.total, tc.first)
		}
	}
	for _, q := range []string{"?state=sleeping", "?limit=0", "?limit=1001", "?offset=-1", "?offset=x"} {
		get("/api/v1/jobs"+q, 400)
	}

	ji := decode[server.JobInfo](t, get("/api/v1/jobs/"+url.PathEscape(handles[2]), 200))
	if ji.Handle != handles[2] || ji.Function != "thumb" || ji.Unique != "u2" || ji.State != "queued" || !ji.Background || ji.Size != 7 {
		t.Errorf("job %s: %+v", handles[2], ji)
	}
	run := decode[server.JobInfo](t, get("/api/v1/jobs/"+url.PathEscape(mail), 200))
	if run.State != "running" || run.Priority != "high" || run.Worker == 0 || run.Clients != 1 {
		t.Errorf("running job: %+v", run)
	}
	get("/api/v1/jobs/H:test:999999", 404)
	if u := decode[server.JobInfo](t, get("/api/v1/functions/thumb/unique/u3", 200)); u.Handle != handles[3] {
		t.Errorf("by unique: %+v, want %s", u, handles[3])
	}
	get("/api/v1/functions/mail/unique/u3", 404)

	workers := decode[[]server.WorkerInfo](t, get("/api/v1/workers", 200))
	if len(workers) != 1 || workers[0].ClientID != "mailer" || len(workers[0].Running) != 1 || workers[0].Running[0] != mail {
		t.Errorf("workers: %+v", workers)
	}
	if all := decode[[]server.WorkerInfo](t, get("/api/v1/workers?all=1", 200)); len(all) != 2 {
		t.Errorf("workers?all=1: %d rows, want 2 (client and worker)", len(all))
	}

	// Cancel: a queued job goes; the running one fails its client now.
	resp, body := do(t, "POST", e.base+"/api/v1/jobs/"+url.PathEscape(handles[0])+"/cancel", "", nil)
	if resp.StatusCode != 200 || decode[monitor.CancelResult](t, body) != (monitor.CancelResult{Handle: handles[0], Cancelled: true}) {
		t.Fatalf("cancel: %s %q", resp.Status, body)
	}
	get("/api/v1/jobs/"+url.PathEscape(handles[0]), 404)
	if resp, _ := do(t, "POST", e.base+"/api/v1/jobs/"+url.PathEscape(handles[0])+"/cancel", "", nil); resp.StatusCode != 404 {
		t.Errorf("second cancel: %s, want 404", resp.Status)
	}
	if resp, _ := do(t, "GET", e.base+"/api/v1/jobs/"+url.PathEscape(handles[1])+"/cancel", "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("cancel with GET: %s, want 405", resp.Status)
	}
	if resp, _ := do(t, "POST", e.base+"/api/v1/jobs/"+url.PathEscape(mail)+"/cancel", "", nil); resp.StatusCode != 200 {
		t.Fatalf("cancel running: %s", resp.Status)
	}
	if p := c.expect(protocol.WorkFail); string(p.Arg(0)) != mail {
		t.Errorf("client got WORK_FAIL for %q, want %s", p.Arg(0), mail)
	}

	// maxqueue: thumb holds 3 jobs; a limit of 3 refuses the fourth.
	for _, q := range []string{"", "?n=-1", "?n=x", "?high=1&low=y"} {
		if resp, body := do(t, "POST", e.base+"/api/v1/functions/thumb/maxqueue"+q, "", nil); resp.StatusCode != 400 {
			t.Errorf("maxqueue%s: %s %q, want 400", q, resp.Status, body)
		}
	}
	resp, body = do(t, "POST", e.base+"/api/v1/functions/thumb/maxqueue?n=3", "", nil)
	if resp.StatusCode != 200 || decode[monitor.MaxQueueResult](t, body) != (monitor.MaxQueueResult{Function: "thumb", High: 3, Normal: 3, Low: 3}) {
		t.Fatalf("maxqueue: %s %q", resp.Status, body)
	}
	c.send(protocol.SubmitJobBg, "thumb", "", "more")
	if p := c.expect(protocol.Error); string(p.Arg(0)) != protocol.CodeQueueError {
		t.Errorf("submit over maxqueue: %v", p)
	}
	do(t, "POST", e.base+"/api/v1/functions/thumb/maxqueue?high=0&normal=0&low=0", "", nil)
	c.send(protocol.SubmitJobBg, "thumb", "", "more")
	c.expect(protocol.JobCreated)
}

// TestTokenProtectsActions: without the token the job actions get 401
// and change nothing.
func TestTokenProtectsActions(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{Token: "s3cret"}, true)
	c := e.dial(t)
	c.send(protocol.SubmitJobBg, "f", "", "x")
	p := c.expect(protocol.JobCreated)
	h := string(p.Arg(0))
	for _, tc := range []struct{ method, path string }{
		{"POST", "/api/v1/jobs/" + url.PathEscape(h) + "/cancel"},
		{"POST", "/api/v1/functions/f/maxqueue?n=1"},
		{"GET", "/api/v1/jobs"},
		{"GET", "/api/v1/jobs/" + url.PathEscape(h)},
		{"GET", "/api/v1/workers"},
	} {
		for _, auth := range []string{"", "Bearer wrong"} {
			hdr := map[string]string{}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			if resp, body := do(t, tc.method, e.base+tc.path, "", hdr); resp.StatusCode != 401 {
				t.Errorf("%s %s with %q: %s %q, want 401", tc.method, tc.path, auth, resp.Status, body)
			}
		}
	}
	st := e.srv.Stats()
	if st.Jobs != 1 || st.Functions[0].MaxQueue != [3]int{} {
		t.Fatalf("the server changed: %+v", st)
	}
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	if resp, _ := do(t, "POST", e.base+"/api/v1/jobs/"+url.PathEscape(h)+"/cancel", "", auth); resp.StatusCode != 200 || e.srv.Stats().Jobs != 0 {
		t.Errorf("cancel with the token: %s, jobs %d", resp.Status, e.srv.Stats().Jobs)
	}
}

// TestCrossSiteActionRejected: a cancel from another site's page gets 403
// and cancels nothing.
func TestCrossSiteActionRejected(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)
	c := e.dial(t)
	c.send(protocol.SubmitJobBg, "f", "", "x")
	p := c.expect(protocol.JobCreated)
	h := string(p.Arg(0))
	resp, _ := do(t, "POST", e.base+"/api/v1/jobs/"+url.PathEscape(h)+"/cancel", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != 403 || e.srv.Stats().Jobs != 1 {
		t.Errorf("cross-site cancel: %s, jobs %d; want 403 and the job kept", resp.Status, e.srv.Stats().Jobs)
	}
}
