package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// peerTimeout bounds one run of a peer client.
const peerTimeout = 30 * time.Second

// runPeer runs a peer program to completion and returns its stdout.
func runPeer(t *testing.T, stdin string, bin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustRun is runPeer that fails the test on a non-zero exit.
func mustRun(t *testing.T, stdin string, bin string, args ...string) string {
	t.Helper()
	out, errOut, err := runPeer(t, stdin, bin, args...)
	if err != nil {
		t.Fatalf("%s %q: %v\nstdout: %q\nstderr: %s", filepath.Base(bin), args, err, out, errOut)
	}
	return out
}

// startWorker starts a peer worker and waits until the server lists a
// worker for fn.
func startWorker(t *testing.T, e *env, fn string, bin string, args ...string) *testpeer.Process {
	t.Helper()
	p := testpeer.Start(t, exec.Command(bin, args...))
	waitFor(t, "worker for "+fn, func() bool {
		select {
		case <-p.Done():
			t.Fatalf("worker %s exited: %s", filepath.Base(bin), p.Output())
		default:
		}
		f := strings.Split(statusOf(t, e.addr(), fn), "\t")
		return len(f) == 4 && f[3] != "0"
	})
	return p
}

// waitExit waits for a worker that serves a fixed number of jobs.
func waitExit(t *testing.T, p *testpeer.Process) {
	t.Helper()
	select {
	case <-p.Done():
		if !p.Cmd.ProcessState.Success() {
			t.Fatalf("worker exited with %v: %s", p.Cmd.ProcessState, p.Output())
		}
	case <-time.After(peerTimeout):
		t.Fatalf("worker did not finish its jobs: %s", p.Output())
	}
}

func testdata(name string) string { return filepath.Join("testdata", name) }

// cliChecks: the gearman CLI as worker and client (section 3.4).
func cliChecks() []check {
	// Checklist (B) "gearman CLI": -w -f, -b, -u, -n, -P; jobs cross
	// between CLI worker and CLI client through the server.
	return []check{
		{name: "WorkerAndClient", run: func(t *testing.T, e *env) {
			bin := testpeer.Require(t, "gearman")
			host, port := splitAddr(t, e.addr())
			fn := e.names.fn("cli")
			tr := testpeer.Require(t, "tr")
			w := startWorker(t, e, fn, bin, "-h", host, "-p", port, "-w", "-f", fn, "-c", "4", "--", tr, "a-z", "A-Z")
			if out := mustRun(t, "", bin, "-h", host, "-p", port, "-f", fn, "hello"); out != "HELLO" {
				t.Fatalf("gearman -f: %q, want %q", out, "HELLO")
			}
			if out := mustRun(t, "", bin, "-h", host, "-p", port, "-P", "-f", fn, "hello"); out != fn+": HELLO" {
				t.Fatalf("gearman -P: %q, want %q", out, fn+": HELLO")
			}
			if out := mustRun(t, "ab\ncd\n", bin, "-h", host, "-p", port, "-n", "-f", fn); out != "AB\nCD\n" {
				t.Fatalf("gearman -n: %q, want %q", out, "AB\nCD\n")
			}
			waitExit(t, w)
		}},
		{name: "WorkerServesRawClient", run: func(t *testing.T, e *env) {
			bin := testpeer.Require(t, "gearman")
			host, port := splitAddr(t, e.addr())
			fn := e.names.fn("cliw")
			tr := testpeer.Require(t, "tr")
			w := startWorker(t, e, fn, bin, "-h", host, "-p", port, "-w", "-f", fn, "-c", "1", "--", tr, "a-z", "A-Z")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJob, fn, "", "raw bytes")
			var got string
			for {
				p := c.readPacket()
				if p.typ == protocol.WorkData {
					got += p.args[1]
					continue
				}
				if p.typ != protocol.WorkComplete || p.args[0] != h {
					t.Fatalf("got %v, want WORK_DATA or WORK_COMPLETE for %s", p, h)
				}
				got += p.args[1]
				break
			}
			if got != "RAW BYTES" {
				t.Fatalf("result %q, want %q", got, "RAW BYTES")
			}
			waitExit(t, w)
		}},
		{name: "BackgroundUniquePriority", run: func(t *testing.T, e *env) {
			bin := testpeer.Require(t, "gearman")
			host, port := splitAddr(t, e.addr())
			fn := e.names.fn("clibg")
			// -b prints nothing and exits 0.
			for range 2 {
				if out := mustRun(t, "", bin, "-h", host, "-p", port, "-b", "-f", fn, "data"); out != "" {
					t.Fatalf("gearman -b printed %q", out)
				}
			}
			// Without -u the CLI sends a UUID: two jobs. With -u they coalesce.
			mustRun(t, "", bin, "-h", host, "-p", port, "-b", "-u", "cli-uniq", "-f", fn, "data")
			mustRun(t, "", bin, "-h", host, "-p", port, "-b", "-u", "cli-uniq", "-f", fn, "data")
			if got := statusOf(t, e.addr(), fn); got != fn+"\t3\t0\t0" {
				t.Fatalf("status %q, want 3 jobs", got)
			}
			// -I high, -L low.
			mustRun(t, "", bin, "-h", host, "-p", port, "-b", "-I", "-f", fn, "high")
			mustRun(t, "", bin, "-h", host, "-p", port, "-b", "-L", "-f", fn, "low")
			if got := findLine(dial(t, e.addr()).adminList("prioritystatus"), fn+"\t"); got != fn+"\t1\t3\t1\t0" {
				t.Fatalf("prioritystatus %q, want %q", got, fn+"\t1\t3\t1\t0")
			}
			uniq := dial(t, e.addr()).adminList("show unique jobs")
			if findLine(uniq, "cli-uniq") != "cli-uniq" {
				t.Fatalf("show unique jobs %q lacks cli-uniq", uniq)
			}
		}},
	}
}

