package monitor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/monitor"
)

// register makes worker connections CAN_DO n functions named
// fnName(0..n-1), at most perConn each (one write per connection), and
// waits until the server has them. (Several connections: a connection's
// teardown is quadratic in its own abilities, issue 10 item 6.)
func register(t *testing.T, e *env, n int) {
	t.Helper()
	const perConn = 1000
	for first := 0; first < n; first += perConn {
		w := e.dial(t)
		var buf []byte
		for i := first; i < min(n, first+perConn); i++ {
			buf = protocol.AppendPacketString(buf, protocol.Req, protocol.CanDo, fnName(i))
		}
		if _, err := w.nc.Write(buf); err != nil {
			t.Fatalf("write CAN_DO: %v", err)
		}
		w.sync()
	}
	if got := len(e.srv.Stats().Functions); got != n {
		t.Fatalf("%d functions registered, want %d", got, n)
	}
}

func fnName(i int) string { return fmt.Sprintf("fn-%06d", i) }

// TestMetricsCardinalityBounded registers many distinct functions and
// checks that /metrics has per-function series for at most N of them (the
// busiest: those given jobs) plus one function="_other" that sums the
// rest, in a body whose size does not grow with the functions. Before the
// bound, 100k functions made a body of hundreds of MB.
func TestMetricsCardinalityBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		functions int
		n         int // Options.MetricsFunctions; 0: the default
		wantOwn   int // functions with their own series
	}{
		{"few functions, all their own", 5, 0, 5},
		{"100k functions, default bound", 100_000, 0, monitor.DefaultMetricsFunctions},
		{"1000 functions, bound 3", 1000, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, monitor.Options{MetricsFunctions: tc.n}, true)
			register(t, e, tc.functions)
			// The last two registered are the busiest: one job each.
			busy := []string{fnName(tc.functions - 1), fnName(tc.functions - 2)}
			c := e.dial(t)
			for _, f := range busy {
				c.send(protocol.SubmitJobBg, f, "", "x")
				c.expect(protocol.JobCreated)
			}

			// Each series is a few hundred bytes, a histogram a few KB;
			// the Go and process collectors add some 10 KB.
			limit := int64(64<<10 + (tc.wantOwn+1)*8<<10)
			body := scrapeLimited(t, e, limit)
			p := expfmt.NewTextParser(model.LegacyValidation)
			fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("parse /metrics: %v", err)
			}
			t.Logf("%d functions: /metrics is %d bytes", tc.functions, len(body))

			folded := tc.functions - tc.wantOwn
			for name, f := range fams {
				labels := map[string]bool{}
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "function" {
							labels[l.GetValue()] = true
						}
					}
				}
				want := tc.wantOwn
				if folded > 0 {
					want++ // _other
				}
				if name == "gserverd_function_max_queue" {
					want = tc.wantOwn // no _other: a sum of limits means nothing
				}
				if len(labels) > 0 && len(labels) != want {
					t.Errorf("%s: %d function label values, want %d", name, len(labels), want)
				}
			}
			for _, f := range busy {
				check(t, "busy "+f, fams, []want{{"gserverd_function_queued_jobs", []string{"function=" + f, "priority=normal"}, 1}})
			}
			check(t, "totals", fams, []want{{"gserverd_functions", nil, float64(tc.functions)}})
			other := "function=" + monitor.OtherFunctions
			if folded == 0 {
				if _, ok := value(fams, "gearman_workers", other); ok {
					t.Errorf("gearman_workers{%s} with every function shown", other)
				}
				return
			}
			check(t, "_other", fams, []want{
				{"gearman_workers", []string{other}, float64(folded)},
				{"gserverd_function_workers", []string{other}, float64(folded)},
				{"gearman_jobs", []string{other}, 0},
				{"gserverd_function_queued_jobs", []string{other, "priority=normal"}, 0},
				{"gserverd_job_wait_seconds", []string{other}, 0},
			})
		})
	}
}

// scrapeLimited reads /metrics and fails when the body exceeds limit
// bytes (without reading more than that).
func scrapeLimited(t *testing.T, e *env, limit int64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	if int64(len(body)) > limit {
		t.Fatalf("/metrics is more than %d bytes", limit)
	}
	return body
}

// sse is an open /api/v1/events stream.
type sse struct {
	t      *testing.T
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
}

// openEvents opens /api/v1/events and returns the answer's status and
// body when it is not 200.
func openEvents(t *testing.T, e *env) (*sse, int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/events", nil)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(b)
	}
	s := &sse{t: t, resp: resp, sc: bufio.NewScanner(resp.Body), cancel: cancel}
	s.sc.Buffer(nil, 64<<20)
	t.Cleanup(s.close)
	return s, resp.StatusCode, ""
}

