package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// Command functions end to end: testdata/command/worker.php, a pecl
// GearmanWorker loop like the ones PHP applications run under
// supervisord, supervised by the gworkerd daemon as
// functions.<name>.command.

// markerVar is set in the environment of a test's command functions;
// every process they start inherits it, so that /proc finds them all,
// whatever their parent and process group.
const markerVar = "GWORKERD_TEST_MARKER"

// workerReply is the result of a job of worker.php.
type workerReply struct {
	Pid     int     `json:"pid"`
	Result  string  `json:"result"`
	Env     *string `json:"env"`
	Arg     string  `json:"arg"`
	Tag     string  `json:"tag"`
	Spawned []int   `json:"spawned"`
}

// workerScript returns the absolute path of the worker.php fixture.
func workerScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "command", "worker.php"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newMarker returns a value of markerVar no other test uses. At cleanup
// (after the daemon's, which runs first) it kills what a failed test
// left of the processes so marked.
func newMarker(t *testing.T) string {
	m := t.Name() + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() {
		left := markedProcesses(m)
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		for _, p := range left {
			reap(p) // orphans adopted by this subreaper
		}
	})
	return m
}

// commandEntry returns the functions-section entry of a command
// function: its argv, its count, markerVar=marker in its env, and extra
// keys (each line indented by four spaces).
func commandEntry(name string, count int, argv []string, marker, extra string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return fmt.Sprintf("  %s:\n    count: %d\n    command: [%s]\n    env: {%s: %q}\n%s",
		name, count, strings.Join(q, ", "), markerVar, marker, extra)
}

// gearmanJob runs one job with the gearman command-line client and
// decodes worker.php's reply.
func gearmanJob(t *testing.T, gearman, addr, fn, data string) (workerReply, error) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gearman, "-h", host, "-p", port, "-f", fn, data).Output()
	if err != nil {
		return workerReply{}, fmt.Errorf("gearman -f %s %s via %s: %w (output %q)", fn, data, addr, err, out)
	}
	var r workerReply
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return workerReply{}, fmt.Errorf("gearman -f %s %s via %s: reply %q: %w", fn, data, addr, out, err)
	}
	return r, nil
}

// procArgs returns the command line of pid, from /proc.
func procArgs(pid int) []string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// procEnv returns the value of key in the environment of pid, from /proc.
func procEnv(pid int, key string) (string, bool) {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// envSettled reports whether pid's environment reads non-empty: false
// for the moment of an execve (the new image's environment is not set
// up yet) and for a zombie, whose environment reads empty for good.
func envSettled(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && len(b) > 0
}

// markedProcesses lists the live processes whose environment holds
// markerVar=marker (a zombie's environment reads empty).
func markedProcesses(marker string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if v, ok := procEnv(pid, markerVar); ok && v == marker {
			out = append(out, pid)
		}
	}
	return out
}

// logEntry is one line of the daemon's log file (logrus text format).
type logEntry struct {
	time   time.Time
	msg    string
	fields map[string]string
}

// logEntries parses the daemon's log file.
func (e *env) logEntries() []logEntry {
	e.t.Helper()
	b, err := os.ReadFile(e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []logEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := parseLogfmt(line)
		if f == nil {
			continue
		}
		le := logEntry{msg: f["msg"], fields: f}
		le.time, _ = time.Parse(time.RFC3339Nano, f["time"])
		out = append(out, le)
	}
	return out
}

// parseLogfmt splits key=value pairs, values optionally quoted; nil when
// the line is not one.
func parseLogfmt(line string) map[string]string {
	f := map[string]string{}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimLeft(line, " ") {
		k, rest, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.Contains(k, " ") {
			return nil
		}
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(rest) {
				return nil
			}
			v, err := strconv.Unquote(rest[:end+1])
			if err != nil {
				return nil
			}
			f[k], line = v, rest[end+1:]
			continue
		}
		v, after, _ := strings.Cut(rest, " ")
		f[k], line = v, after
	}
	if f["msg"] == "" {
		return nil
	}
	return f
}

// find returns the first entry with msg whose fields include every
// key=value of want.
func find(entries []logEntry, msg string, want ...string) (logEntry, bool) {
next:
	for _, le := range entries {
		if le.msg != msg {
			continue
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if le.fields[k] != v {
				continue next
			}
		}
		return le, true
	}
	return logEntry{}, false
}