// phpResult is what testdata/php_client.php prints.
type phpResult struct {
	Result    string   `json:"result"`
	RC        int      `json:"rc"`
	SuccessRC int      `json:"success_rc"`
	TimeoutRC int      `json:"timeout_rc"`
	Handle    string   `json:"handle"`
	Status    []any    `json:"status"`
	Unknown   []any    `json:"unknown"`
	OK        bool     `json:"ok"`
	Events    []string `json:"events"`
	Elapsed   float64  `json:"elapsed"`
	Ping      bool     `json:"ping"`
}

func runPHP(t *testing.T, e *env, prefix, mode string) phpResult {
	t.Helper()
	php := testpeer.RequirePHPGearman(t)
	host, port := splitAddr(t, e.addr())
	out := mustRun(t, "", php, testdata("php_client.php"), host, port, prefix, mode)
	var r phpResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("php_client %s: %v: %q", mode, err, out)
	}
	return r
}

func startPHPWorker(t *testing.T, e *env, prefix string, jobs int) *testpeer.Process {
	t.Helper()
	php := testpeer.RequirePHPGearman(t)
	host, port := splitAddr(t, e.addr())
	return startWorker(t, e, prefix+".upper", php, testdata("php_worker.php"), host, port, prefix, strconv.Itoa(jobs))
}

// phpChecks: PHP's gearman extension (libgearman 1.1.20) as client and worker.
func phpChecks() []check {
	return []check{
		// Checklist (A) "All 7 SUBMIT variants": doNormal, doHigh, doLow.
		{name: "doNormal_doHigh_doLow", run: func(t *testing.T, e *env) {
			prefix := e.names.fn("php")
			w := startPHPWorker(t, e, prefix, 3)
			for _, mode := range []string{"doNormal", "doHigh", "doLow"} {
				r := runPHP(t, e, prefix, mode)
				if want := strings.ToUpper("hello " + mode); r.Result != want || r.RC != r.SuccessRC {
					t.Fatalf("%s: %+v, want result %q", mode, r, want)
				}
			}
			waitExit(t, w)
		}},
		// Checklist (A) "GET_STATUS -> STATUS_RES": doBackground + jobStatus.
		{name: "doBackground_jobStatus", run: func(t *testing.T, e *env) {
			r := runPHP(t, e, e.names.fn("phpbg"), "doBackground")
			if !handleRE.MatchString(r.Handle) {
				t.Fatalf("handle %q", r.Handle)
			}
			if got, _ := json.Marshal(r.Status); string(got) != "[true,false,0,0]" {
				t.Fatalf("jobStatus = %s, want [true,false,0,0]", got)
			}
			if got, _ := json.Marshal(r.Unknown); string(got) != "[false,false,0,0]" {
				t.Fatalf("jobStatus(unknown) = %s, want [false,false,0,0]", got)
			}
		}},
		// Checklist (B) "Forward WORK_DATA/WARNING/STATUS/COMPLETE/FAIL" and
		// (A) OPTION_REQ exceptions: addTask/runTasks with every callback.
		{name: "addTask_runTasks_callbacks", run: func(t *testing.T, e *env) {
			prefix := e.names.fn("phptasks")
			w := startPHPWorker(t, e, prefix, 3)
			r := runPHP(t, e, prefix, "runTasks")
			// Events of one task keep their order; the order between tasks
			// depends on which job the worker grabs first, which differs
			// (cross-function dispatch, section 0).
			want := map[string][]string{
				prefix + ".chatty": {"data d1", "status 1/2", "warning w1", "data d2", "complete done:x"},
				prefix + ".fail":   {"fail"},
				prefix + ".exc":    {"exception boom"},
			}
			got := map[string][]string{}
			for _, ev := range r.Events {
				fn, rest, _ := strings.Cut(ev, " ")
				got[fn] = append(got[fn], rest)
			}
			if !r.OK || len(got) != len(want) {
				t.Fatalf("events %q (ok %v), want per task %q", r.Events, r.OK, want)
			}
			for fn, w := range want {
				if strings.Join(got[fn], "|") != strings.Join(w, "|") {
					t.Fatalf("task %s: events %q, want %q (all events %q)", fn, got[fn], w, r.Events)
				}
			}
			waitExit(t, w)
		}},
		{name: "setTimeout", run: func(t *testing.T, e *env) {
			r := runPHP(t, e, e.names.fn("phpto"), "setTimeout")
			if r.RC != r.TimeoutRC || r.Elapsed < 0.4 || r.Elapsed > 5 {
				t.Fatalf("setTimeout(500) on a job nobody runs: rc %d (GEARMAN_TIMEOUT %d) after %.2fs", r.RC, r.TimeoutRC, r.Elapsed)
			}
		}},
		// Checklist (A) "ECHO with any payload": ping.
		{name: "ping", run: func(t *testing.T, e *env) {
			if r := runPHP(t, e, e.names.fn("phpping"), "ping"); !r.Ping {
				t.Fatalf("ping failed: %+v", r)
			}
		}},
	}
}