func (s *sse) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event's name and data; a stream silent for
// ioTimeout fails the test.
func (s *sse) next() (string, string) {
	s.t.Helper()
	timer := time.AfterFunc(ioTimeout, s.cancel)
	defer timer.Stop()
	name := ""
	for s.sc.Scan() {
		line := s.sc.Text()
		if n, ok := strings.CutPrefix(line, "event: "); ok {
			name = n
		} else if d, ok := strings.CutPrefix(line, "data: "); ok {
			return name, d
		}
	}
	s.t.Fatalf("event stream ended: %v", s.sc.Err())
	return "", ""
}

// TestEventStreamLimit opens streams up to MaxEventStreams, checks that
// one more gets 503 with a message naming the setting, and that a slot is
// free again once a stream is closed.
func TestEventStreamLimit(t *testing.T) {
	t.Parallel()
	const maxStreams = 3
	e := start(t, monitor.Options{MaxEventStreams: maxStreams}, true)
	var open []*sse
	for i := range maxStreams {
		s, code, body := openEvents(t, e)
		if s == nil {
			t.Fatalf("stream %d of %d: %d %q, want 200", i+1, maxStreams, code, body)
		}
		s.next()
		open = append(open, s)
	}
	over := func(stage string) {
		t.Helper()
		s, code, body := openEvents(t, e)
		if s != nil {
			t.Fatalf("%s: stream %d of at most %d answered 200", stage, maxStreams+1, maxStreams)
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "too many event streams") || !strings.Contains(body, "--http-max-streams") {
			t.Errorf("%s: one stream too many: %d %q, want 503 naming --http-max-streams", stage, code, body)
		}
	}
	over("full")
	// Other requests are still served.
	if resp, body := do(t, "GET", e.base+"/api/v1/server", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/server with the streams full: %s %q", resp.Status, body)
	}

	open[0].close()
	deadline := time.Now().Add(ioTimeout)
	for {
		s, code, body := openEvents(t, e)
		if s != nil {
			s.next()
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after closing a stream: %d %q, want a free slot", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	over("full again")
}

// TestEventDeltaCostsChanges registers 10,000 functions, reads the first
// event (a snapshot of them all), then changes one function: the event
// that shows the change carries that function alone, so an event costs
// each stream what changed, not the whole table. Applying the deltas to
// the snapshot gives the server's functions.
func TestEventDeltaCostsChanges(t *testing.T) {
	t.Parallel()
	const n = 10_000
	e := start(t, monitor.Options{EventInterval: 20 * time.Millisecond}, true)
	register(t, e, n)
	s, code, body := openEvents(t, e)
	if s == nil {
		t.Fatalf("GET /api/v1/events: %d %q", code, body)
	}
	name, data := s.next()
	var snap monitor.Snapshot
	if err := json.Unmarshal([]byte(data), &snap); err != nil {
		t.Fatalf("first event %.200q: %v", data, err)
	}
	if name != "snapshot" || len(snap.Functions) != n {
		t.Fatalf("first event %q with %d functions, want a snapshot of %d", name, len(snap.Functions), n)
	}
	state := map[string]monitor.FunctionInfo{}
	for _, f := range snap.Functions {
		state[f.Name] = f
	}

	changed := fnName(4242)
	c := e.dial(t)
	c.send(protocol.SubmitJobBg, changed, "", "x")
	c.expect(protocol.JobCreated)
	for {
		name, data := s.next()
		var d monitor.Delta
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			t.Fatalf("event %.200q: %v", data, err)
		}
		if name != "delta" {
			t.Fatalf("event %q after the first (%d bytes), want a delta", name, len(data))
		}
		for _, f := range d.Functions {
			state[f.Name] = f
		}
		for _, r := range d.Removed {
			delete(state, r)
		}
		if len(d.Functions) == 0 {
			// Nothing changed yet, or only the totals: Stats reads
			// the functions in chunks, not at the instant of the
			// totals (server/walk.go).
			if len(d.Removed) != 0 || len(data) > 2048 {
				t.Fatalf("delta with no function changed: %d removed, %d bytes: %.300q", len(d.Removed), len(data), data)
			}
			continue
		}
		if len(d.Functions) != 1 || d.Functions[0].Name != changed || d.Functions[0].Normal != 1 {
			t.Errorf("delta of one submit: %d functions %.300q, want %s alone", len(d.Functions), data, changed)
		}
		if k := strings.Count(data, `"name":`); k != 1 || len(data) > 4096 {
			t.Errorf("delta of one submit: %d bytes with %d names, want one name in a small event", len(data), k)
		}
		t.Logf("snapshot of %d functions: %d bytes; delta of one change: %d bytes", n, len(snapData(snap)), len(data))
		break
	}
	for _, f := range e.srv.Stats().Functions {
		if got, ok := state[f.Name]; !ok || got.Normal != f.Normal || got.Workers != f.Workers {
			t.Fatalf("snapshot + deltas: %s = %+v, server has %+v", f.Name, got, f)
		}
	}
	if len(state) != n {
		t.Errorf("snapshot + deltas: %d functions, want %d", len(state), n)
	}
}

func snapData(s monitor.Snapshot) []byte {
	b, _ := json.Marshal(s)
	return b
}

// TestFunctionsPaged: GET /api/v1/functions returns pages, 1000 rows by
// default and at most 10,000, with X-Total-Count; before, 100k functions
// made one 52 MB body.
func TestFunctionsPaged(t *testing.T) {
	t.Parallel()
	e := start(t, monitor.Options{}, true)
	const n = 2500
	register(t, e, n)
	get := func(query string) (int, string, []monitor.FunctionInfo) {
		t.Helper()
		resp, body := do(t, "GET", e.base+"/api/v1/functions"+query, "", nil)
		var fns []monitor.FunctionInfo
		if resp.StatusCode == 200 {
			if err := json.Unmarshal([]byte(body), &fns); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return resp.StatusCode, resp.Header.Get("X-Total-Count"), fns
	}
	for _, tc := range []struct {
		query       string
		code        int
		first, rows int // the first row's function number, and how many
	}{
		{"", 200, 0, 1000},
		{"?offset=2000&limit=1000", 200, 2000, 500},
		{"?offset=10&limit=5", 200, 10, 5},
		{"?limit=10000", 200, 0, n},
		{"?offset=9999", 200, 0, 0},
		{"?limit=10001", 400, 0, 0},
		{"?limit=0", 400, 0, 0},
		{"?offset=-1", 400, 0, 0},
		{"?offset=x", 400, 0, 0},
	} {
		code, total, fns := get(tc.query)
		if code != tc.code {
			t.Errorf("%q: status %d, want %d", tc.query, code, tc.code)
			continue
		}
		if code != 200 {
			continue
		}
		if total != strconv.Itoa(n) {
			t.Errorf("%q: X-Total-Count %q, want %d", tc.query, total, n)
		}
		if len(fns) != tc.rows {
			t.Errorf("%q: %d rows, want %d", tc.query, len(fns), tc.rows)
		} else if tc.rows > 0 && fns[0].Name != fnName(tc.first) {
			t.Errorf("%q: first row %s, want %s", tc.query, fns[0].Name, fnName(tc.first))
		}
	}
}

// workerRow is a row of GET /api/v1/workers.
type workerRow struct {
	ID             uint64   `json:"id"`
	ClientID       string   `json:"client_id"`
	Functions      []string `json:"functions"`
	FunctionsTotal int      `json:"functions_total"`
	Running        []string `json:"running"`
	RunningTotal   int      `json:"running_total"`
}

// TestWorkersPaged: GET /api/v1/workers returns pages of connections,
// 1000 rows by default and at most 10,000, with X-Total-Count, and lists
// at most 100 functions per row (the first by name) with functions_total;
// bad values get the errors of /api/v1/functions. Before, 2,500 workers
// made one row each in a single body, and a worker's row listed all its
// 5,000 functions.
func TestWorkersPaged(t *testing.T) {
	t.Parallel()
	const (
		workers = 2500 // besides the fat one
		fatFns  = 5000
		clients = 3
		row     = 100 // functions listed per row
	)
	e := start(t, monitor.Options{}, true)

	// The fat worker comes first; it registers its functions in reverse
	// order, so that the first by name are the last registered.
	fat := e.dial(t)
	buf := protocol.AppendPacketString(nil, protocol.Req, protocol.SetClientID, "fat")
	for i := fatFns - 1; i >= 0; i-- {
		buf = protocol.AppendPacketString(buf, protocol.Req, protocol.CanDo, fnName(i))
	}
	if _, err := fat.nc.Write(buf); err != nil {
		t.Fatalf("write CAN_DO: %v", err)
	}
	fat.sync()
	// Then one function each, the client id naming the worker's position.
	ids := []string{"fat"}
	conns := make([]*gconn, 0, workers+clients)
	for i := range workers {
		c := e.dial(t)
		id := fmt.Sprintf("w%05d", i)
		if _, err := c.nc.Write(protocol.AppendPacketString(
			protocol.AppendPacketString(nil, protocol.Req, protocol.SetClientID, id),
			protocol.Req, protocol.CanDo, "common")); err != nil {
			t.Fatalf("write CAN_DO: %v", err)
		}
		conns = append(conns, c)
		ids = append(ids, id)
	}
	for i := range clients {
		c := e.dial(t)
		c.send(protocol.SetClientID, fmt.Sprintf("c%d", i))
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.sync()
	}
	allIDs := append(ids[:len(ids):len(ids)], "c0", "c1", "c2")
	firstFns := make([]string, row)
	for i := range firstFns {
		firstFns[i] = fnName(i)
	}

	get := func(query string) (int, string, []workerRow, string) {
		t.Helper()
		resp, body := do(t, "GET", e.base+"/api/v1/workers"+query, "", nil)
		var rows []workerRow
		if resp.StatusCode == 200 {
			if err := json.Unmarshal([]byte(body), &rows); err != nil || rows == nil {
				t.Fatalf("%s: %v %.100q", query, err, body)
			}
		}
		return resp.StatusCode, resp.Header.Get("X-Total-Count"), rows, body
	}
	for _, tc := range []struct {
		query string
		code  int
		want  []string // the client ids of the rows
	}{
		{"", 200, ids[:1000]},
		{"?offset=2000&limit=1000", 200, ids[2000:]},
		{"?offset=10&limit=5", 200, ids[10:15]},
		{"?limit=10000", 200, ids},
		{"?offset=99999", 200, nil},
		{"?all=1", 200, allIDs[:1000]},
		{"?all=1&offset=2500", 200, allIDs[2500:]},
		{"?all=1&limit=10000", 200, allIDs},
		{"?limit=10001", 400, nil},
		{"?limit=0", 400, nil},
		{"?limit=x", 400, nil},
		{"?offset=-1", 400, nil},
		{"?offset=x", 400, nil},
	} {
		code, total, rows, body := get(tc.query)
		if code != tc.code {
			t.Errorf("%q: status %d, want %d", tc.query, code, tc.code)
			continue
		}
		if code != 200 {
			// The same message as the functions listing.
			resp, fbody := do(t, "GET", e.base+"/api/v1/functions"+tc.query, "", nil)
			if resp.StatusCode != code || fbody != body {
				t.Errorf("%q: body %q, /api/v1/functions answers %d %q", tc.query, body, resp.StatusCode, fbody)
			}
			continue
		}
		wantTotal := len(ids)
		if strings.Contains(tc.query, "all=1") {
			wantTotal = len(allIDs)
		}
		if total != strconv.Itoa(wantTotal) {
			t.Errorf("%q: X-Total-Count %q, want %d", tc.query, total, wantTotal)
		}
		got := make([]string, len(rows))
		for i, r := range rows {
			got[i] = r.ClientID
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: %d rows %s, want %d %s", tc.query, len(got), ends(got), len(tc.want), ends(tc.want))
			continue
		}
		for _, r := range rows {
			if msg := checkRow(r, firstFns, fatFns); msg != "" {
				t.Errorf("%q: %s", tc.query, msg)
				break
			}
		}
	}

	// The dashboard's events carry the first 200 workers, 20 functions
	// each, and the count of all.
	snap := e.mon.Snapshot()
	if snap.WorkersTotal != len(ids) || len(snap.Workers) != 200 {
		t.Fatalf("snapshot: %d workers of %d, want 200 of %d", len(snap.Workers), snap.WorkersTotal, len(ids))
	}
	if f := snap.Workers[0]; f.ClientID != "fat" || !slices.Equal(f.Functions, firstFns[:20]) || f.FunctionsTotal != fatFns ||
		snap.Workers[199].ClientID != ids[199] {
		t.Errorf("snapshot: first %s with %d functions of %d, last %s; want fat with the first 20 of %d, last %s",
			f.ClientID, len(f.Functions), f.FunctionsTotal, snap.Workers[199].ClientID, fatFns, ids[199])
	}
}

// ends shows the first and last of a list.
func ends(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	return "[" + l[0] + " ... " + l[len(l)-1] + "]"
}

// checkRow checks a row of TestWorkersPaged: the fat worker lists
// firstFns of its n, the others one function or none.
func checkRow(r workerRow, firstFns []string, n int) string {
	switch {
	case r.ClientID == "fat":
		if !slices.Equal(r.Functions, firstFns) || r.FunctionsTotal != n {
			return fmt.Sprintf("fat row lists %d functions %s of %d, want the first %d %s of %d",
				len(r.Functions), ends(r.Functions), r.FunctionsTotal, len(firstFns), ends(firstFns), n)
		}
	case r.ClientID[0] == 'w':
		if !slices.Equal(r.Functions, []string{"common"}) || r.FunctionsTotal != 1 {
			return fmt.Sprintf("row %+v, want common of 1", r)
		}
	default:
		if len(r.Functions) != 0 || r.FunctionsTotal != 0 {
			return fmt.Sprintf("client row %+v, want no function", r)
		}
	}
	return ""
}