// checkRolled checks, in the log, that fn's children in old were
// replaced without leaving fewer serving than were replaced: when the
// k-th of old is asked to stop, at least k other children of fn have
// started serving since the first of old did.
func checkRolled(t *testing.T, entries []logEntry, fn string, old []int) {
	t.Helper()
	var started []int
	stopping, since := 0, false
	for _, le := range entries {
		if le.msg != "child state" || le.fields["function"] != fn {
			continue
		}
		pid, _ := strconv.Atoi(le.fields["pid"])
		switch {
		case slices.Contains(old, pid) && le.fields["state"] == "running":
			since = true
		case since && !slices.Contains(old, pid) && le.fields["state"] == "running" && !slices.Contains(started, pid):
			started = append(started, pid)
		case slices.Contains(old, pid) && le.fields["state"] == "stopping":
			stopping++
			if len(started) < stopping {
				t.Errorf("%s child %d asked to stop (%s) when %d replacements %v served; want one more serving first",
					fn, pid, le.fields["reason"], len(started), started)
			}
		}
	}
	if stopping != len(old) {
		t.Errorf("log: %d of %s's children %v asked to stop, want all", stopping, fn, old)
	}
}

// httpGet returns the body of an unauthenticated GET.
func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v: %s", url, resp.StatusCode, err, b.Bytes())
	}
	return b.Bytes()
}