func perlServer(e *env) string { return e.addr() }

func startPerlWorker(t *testing.T, e *env, prefix string, jobs int) *testpeer.Process {
	t.Helper()
	perl := testpeer.RequirePerlGearman(t)
	return startWorker(t, e, prefix+".upper", perl, testdata("perl_worker.pl"), perlServer(e), prefix, strconv.Itoa(jobs))
}

func runPerl(t *testing.T, e *env, prefix, mode string) map[string]string {
	t.Helper()
	perl := testpeer.RequirePerlGearman(t)
	out := mustRun(t, "", perl, testdata("perl_client.pl"), perlServer(e), prefix, mode)
	kv := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		kv[k] = v
	}
	return kv
}

// perlChecks: Perl's pure-Perl Gearman::Client and Gearman::Worker.
func perlChecks() []check {
	return []check{
		{name: "do_task", run: func(t *testing.T, e *env) {
			prefix := e.names.fn("pl")
			w := startPerlWorker(t, e, prefix, 2)
			kv := runPerl(t, e, prefix, "do_task")
			if kv["result"] != "HELLO PERL" || kv["fail"] != "undef" {
				t.Fatalf("do_task: %v", kv)
			}
			waitExit(t, w)
		}},
		// Checklist (B) coalescing and (A) GET_STATUS via the Perl client.
		{name: "dispatch_background_get_status", run: func(t *testing.T, e *env) {
			kv := runPerl(t, e, e.names.fn("plbg"), "dispatch_background")
			h := strings.TrimPrefix(kv["handle"], e.addr()+"//")
			if !handleRE.MatchString(h) || kv["known"] != "1" || kv["running"] != "0" || kv["coalesced"] != "1" || kv["unknown_known"] != "0" {
				t.Fatalf("dispatch_background/get_status: %v", kv)
			}
		}},
		{name: "task_set", run: func(t *testing.T, e *env) {
			prefix := e.names.fn("plts")
			w := startPerlWorker(t, e, prefix, 4)
			kv := runPerl(t, e, prefix, "taskset")
			want := map[string]string{"1": "ITEM1", "2": "ITEM2", "3": "ITEM3", "bad": "failed"}
			for k, v := range want {
				if kv[k] != v {
					t.Fatalf("task set: %v, want %v", kv, want)
				}
			}
			waitExit(t, w)
		}},
		// Checklist (B)/(Q) "WORK_EXCEPTION -> WORK_FAIL for non-exception
		// clients": a dying Gearman::Worker sends WORK_EXCEPTION. gearmand's
		// WORK_FAIL body "HANDLE\0" makes Gearman::Client die with "Got
		// work_fail for unknown handle"; gserverd's "HANDLE" works.
		{name: "DieIsFailWithoutTrailingNUL", gserverdOnly: true, run: func(t *testing.T, e *env) {
			prefix := e.names.fn("pldie")
			w := startPerlWorker(t, e, prefix, 1)
			kv := runPerl(t, e, prefix, "do_task_die")
			if kv["die"] != "undef" {
				t.Fatalf("do_task on a dying worker: %v, want die=undef", kv)
			}
			// The worker's own WORK_FAIL after its WORK_EXCEPTION gets
			// ERROR JOB_NOT_FOUND; it is stopped at cleanup.
			_ = w
		}},
	}
}