// metric returns the value of the sample of name whose labels include
// every k=v of labels (a histogram's: its count), or -1.
func metric(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(httpGet(t, base+"/metrics")))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
next:
	for _, m := range fams[name].GetMetric() {
		for _, want := range labels {
			k, v, _ := strings.Cut(want, "=")
			ok := false
			for _, l := range m.GetLabel() {
				ok = ok || (l.GetName() == k && l.GetValue() == v)
			}
			if !ok {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// statusRows returns the rows of `gworkerd status` for fn, by pid:
// the fields of the table's columns (LAST EXIT may hold spaces, so it is
// the rest of the line).
func statusRows(t *testing.T, out, fn string) map[int][]string {
	t.Helper()
	rows := map[int][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != fn {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("status row %q: pid %q", line, f[1])
		}
		rows[pid] = append(f[:9:9], strings.Join(f[9:], " "))
	}
	return rows
}

// Two copies of worker.php serve from gserverd and from the C gearmand
// at once: both get the servers in GEARMAN_SERVERS and in {servers},
// both answer jobs of the gearman client, their output reaches the log,
// and the status table, /api/v1/status and /metrics show them. One
// killed with SIGKILL is replaced, counted as a restart, and the jobs go
// on.
func TestCommandPHPWorkers(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	gearman := testpeer.Require(t, "gearman")
	gs := testpeer.StartGserverd(t)
	gd := testpeer.StartGearmand(t)
	servers := gs.Addr + "," + gd.Addr
	marker := newMarker(t)
	script := workerScript(t)
	argv := []string{php, script, "rev", "{servers}", "v1"}
	e := newEnv(t, gs.Addr+", "+gd.Addr, commandEntry("rev", 2, argv, marker, ""), 10*time.Second)
	base := "http://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	e.appendConfig("http_listen: " + strings.TrimPrefix(base, "http://") + "\n")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	waitFor(t, 30*time.Second, "two rev children", func() bool { return len(e.running("rev")) == 2 })
	pids := e.running("rev")

	// The processes are php itself (no gworkerd child in between), with
	// the servers in the environment and in place of {servers}.
	wantArgs := []string{php, script, "rev", servers, "v1"}
	for _, p := range pids {
		if got := procArgs(p); !slices.Equal(got, wantArgs) {
			t.Errorf("child %d runs %q, want %q", p, got, wantArgs)
		}
		if v, ok := procEnv(p, "GEARMAN_SERVERS"); v != servers {
			t.Errorf("child %d: GEARMAN_SERVERS=%q (set %v), want %q", p, v, ok, servers)
		}
		if _, ok := procEnv(p, supervise.EnvReportFD); ok {
			t.Errorf("child %d has %s: a command gets no report pipe", p, supervise.EnvReportFD)
		}
	}

	// Both serve, through both servers: every reply comes from one of
	// the children, and each child answers one eventually.
	serve := func(what string, want []int) {
		t.Helper()
		seen := map[int]bool{}
		waitFor(t, 60*time.Second, what, func() bool {
			for _, srv := range []string{gs.Addr, gd.Addr} {
				r, err := gearmanJob(t, gearman, srv, "rev", "hello")
				if err != nil {
					t.Fatal(err)
				}
				if r.Result != "olleh" || r.Env == nil || *r.Env != servers || r.Arg != servers || r.Tag != "v1" {
					t.Fatalf("reply via %s: %+v; want olleh, GEARMAN_SERVERS and {servers} %q, tag v1", srv, r, servers)
				}
				if running := e.running("rev"); !slices.Contains(running, r.Pid) {
					t.Fatalf("reply via %s from pid %d, not a running child %v", srv, r.Pid, running)
				}
				seen[r.Pid] = true
			}
			for _, p := range want {
				if !seen[p] {
					return false
				}
			}
			return true
		})
	}
	serve("a job answered by each child", pids)

	// Their output: each child's first line, and a job's stdout and
	// stderr, logged with the child's pid and stream.
	r, err := gearmanJob(t, gearman, gd.Addr, "rev", "say:hi-there")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the children's output in the log", func() bool {
		entries := e.logEntries()
		for _, p := range pids {
			if _, ok := find(entries, "child: worker.php ready", "function=rev", "pid="+strconv.Itoa(p), "stream=stdout"); !ok {
				return false
			}
		}
		_, out := find(entries, "child: stdout says hi-there", "pid="+strconv.Itoa(r.Pid), "stream=stdout")
		_, errOut := find(entries, "child: stderr says hi-there", "pid="+strconv.Itoa(r.Pid), "stream=stderr")
		return out && errOut
	})

	// Status: the control socket, the table, the HTTP API, the metrics.
	for _, c := range e.status().Children {
		if !c.Command || c.State != supervise.StateRunning || c.RSS <= 0 || !slices.Contains(pids, c.Pid) {
			t.Errorf("status child %+v; want a running command child of %v with an RSS", c, pids)
		}
	}
	rows := statusRows(t, e.must("status"), "rev")
	for _, p := range pids {
		if row := rows[p]; row == nil || row[2] != "running" || row[4] != "-" || row[7] == "-" {
			t.Errorf("status table row of %d: %q; want running, jobs unseen (-), with an RSS", p, row)
		}
	}
	var st supervise.Status
	if err := json.Unmarshal(httpGet(t, base+"/api/v1/status"), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Children) != 2 {
		t.Errorf("/api/v1/status children %+v, want 2", st.Children)
	}
	for _, c := range st.Children {
		if !c.Command || c.Function != "rev" || !slices.Contains(pids, c.Pid) {
			t.Errorf("/api/v1/status child %+v; want a command child of rev among %v", c, pids)
		}
	}
	if got := metric(t, base, "gworkerd_children", "function=rev", "state=running"); got != 2 {
		t.Errorf("gworkerd_children{rev,running} = %v, want 2", got)
	}
	if got := metric(t, base, "gworkerd_children_rss_bytes", "function=rev"); got <= 0 {
		t.Errorf("gworkerd_children_rss_bytes{rev} = %v, want the RSS read from /proc", got)
	}

	// SIGKILL: replaced, counted, and the jobs go on.
	killed := pids[0]
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the killed child replaced", func() bool {
		got := e.running("rev")
		return len(got) == 2 && !slices.Contains(got, killed) && slices.Contains(got, pids[1])
	})
	now := e.running("rev")
	replacement := now[0]
	if replacement == pids[1] {
		replacement = now[1]
	}
	serve("a job answered by the replacement", []int{replacement})
	rows = statusRows(t, e.must("status"), "rev")
	if row := rows[replacement]; row == nil || row[8] != "1" || row[9] != "signal: killed" {
		t.Errorf("status table row of the replacement %d: %q; want 1 restart, last exit signal: killed", replacement, row)
	}
	if got := metric(t, base, "gworkerd_child_restarts_total", "function=rev"); got != 1 {
		t.Errorf("gworkerd_child_restarts_total{rev} = %v, want 1", got)
	}
}

// Stop leaves nothing: neither the php processes nor what they started,
// a child kept with proc_open and an orphan backgrounded by a shell
// (reparented at once, but in the worker's process group). A worker
// killed with SIGKILL takes its own along too.
func TestCommandStopLeavesNoOrphans(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	gs := testpeer.StartGserverd(t)
	marker := newMarker(t)
	argv := []string{php, workerScript(t), "spawner", "{servers}"}
	e := newEnv(t, gs.Addr, commandEntry("spawner", 2, argv, marker, ""), 10*time.Second)
	e.appendConfig("http_listen: \"\"\n")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	waitFor(t, 30*time.Second, "two spawner children", func() bool { return len(e.running("spawner")) == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A spawn's orphan is the master's once its shell has exited: the
	// master's sweep (every second) ends it, and on a loaded machine may
	// have before a check here. An orphan is found by its marker, or
	// the master logged ending it.
	endedOrphan := func(p int) bool {
		_, ok := find(e.logEntries(), "orphan left by a child: ending it", "pid="+strconv.Itoa(p))
		return ok
	}
	var spawned, kept, orphans []int
	spawn := func() workerReply {
		t.Helper()
		out, err := submit(ctx, gs.Addr, "spawner", "spawn", false)
		if err != nil {
			t.Fatalf("spawn: %v\nlog:\n%s", err, e.logTail())
		}
		var r workerReply
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Spawned) != 2 {
			t.Fatalf("spawn reply %q: %v", out, err)
		}
		// The pid is known from fork on; while the process is in
		// execve its environ reads empty for a moment.
		kid, orphan := r.Spawned[0], r.Spawned[1]
		waitFor(t, 30*time.Second, fmt.Sprintf("spawned %d past its exec", kid), func() bool { return envSettled(kid) })
		if v, _ := procEnv(kid, markerVar); v != marker {
			t.Fatalf("spawned %d: %s=%q, want %q", kid, markerVar, v, marker)
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("spawned orphan %d past its exec or ended", orphan), func() bool {
			return envSettled(orphan) || endedOrphan(orphan)
		})
		if v, _ := procEnv(orphan, markerVar); v != marker && !endedOrphan(orphan) { // the log read after the environment
			t.Fatalf("spawned orphan %d: %s=%q, want %q, or the master ending it\nlog:\n%s", orphan, markerVar, v, marker, e.logTail())
		}
		spawned = append(spawned, r.Spawned...)
		kept, orphans = append(kept, r.Spawned[0]), append(orphans, r.Spawned[1])
		return r
	}
	defer func() {
		for _, p := range spawned {
			reap(p) // the orphans are this subreaper's
		}
	}()
	gone := func(pids []int) func() bool {
		return func() bool {
			return !slices.ContainsFunc(pids, func(p int) bool { v, _ := procEnv(p, markerVar); return v == marker })
		}
	}

	r := spawn()
	if err := syscall.Kill(r.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the killed worker's processes gone", gone(r.Spawned))
	waitFor(t, 30*time.Second, "the killed worker replaced", func() bool {
		got := e.running("spawner")
		return len(got) == 2 && !slices.Contains(got, r.Pid)
	})

	for len(spawned) < 6 {
		spawn()
	}
	live := append(e.running("spawner"), kept[1:]...)
	for _, p := range live {
		waitFor(t, 30*time.Second, fmt.Sprintf("process %d past its exec", p), func() bool { return envSettled(p) })
	}
	for _, p := range orphans[1:] {
		waitFor(t, 30*time.Second, fmt.Sprintf("orphan %d past its exec or ended", p), func() bool { return envSettled(p) || endedOrphan(p) })
	}
	marked := markedProcesses(marker)
	for _, p := range live {
		if !slices.Contains(marked, p) {
			t.Errorf("process %d not found by its marker among %v", p, marked)
		}
	}
	for _, p := range orphans[1:] {
		if !slices.Contains(marked, p) && !endedOrphan(p) { // the log read after the marks
			t.Errorf("orphan %d neither found by its marker among %v nor ended by the master\nlog:\n%s", p, marked, e.logTail())
		}
	}
	children := e.allChildPids()
	e.must("stop")
	reap(master)
	waitFor(t, 30*time.Second, "every process of the command function gone", func() bool {
		return len(markedProcesses(marker)) == 0
	})
	noneLeft(t, append(children, master))
}

// A worker that ignores SIGTERM is killed, with its group, once
// stop_timeout is over: the function's own (default: the top-level one),
// but at a full stop never later than the top-level one.
func TestCommandStopTimeout(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	gd := testpeer.StartGearmand(t)
	marker := newMarker(t)
	// SIG_IGN survives exec: php, a real GearmanWorker, ignores SIGTERM.
	deaf := func(fn string) []string {
		return []string{"sh", "-c", `trap '' TERM; exec "$@"`, "sh", php, workerScript(t), fn, "{servers}"}
	}
	e := newEnv(t, gd.Addr, commandEntry("deaf", 1, deaf("deaf"), marker, "")+
		commandEntry("deaf1s", 1, deaf("deaf1s"), marker, "    stop_timeout: 1s\n")+
		commandEntry("deafshort", 1, deaf("deafshort"), marker, "    stop_timeout: 1s\n")+
		commandEntry("deaflong", 1, deaf("deaflong"), marker, "    stop_timeout: 1h\n"), 2*time.Second)
	e.appendConfig("http_listen: \"\"\n")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	waitFor(t, 30*time.Second, "the deaf children", func() bool {
		return len(e.running("deaf")) == 1 && len(e.running("deaf1s")) == 1 && len(e.running("deafshort")) == 1 && len(e.running("deaflong")) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, fn := range []string{"deaf", "deaf1s"} {
		pid := e.running(fn)[0]
		if args := procArgs(pid); args[0] != php {
			t.Fatalf("%s child %d runs %q, want php", fn, pid, args)
		}
		if out, err := submit(ctx, gd.Addr, fn, "abc", false); err != nil || !strings.Contains(out, `"result":"cba"`) {
			t.Fatalf("%s job: %q %v", fn, out, err)
		}
	}

	// The function's stop_timeout: 1s, though the top-level one is 2s.
	pid := e.running("deaf1s")[0]
	start := time.Now()
	e.must("ctl", "stop", "deaf1s")
	waitFor(t, 30*time.Second, "deaf1s stopped", func() bool { return !sysproc.Alive(pid) && len(e.running("deaf1s")) == 0 })
	if el := time.Since(start); el < time.Second {
		t.Errorf("deaf1s gone %v after ctl stop, before its stop_timeout of 1s: SIGTERM was not ignored", el)
	}
	killed := func(pid int, grace string) bool {
		le, ok := find(e.logEntries(), "child did not exit in time: killing its group", "pid="+strconv.Itoa(pid))
		return ok && le.fields["grace"] == grace
	}
	waitFor(t, 10*time.Second, "deaf1s killed after 1s", func() bool { return killed(pid, "1s") })

	pid = e.running("deaf")[0]
	short, long := e.running("deafshort")[0], e.running("deaflong")[0]
	start = time.Now()
	e.must("stop")
	el := time.Since(start)
	reap(master)
	if el < 2*time.Second {
		t.Errorf("stop took %v, less than stop_timeout 2s of a worker that ignores SIGTERM", el)
	}
	for _, k := range []struct {
		fn, grace string
		pid       int
	}{{"deaf", "2s", pid}, {"deafshort", "1s", short}, {"deaflong", "2s", long}} {
		if !killed(k.pid, k.grace) {
			t.Errorf("no log of %s (pid %d) killed after %s at stop:\n%s", k.fn, k.pid, k.grace, e.logTail())
		}
	}
	waitFor(t, 30*time.Second, "every process of the command functions gone", func() bool {
		return len(markedProcesses(marker)) == 0
	})
}

// A reload that changes the command's arguments replaces the workers one
// at a time, each new one serving before an old one is asked to stop;
// jobs are served throughout.
func TestCommandRollingReload(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	gs := testpeer.StartGserverd(t)
	marker := newMarker(t)
	argv := []string{php, workerScript(t), "rev", "{servers}", "v1"}
	e := newEnv(t, gs.Addr, commandEntry("rev", 2, argv, marker, ""), 10*time.Second)
	e.appendConfig("http_listen: \"\"\n")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	waitFor(t, 30*time.Second, "two rev children", func() bool { return len(e.running("rev")) == 2 })
	old := e.running("rev")

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		replies []workerReply
		errs    []error
	)
	// sawTag reports whether a job was served by a worker tagged tag; it
	// fails the test at the first failed job.
	sawTag := func(tag string) bool {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("job during the reload: %v\nlog:\n%s", errs[0], e.logTail())
		}
		return slices.ContainsFunc(replies, func(r workerReply) bool { return r.Tag == tag })
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			out, err := submit(ctx, gs.Addr, "rev", "job"+strconv.Itoa(i), false)
			var r workerReply
			if err == nil {
				err = json.Unmarshal([]byte(out), &r)
			}
			mu.Lock()
			if err != nil {
				errs = append(errs, fmt.Errorf("job %d: %q: %w", i, out, err))
			} else {
				replies = append(replies, r)
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor(t, 30*time.Second, "a job served by v1", func() bool { return sawTag("v1") })

	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(string(cfg), `"v1"`, `"v2"`, 1)
	if next == string(cfg) {
		t.Fatalf("config %q has no v1 argument", cfg)
	}
	if err := os.WriteFile(e.cfg, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("reload")
	waitFor(t, 60*time.Second, "both workers replaced by v2", func() bool {
		sawTag("") // fails at the first failed job
		got := e.running("rev")
		if len(got) != 2 || len(e.status().Children) != 2 {
			return false
		}
		for _, p := range got {
			if slices.Contains(old, p) || !slices.Contains(procArgs(p), "v2") {
				return false
			}
		}
		return !slices.ContainsFunc(old, sysproc.Alive)
	})
	waitFor(t, 30*time.Second, "a job served by v2", func() bool { return sawTag("v2") })
	halt()
	sawTag("")
	t.Logf("%d jobs served during the test", len(replies))
	checkRolled(t, e.logEntries(), "rev", old)
}

// memory_limit recycles a worker whose memory grew past it (its RSS read
// from /proc) at once; max_lifetime recycles one that lived long enough,
// its replacement serving before it is asked to stop.
func TestCommandRecycle(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	gs := testpeer.StartGserverd(t)
	marker := newMarker(t)
	script := workerScript(t)
	const limit = 96 << 20
	e := newEnv(t, gs.Addr,
		commandEntry("fat", 1, []string{php, script, "fat"}, marker, fmt.Sprintf("    memory_limit: %d\n", limit))+
			commandEntry("aging", 1, []string{php, script, "aging"}, marker, "    max_lifetime: 3s\n    lifetime_splay: 1s\n"),
		10*time.Second)
	e.appendConfig("http_listen: \"\"\n")
	e.must("start")
	master := e.masterPid()
	defer func() { e.run("stop"); reap(master) }()
	waitFor(t, 30*time.Second, "fat and aging running", func() bool {
		return len(e.running("fat")) == 1 && len(e.running("aging")) == 1
	})
	fat, aging := e.running("fat")[0], e.running("aging")[0]

	rss := func(pid int) int64 {
		for _, c := range e.status().Children {
			if c.Pid == pid {
				return c.RSS
			}
		}
		return -1
	}
	waitFor(t, 15*time.Second, "fat's RSS read", func() bool { return rss(fat) > 0 })
	if got := rss(fat); got >= limit {
		t.Fatalf("fat's RSS %d before growing, want below the limit %d", got, limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := submit(ctx, gs.Addr, "fat", "grow:160", false)
	if err != nil || !strings.Contains(out, fmt.Sprintf(`"pid":%d`, fat)) {
		t.Fatalf("grow: %q %v; want a reply of fat (pid %d)\nlog:\n%s", out, err, fat, e.logTail())
	}
	waitFor(t, 30*time.Second, "fat recycled", func() bool {
		got := e.running("fat")
		return len(got) == 1 && got[0] != fat && !sysproc.Alive(fat)
	})
	entries := e.logEntries()
	if _, ok := find(entries, "recycling child", "pid="+strconv.Itoa(fat), "reason=memory_limit"); !ok {
		t.Errorf("no log of fat (pid %d) recycled for memory_limit:\n%s", fat, e.logTail())
	}
	next := e.running("fat")[0]
	waitFor(t, 15*time.Second, "the new fat's RSS read", func() bool { return rss(next) > 0 })
	if got := rss(next); got >= limit {
		t.Errorf("the new fat's RSS %d, want below the limit %d", got, limit)
	}
	// A limit retires the worker at once, with its replacement starting.
	if _, ok := find(entries, "starting a replacement", "pid="+strconv.Itoa(fat), "reason=memory_limit"); !ok {
		t.Errorf("no log of a replacement started for fat (pid %d)", fat)
	}

	waitFor(t, 30*time.Second, "aging recycled", func() bool {
		got := e.running("aging")
		return len(got) == 1 && got[0] != aging && !sysproc.Alive(aging)
	})
	entries = e.logEntries()
	started, ok1 := find(entries, "child state", "pid="+strconv.Itoa(aging), "state=starting")
	recycled, ok2 := find(entries, "recycling child", "pid="+strconv.Itoa(aging), "reason=max_lifetime")
	if !ok1 || !ok2 {
		t.Fatalf("no log of aging (pid %d) started and recycled for max_lifetime:\n%s", aging, e.logTail())
	}
	// (The start is logged a moment after the lifetime begins.)
	if lived := recycled.time.Sub(started.time); lived < 3*time.Second-50*time.Millisecond {
		t.Errorf("aging recycled after %v, before max_lifetime 3s", lived)
	}
	checkRolled(t, entries, "aging", []int{aging})
}
