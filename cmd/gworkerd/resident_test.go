package main

// End to end tests of resident handlers (jobs/README.md, "Resident
// handlers"): a real gworkerd serves the fixtures of testdata/resident
// through the shipped PHP and Python runtimes to a C gearmand and a
// gserverd at once, and real clients (the gearman CLI, PHP's
// GearmanClient, the raw protocol) submit the jobs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// residentJobs holds the job files the tests copy into a job directory.
const residentJobs = "testdata/resident/jobs"

// residentTimeout bounds one job seen from a client; CI is a loaded machine.
const residentTimeout = 60 * time.Second

// residentEnv is a gworkerd serving resident handlers to two servers.
type residentEnv struct {
	*env
	servers []jobServer
}

// jobServer is one of the job servers a residentEnv's gworkerd serves.
type jobServer struct {
	name string // "gearmand" or "gserverd"
	*testpeer.Process
}

func (s jobServer) hostPort() (string, string) {
	host, port, _ := strings.Cut(s.Addr, ":")
	return host, port
}

// startResident starts a C gearmand and a gserverd, and a gworkerd
// serving both from a fresh job directory holding the named files of
// testdata/resident/jobs: a file that starts with #! is copied
// executable, any other one not (as a seed's job_<name>.php is).
// functions is the config's functions section, optionally followed by
// top-level keys. It waits until every function of counts runs that many
// children; at cleanup it stops gworkerd and checks that no process of
// it, handlers included, is left.
func startResident(t *testing.T, functions string, files []string, counts map[string]int) *residentEnv {
	t.Helper()
	gd := testpeer.StartGearmand(t)
	gs := testpeer.StartGserverd(t)
	e := newEnv(t, gd.Addr+", "+gs.Addr, functions, 10*time.Second)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(residentJobs, f))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if bytes.HasPrefix(b, []byte("#!")) {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(e.jobs, f), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	e.must("start")
	pid := e.masterPid()
	t.Cleanup(func() {
		children := e.allChildPids()
		if out, err := e.run("stop"); err != nil {
			t.Errorf("gworkerd stop: %v\n%s", err, out)
		}
		reap(pid)
		noneLeft(t, append(children, pid))
	})
	for fn, n := range counts {
		waitFor(t, residentTimeout, fmt.Sprintf("%d %s children", n, fn), func() bool { return len(e.running(fn)) == n })
	}
	return &residentEnv{env: e, servers: []jobServer{{"gearmand", gd}, {"gserverd", gs}}}
}

// callJob runs one foreground job through the raw protocol, within
// residentTimeout; with exceptions the client asks for WORK_EXCEPTION.
func callJob(srv jobServer, fn, payload string, exceptions bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), residentTimeout)
	defer cancel()
	return submitJob(ctx, srv.Addr, fn, payload, false, exceptions)
}

// job runs one job through the raw protocol and fails the test unless it
// completes.
func (r *residentEnv) job(srv jobServer, fn, payload string) string {
	r.t.Helper()
	out, err := callJob(srv, fn, payload, false)
	if err != nil {
		r.t.Fatalf("%s via %s, %q: %v\nlog:\n%s", fn, srv.name, payload, err, r.logTail())
	}
	return out
}

// pid runs a job whose result is the pid of the handler that served it.
func (r *residentEnv) pid(srv jobServer, fn string) int {
	r.t.Helper()
	out := r.job(srv, fn, "pid")
	pid, err := strconv.Atoi(out)
	if err != nil {
		r.t.Fatalf("%s via %s: pid job answered %q", fn, srv.name, out)
	}
	return pid
}

// gearmanCLI runs one job with the gearman command-line client.
func gearmanCLI(t *testing.T, srv jobServer, fn, payload string) (stdout, stderr string, err error) {
	t.Helper()
	bin := testpeer.Require(t, "gearman")
	host, port := srv.hostPort()
	ctx, cancel := context.WithTimeout(context.Background(), residentTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-f", fn, payload)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// phpClient runs one job with PHP's GearmanClient (jobs/testdata/client.php)
// and returns its callbacks, one line each: status:N/D, data:..., then
// complete:..., fail or exception:....
func phpClient(t *testing.T, srv jobServer, fn, payload string, exceptions bool) []string {
	t.Helper()
	php := testpeer.RequirePHPGearman(t)
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	host, port := srv.hostPort()
	args := []string{filepath.Join(root, "jobs", "testdata", "client.php"), host, port, fn, payload}
	if exceptions {
		args = append(args, "exceptions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), residentTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, php, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("php client, %s via %s, %q: %v\n%s", fn, srv.name, payload, err, out)
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// procStat returns the fields of /proc/PID/stat that follow the
// command: state, ppid, pgrp, session...
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil, fmt.Errorf("process %d: stat %q", pid, s)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 4 {
		return nil, fmt.Errorf("process %d: stat %q", pid, s)
	}
	return f, nil
}

// procParent returns the parent of a live process.
func procParent(t *testing.T, pid int) int {
	t.Helper()
	f, err := procStat(pid)
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procChildren maps each live process whose parent is one of parents to
// that parent.
func procChildren(t *testing.T, parents []int) map[int]int {
	t.Helper()
	out := map[int]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		ppid, _ := strconv.Atoi(f[1])
		if f[0] != "Z" && slices.Contains(parents, ppid) {
			out[pid] = ppid
		}
	}
	return out
}

// procExe returns the base name of the program a process runs.
func procExe(t *testing.T, pid int) string {
	t.Helper()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	return filepath.Base(exe)
}

// A GearmanDaemon job file (job_seed.php, mode 0644, no #!) answers the
// gearman CLI and PHP's GearmanClient on both servers; status, data and
// uncaught exceptions reach the clients; one handler process serves
// every job.
func TestResidentSeedPHP(t *testing.T) {
	t.Parallel()
	testpeer.RequirePHPGearman(t)
	testpeer.Require(t, "gearman")
	r := startResident(t, "  seed:\n    count: 1\n", []string{"job_seed.php"}, map[string]int{"seed": 1})
	if st, err := os.Stat(filepath.Join(r.jobs, "job_seed.php")); err != nil {
		t.Fatal(err)
	} else if st.Mode().Perm() != 0o644 {
		t.Fatalf("job_seed.php: mode %v, want a plain 0644 file as a seed's", st.Mode())
	}
	child := r.running("seed")[0]
	handler := r.pid(r.servers[0], "seed")
	if got := procParent(t, handler); got != child {
		t.Errorf("handler %d: parent %d, want the seed child %d", handler, got, child)
	}
	if got := procExe(t, handler); !strings.HasPrefix(got, "php") {
		t.Errorf("handler %d runs %q, want php", handler, got)
	}

	type cliCase struct {
		payload string
		wantOut []string // each in stdout
		wantErr string   // in stderr
		fails   bool     // a non-zero exit
	}
	cli := []cliCase{
		{payload: "hello", wantOut: []string{"seed:hello"}},
		// The CLI writes WORK_DATA and the result as they come, and a
		// line per WORK_STATUS.
		{payload: "progress", wantOut: []string{"half done", "progress complete", "50% Complete\n", "100% Complete\n"}},
	}
	php := []struct {
		payload    string
		exceptions bool
		want       []string
	}{
		{"hello", false, []string{"complete:seed:hello"}},
		{"progress", false, []string{"status:1/2", "data:half done", "status:2/2", "complete:progress complete"}},
		{"throw", true, []string{"exception:seed exception from php"}},
	}
	for _, srv := range r.servers {
		cases := cli
		if srv.name == "gserverd" {
			// gserverd turns the exception into WORK_FAIL for a client
			// that did not ask for exceptions, as the gearman CLI does not.
			// (gearmand sends that WORK_FAIL with the handle "H:...\0",
			// which libgearman does not recognise: the CLI waits for its
			// -t timeout, then exits 0. The raw client below sees the
			// WORK_FAIL.)
			cases = append(slices.Clip(cases), cliCase{payload: "throw", wantErr: "Job failed", fails: true})
		}
		for _, tc := range cases {
			out, errOut, err := gearmanCLI(t, srv, "seed", tc.payload)
			if (err != nil) != tc.fails {
				t.Errorf("%s: gearman -f seed %q: %v (stdout %q, stderr %q), want failure %v", srv.name, tc.payload, err, out, errOut, tc.fails)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("%s: gearman -f seed %q: stdout %q, want %q in it", srv.name, tc.payload, out, w)
				}
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("%s: gearman -f seed %q: stderr %q, want %q in it", srv.name, tc.payload, errOut, tc.wantErr)
			}
		}
		for _, tc := range php {
			if got := phpClient(t, srv, "seed", tc.payload, tc.exceptions); !slices.Equal(got, tc.want) {
				t.Errorf("%s: php client, seed %q: %q, want %q", srv.name, tc.payload, got, tc.want)
			}
		}
		// The raw protocol: a plain client gets WORK_FAIL, one that asked
		// for exceptions the message.
		if _, err := callJob(srv, "seed", "throw", false); !errors.Is(err, testpeer.ErrJobFailed) {
			t.Errorf("%s: plain client, seed throw: %v, want WORK_FAIL", srv.name, err)
		}
		if _, err := callJob(srv, "seed", "throw", true); err == nil || err.Error() != "job exception: seed exception from php" {
			t.Errorf("%s: client with exceptions, seed throw: %v, want the exception's message", srv.name, err)
		}
	}
	// An exception is the job's verdict, not a crash: the same handler
	// served everything.
	if got := r.pid(r.servers[1], "seed"); got != handler {
		t.Errorf("seed handler %d after the jobs, want %d throughout", got, handler)
	}
}

// 100 jobs on both servers are served by at most count PHP processes,
// each a child of a gworkerd child.
func TestResidentPoolPids(t *testing.T) {
	t.Parallel()
	const count, jobs, clients = 2, 100, 8
	testpeer.Require(t, "php")
	r := startResident(t, fmt.Sprintf("  seed:\n    count: %d\n", count), []string{"job_seed.php"}, map[string]int{"seed": count})
	children := r.running("seed")
	served, perPid := r.servePids(t, jobs, clients)
	t.Logf("%d jobs served by %d PHP processes (pid: jobs) %v, children %v", jobs, len(served), perPid, children)
	if len(served) == 0 || len(served) > count {
		t.Errorf("%d jobs served by %d processes %v, want 1 to %d (count)", jobs, len(served), perPid, count)
	}
	handlers := procChildren(t, children)
	if len(handlers) != count {
		t.Errorf("the seed children %v have the processes %v, want one handler each", children, handlers)
	}
	for pid, ppid := range served {
		if !slices.Contains(children, ppid) {
			t.Errorf("handler %d served as a child of %d, want one of the seed children %v", pid, ppid, children)
		}
		if handlers[pid] != ppid {
			t.Errorf("handler %d: now a child of %d, served as a child of %d", pid, handlers[pid], ppid)
		}
		if got := procExe(t, pid); !strings.HasPrefix(got, "php") {
			t.Errorf("handler %d runs %q, want php", pid, got)
		}
	}
	if got := r.running("seed"); !slices.Equal(got, children) {
		t.Errorf("seed children %v after the jobs, want %v unchanged", got, children)
	}
}

// servePids runs jobs "pids" jobs of seed from clients clients at once,
// on both servers in turn, and returns for each handler pid that served
// the parent it had then, and how many jobs it served. A failed job
// fails the test.
func (r *residentEnv) servePids(t *testing.T, jobs, clients int) (served, perPid map[int]int) {
	t.Helper()
	served, perPid = map[int]int{}, map[int]int{}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				srv := r.servers[i%2]
				out, err := callJob(srv, "seed", "pids", false)
				var pid, ppid int
				if err == nil {
					if _, serr := fmt.Sscanf(out, "%d %d", &pid, &ppid); serr != nil {
						err = fmt.Errorf("result %q: %w", out, serr)
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("job %d via %s: %w", i, srv.name, err))
				} else {
					served[pid] = ppid
					perPid[pid]++
				}
				mu.Unlock()
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d jobs failed: %v\nlog:\n%s", len(errs), jobs, errors.Join(errs...), r.logTail())
	}
	return served, perPid
}

// max_jobs: 3 recycles the child, and so its handler, between jobs: the
// handler and the child that serve change every third job.
func TestResidentMaxJobsRecycles(t *testing.T) {
	t.Parallel()
	const maxJobs, jobs = 3, 9
	testpeer.Require(t, "php")
	r := startResident(t, fmt.Sprintf("  seed:\n    count: 1\n    max_jobs: %d\n", maxJobs), []string{"job_seed.php"}, map[string]int{"seed": 1})
	type servedBy struct{ pid, ppid int }
	var got []servedBy
	for i := range jobs {
		out := r.job(r.servers[i%2], "seed", "pids")
		var s servedBy
		if _, err := fmt.Sscanf(out, "%d %d", &s.pid, &s.ppid); err != nil {
			t.Fatalf("job %d: result %q: %v", i, out, err)
		}
		got = append(got, s)
	}
	t.Logf("handler and child per job: %v", got)
	for i := 1; i < jobs; i++ {
		prev, cur := got[i-1], got[i]
		if i%maxJobs != 0 && cur != prev {
			t.Errorf("job %d served by %v, job %d by %v; want the same handler in the same child until %d jobs", i-1, prev, i, cur, maxJobs)
		}
		if i%maxJobs == 0 && (cur.pid == prev.pid || cur.ppid == prev.ppid) {
			t.Errorf("job %d served by %v, job %d by %v; want a new child and handler after %d jobs", i-1, prev, i, cur, maxJobs)
		}
	}
	// The last child took its max_jobs too: it is recycled as well, and
	// every child and handler that served is gone.
	for _, s := range got {
		waitFor(t, residentTimeout, fmt.Sprintf("recycled child %d and handler %d gone", s.ppid, s.pid), func() bool {
			return !sysproc.Alive(s.pid) && !sysproc.Alive(s.ppid)
		})
	}
	waitFor(t, residentTimeout, "a new child", func() bool {
		now := r.running("seed")
		return len(now) == 1 && !slices.ContainsFunc(got, func(s servedBy) bool { return s.ppid == now[0] })
	})
}

// memory_limit counts the handler's memory as the child's: a job that
// makes the PHP handler grow past the limit gets the child, and so the
// handler, recycled after it; jobs below the limit do not.
func TestResidentMemoryLimitRecycles(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "php")
	r := startResident(t, "  seed:\n    count: 1\n    memory_limit: 100MB\n", []string{"job_seed.php"}, map[string]int{"seed": 1})
	type servedBy struct{ pid, ppid int }
	serve := func(srv jobServer) servedBy {
		t.Helper()
		out := r.job(srv, "seed", "pids")
		var s servedBy
		if _, err := fmt.Sscanf(out, "%d %d", &s.pid, &s.ppid); err != nil {
			t.Fatalf("%s: result %q: %v", srv.name, out, err)
		}
		return s
	}
	first := serve(r.servers[0])
	for _, srv := range r.servers {
		if got := serve(srv); got != first {
			t.Fatalf("%s: a small job served by %v, want %v: below memory_limit nothing is recycled", srv.name, got, first)
		}
	}
	if out := r.job(r.servers[1], "seed", "grow"); out != "grown "+strconv.Itoa(first.pid) {
		t.Fatalf("grow: %q, want it served by %d", out, first.pid)
	}
	waitFor(t, residentTimeout, "the grown child and handler recycled", func() bool {
		now := r.running("seed")
		return !sysproc.Alive(first.pid) && !sysproc.Alive(first.ppid) && len(now) == 1 && now[0] != first.ppid
	})
	for _, srv := range r.servers {
		if got := serve(srv); got.pid == first.pid || got.ppid == first.ppid {
			t.Errorf("%s: after the recycling, served by %v, want a new child and handler (was %v)", srv.name, got, first)
		}
	}
	if log, err := os.ReadFile(r.log); err != nil || !bytes.Contains(log, []byte("reason=memory_limit")) {
		t.Errorf("gworkerd's log does not say the child was recycled for memory_limit (%v):\n%s", err, r.logTail())
	}
}

// A handler that exits mid-job has its job run again on a new handler
// (attempt 2) and the client gets that result; a handler that dies every
// time fails the job with an exception saying so, never silently.
func TestResidentHandlerDiesMidJob(t *testing.T) {
	t.Parallel()
	testpeer.RequirePHPGearman(t)
	r := startResident(t, "  crash:\n    count: 1\n", []string{"job_crash.php"}, map[string]int{"crash": 1})
	child := r.running("crash")
	resultRE := regexp.MustCompile(`^attempt 2 pid (\d+)$`)
	const died = "resident handler died mid-job: exit status 3: crash: exiting mid-job on attempt 2"
	for _, srv := range r.servers {
		before := r.pid(srv, "crash")
		out := r.job(srv, "crash", "once")
		m := resultRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: crash once: %q, want %q", srv.name, out, resultRE)
		}
		retried, _ := strconv.Atoi(m[1])
		if retried == before {
			t.Errorf("%s: the retry ran on handler %d, the one that exited", srv.name, before)
		}
		waitFor(t, residentTimeout, "the handler that exited gone", func() bool { return !sysproc.Alive(before) })
		if got := r.pid(srv, "crash"); got != retried {
			t.Errorf("%s: next job on handler %d, want the replacement %d", srv.name, got, retried)
		}
		if _, err := callJob(srv, "crash", "always", true); err == nil || err.Error() != "job exception: "+died {
			t.Errorf("%s: crash always: %v, want the exception %q", srv.name, err, died)
		}
		if got := phpClient(t, srv, "crash", "always", true); !slices.Equal(got, []string{"exception:" + died}) {
			t.Errorf("%s: php client, crash always: %q, want exception:%s", srv.name, got, died)
		}
	}
	if got := r.running("crash"); !slices.Equal(got, child) {
		t.Errorf("crash children %v, want %v: a handler is replaced inside its child", got, child)
	}
}

// A handler stuck in a loop past its timeout (2s) is killed and replaced.
// With on_timeout: requeue (the default) the server runs the job again
// and the client gets the result of that run; with on_timeout: fail the
// client gets the exception "timeout".
func TestResidentTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	testpeer.Require(t, "php")
	r := startResident(t, "  stuck:\n    timeout: 2s\n  stuckfail:\n    timeout: 2s\n    on_timeout: fail\n",
		[]string{"job_stuck.php", "job_stuckfail.php"}, map[string]int{"stuck": 1, "stuckfail": 1})
	children := map[string][]int{"stuck": r.running("stuck"), "stuckfail": r.running("stuckfail")}
	recovered := regexp.MustCompile(`^recovered pid (\d+) attempt 1$`)
	for _, srv := range r.servers {
		// requeue
		before := r.pid(srv, "stuck")
		marker := filepath.Join(t.TempDir(), "hung")
		start := time.Now()
		out := r.job(srv, "stuck", "hang-once "+marker)
		el := time.Since(start)
		m := recovered.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: stuck hang-once: %q, want %q", srv.name, out, recovered)
		}
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("%s: the first run did not happen: %v", srv.name, err)
		}
		if el < timeout {
			t.Errorf("%s: the requeued job completed after %v, before the timeout %v", srv.name, el, timeout)
		}
		again, _ := strconv.Atoi(m[1])
		if again == before {
			t.Errorf("%s: the requeued job ran on handler %d, the stuck one", srv.name, before)
		}
		waitFor(t, residentTimeout, "the stuck handler killed", func() bool { return !sysproc.Alive(before) })
		if got := r.pid(srv, "stuck"); got != again {
			t.Errorf("%s: next job on handler %d, want the replacement %d", srv.name, got, again)
		}

		// fail
		before = r.pid(srv, "stuckfail")
		start = time.Now()
		out, err := callJob(srv, "stuckfail", "hang", true)
		el = time.Since(start)
		if err == nil || err.Error() != "job exception: timeout" {
			t.Errorf("%s: stuckfail hang: %q, %v; want the exception timeout", srv.name, out, err)
		}
		if el < timeout {
			t.Errorf("%s: stuckfail hang failed after %v, before the timeout %v", srv.name, el, timeout)
		}
		waitFor(t, residentTimeout, "the stuck handler killed", func() bool { return !sysproc.Alive(before) })
		if got := r.pid(srv, "stuckfail"); got == before {
			t.Errorf("%s: next job on handler %d, the killed one", srv.name, got)
		}
	}
	for fn, want := range children {
		if got := r.running(fn); !slices.Equal(got, want) {
			t.Errorf("%s children %v, want %v: a handler is replaced inside its child", fn, got, want)
		}
	}
}

// A job_<name>.py without #! is served by the shipped Python runtime:
// result, status, data and exceptions, from one python3 process.
func TestResidentPython(t *testing.T) {
	t.Parallel()
	testpeer.RequirePHPGearman(t)
	testpeer.Require(t, "gearman")
	r := startResident(t, "  pyseed:\n    count: 1\n", []string{"job_pyseed.py"}, map[string]int{"pyseed": 1})
	child := r.running("pyseed")[0]
	resultRE := regexp.MustCompile(`^complete:py:php pid (\d+)$`)
	pids := map[string]bool{}
	for _, srv := range r.servers {
		out, errOut, err := gearmanCLI(t, srv, "pyseed", "cli")
		if err != nil || !strings.HasPrefix(out, "py halfpy:cli pid ") || !strings.Contains(out, "100% Complete") {
			t.Errorf("%s: gearman -f pyseed: %v, stdout %q stderr %q; want the data, the result and the status", srv.name, err, out, errOut)
		}
		got := phpClient(t, srv, "pyseed", "php", false)
		if len(got) != 4 || !slices.Equal(got[:3], []string{"status:1/2", "data:py half", "status:2/2"}) || !resultRE.MatchString(got[3]) {
			t.Fatalf("%s: php client, pyseed: %q, want status, data, status, %q", srv.name, got, resultRE)
		}
		pids[resultRE.FindStringSubmatch(got[3])[1]] = true
		if got := phpClient(t, srv, "pyseed", "throw", true); !slices.Equal(got, []string{"exception:seed exception from python"}) {
			t.Errorf("%s: php client, pyseed throw: %q, want the exception", srv.name, got)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("pyseed served by %v, want one resident process", pids)
	}
	for p := range pids {
		pid, _ := strconv.Atoi(p)
		if got := procExe(t, pid); !strings.HasPrefix(got, "python") {
			t.Errorf("handler %d runs %q, want python", pid, got)
		}
		if got := procParent(t, pid); got != child {
			t.Errorf("handler %d: parent %d, want the pyseed child %d", pid, got, child)
		}
	}
}

// GearmanManager's worker_dirs, both forms, without and with
// function_prefix (which begins the PHP names, not the Gearman ones):
// the function form Shout.php and the class form Tally.php, one instance
// per handler, so that its count goes on from job to job.
func TestResidentWorkerDirs(t *testing.T) {
	t.Parallel()
	testpeer.RequirePHPGearman(t)
	for _, tc := range []struct {
		dir, prefix string
		log         string // what Shout adds to $log for a 14-byte workload
	}{
		{dir: "workers", log: "shouting 14 bytes"},
		{dir: "prefixed", prefix: "gm_", log: "prefixed shouting 14 bytes"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			dir, err := filepath.Abs(filepath.Join("testdata", "resident", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			r := startResident(t, fmt.Sprintf("  Tally:\n    count: 1\nworker_dirs: [%s]\nfunction_prefix: %q\n", dir, tc.prefix),
				nil, map[string]int{"Shout": 1, "Tally": 1})
			var fns []string
			for _, c := range r.status().Children {
				fns = append(fns, c.Function)
			}
			slices.Sort(fns)
			if want := []string{"Shout", "Tally"}; !slices.Equal(fns, want) {
				t.Errorf("functions served %v, want %v", fns, want)
			}
			shout := regexp.MustCompile(`^HELLO (GEARMAND|GSERVERD) pid \d+$`)
			tally := regexp.MustCompile(`^complete:t(\d) run (\d) pid (\d+)$`)
			tallyPid, n := "", 0
			for _, srv := range r.servers {
				if out := r.job(srv, "Shout", "hello "+srv.name); !shout.MatchString(out) || !strings.Contains(out, strings.ToUpper(srv.name)) {
					t.Errorf("%s: Shout: %q, want %q", srv.name, out, shout)
				}
				for range 2 {
					n++
					got := phpClient(t, srv, "Tally", "t"+strconv.Itoa(n), false)
					if len(got) != 1 || !tally.MatchString(got[0]) {
						t.Fatalf("%s: Tally job %d: %q, want %q", srv.name, n, got, tally)
					}
					m := tally.FindStringSubmatch(got[0])
					if m[1] != strconv.Itoa(n) || m[2] != strconv.Itoa(n) {
						t.Errorf("%s: Tally job %d: %q, want run %d of one instance", srv.name, n, got[0], n)
					}
					if tallyPid != "" && m[3] != tallyPid {
						t.Errorf("%s: Tally job %d on pid %s, want the resident %s", srv.name, n, m[3], tallyPid)
					}
					tallyPid = m[3]
				}
			}
			// The function form's $log lines reach gworkerd's log.
			waitFor(t, residentTimeout, "Shout's $log in gworkerd's log", func() bool {
				log, _ := os.ReadFile(r.log)
				return bytes.Contains(log, []byte(tc.log))
			})
		})
	}
}

// An executable with a #! line that speaks the resident protocol itself
// is served as a resident handler with resident: true.
func TestResidentExecutable(t *testing.T) {
	t.Parallel()
	testpeer.RequirePHPGearman(t)
	testpeer.Require(t, "python3")
	r := startResident(t, "  proto:\n    count: 1\n    resident: true\n", []string{"job_proto.py"}, map[string]int{"proto": 1})
	if st, err := os.Stat(filepath.Join(r.jobs, "job_proto.py")); err != nil {
		t.Fatal(err)
	} else if st.Mode().Perm() != 0o755 {
		t.Fatalf("job_proto.py: mode %v, want an executable", st.Mode())
	}
	child := r.running("proto")[0]
	resultRE := regexp.MustCompile(`^complete:proto:x(\d) function proto pid (\d+) served (\d)$`)
	pid := ""
	for i := 1; i <= 4; i++ {
		srv := r.servers[i%2]
		got := phpClient(t, srv, "proto", "x"+strconv.Itoa(i), false)
		if len(got) != 3 || got[0] != "status:1/2" || got[1] != "data:proto data" || !resultRE.MatchString(got[2]) {
			t.Fatalf("%s: proto job %d: %q, want status, data, %q", srv.name, i, got, resultRE)
		}
		m := resultRE.FindStringSubmatch(got[2])
		if m[1] != strconv.Itoa(i) || m[3] != strconv.Itoa(i) {
			t.Errorf("%s: proto job %d: %q, want it served as the process's job %d", srv.name, i, got[2], i)
		}
		if pid != "" && m[2] != pid {
			t.Errorf("%s: proto job %d on pid %s, want the resident %s", srv.name, i, m[2], pid)
		}
		pid = m[2]
	}
	if got := phpClient(t, r.servers[0], "proto", "fail", true); !slices.Equal(got, []string{"status:1/2", "data:proto data", "exception:proto exception"}) {
		t.Errorf("proto fail: %q, want status, data and the exception", got)
	}
	p, _ := strconv.Atoi(pid)
	if got := procParent(t, p); got != child {
		t.Errorf("handler %d: parent %d, want the proto child %d", p, got, child)
	}
	if got := procExe(t, p); !strings.HasPrefix(got, "python") {
		t.Errorf("handler %d runs %q, want python", p, got)
	}
}

// gworkerd status shows the job a resident handler is running as its
// child's current job, and no job once it is done.
func TestResidentStatusCurrentJob(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "php")
	r := startResident(t, "  hold:\n    count: 1\n", []string{"job_hold.php"}, map[string]int{"hold": 1})
	child := r.running("hold")[0]
	// row returns the fields of the hold child's row of gworkerd status:
	// FUNCTION PID STATE UPTIME JOBS CURRENT-JOB AGE RSS RESTARTS LAST-EXIT.
	row := func() []string {
		t.Helper()
		out := r.must("status")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 10 && f[0] == "hold" {
				return f
			}
		}
		t.Fatalf("no hold row in gworkerd status:\n%s", out)
		return nil
	}
	type result struct {
		out string
		err error
	}
	for i, srv := range r.servers {
		dir := t.TempDir()
		done := make(chan result, 1)
		go func() {
			out, err := callJob(srv, "hold", dir, false)
			done <- result{out, err}
		}()
		var handle string
		waitFor(t, residentTimeout, "the hold job to start", func() bool {
			b, err := os.ReadFile(filepath.Join(dir, "handle"))
			handle = string(b)
			return err == nil
		})
		var f []string
		waitFor(t, residentTimeout, "status to show the job", func() bool {
			f = row()
			return f[5] != "-"
		})
		if f[1] != strconv.Itoa(child) || f[5] != handle {
			t.Errorf("%s: status row %q, want child %d with current job %s", srv.name, f, child, handle)
		}
		var resp supervise.Response
		if err := json.Unmarshal([]byte(r.must("status", "--json")), &resp); err != nil {
			t.Fatal(err)
		}
		if c := resp.Status.Children; len(c) != 1 || c[0].CurrentJob != handle {
			t.Errorf("%s: status --json children %+v, want current job %s", srv.name, c, handle)
		}
		if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if res := <-done; res.err != nil || !strings.HasPrefix(res.out, "released ") {
			t.Fatalf("%s: hold job: %q, %v", srv.name, res.out, res.err)
		}
		waitFor(t, residentTimeout, "status to show the job done", func() bool {
			f = row()
			return f[5] == "-" && f[4] == strconv.Itoa(i+1)
		})
	}
}

// A child killed (SIGKILL) while its handler runs a job takes the handler
// with it, and the job is not lost: the server gives it to the child that
// replaces the dead one, whose new handler completes it.
func TestResidentChildKilledMidJob(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "php")
	r := startResident(t, "  hold:\n    count: 1\n", []string{"job_hold.php"}, map[string]int{"hold": 1})
	type result struct {
		out string
		err error
	}
	for _, srv := range r.servers {
		child := r.running("hold")[0]
		dir := t.TempDir()
		handleFile := filepath.Join(dir, "handle")
		done := make(chan result, 1)
		go func() {
			out, err := callJob(srv, "hold", dir, false)
			done <- result{out, err}
		}()
		var handle []byte
		waitFor(t, residentTimeout, "the hold job to start", func() bool {
			var err error
			handle, err = os.ReadFile(handleFile)
			return err == nil
		})
		handlers := procChildren(t, []int{child})
		if len(handlers) != 1 {
			t.Fatalf("%s: child %d runs %v, want one handler", srv.name, child, handlers)
		}
		var handler int
		for p := range handlers {
			handler = p
		}
		if err := os.Remove(handleFile); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, residentTimeout, "the handler to die with its child", func() bool { return !sysproc.Alive(handler) })
		waitFor(t, residentTimeout, "the job to run again", func() bool {
			again, err := os.ReadFile(handleFile)
			return err == nil && bytes.Equal(again, handle)
		})
		// The new child can take the job before the master has handled
		// its ready report: its state there says running a moment later.
		waitFor(t, residentTimeout, fmt.Sprintf("a new hold child running for the killed %d", child), func() bool {
			now := r.running("hold")
			return len(now) == 1 && now[0] != child
		})
		if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		res := <-done
		pid, _ := strconv.Atoi(strings.TrimPrefix(res.out, "released "))
		if res.err != nil || pid == 0 || pid == handler {
			t.Errorf("%s: hold job: %q, %v; want it released by a new handler (the first was %d)", srv.name, res.out, res.err, handler)
		}
	}
}

// prefetch: 3 with concurrency: 2 gives the one child's 2 handlers up to
// 4 jobs each, ahead of the one they run: 200 jobs from 8 clients on
// both servers are all served, by those 2 PHP processes only; and a
// handler that exits mid-job still has its job retried on a new one.
func TestResidentPrefetch(t *testing.T) {
	t.Parallel()
	testpeer.RequirePHPGearman(t)
	const jobs, clients = 200, 8
	r := startResident(t, "  seed:\n    count: 1\n    concurrency: 2\n    prefetch: 3\n  crash:\n    count: 1\n    prefetch: 2\n",
		[]string{"job_seed.php", "job_crash.php"}, map[string]int{"seed": 1, "crash": 1})
	children := r.running("seed")
	served, _ := r.servePids(t, jobs, clients)
	if len(served) == 0 || len(served) > 2 {
		t.Errorf("%d jobs served by %d processes %v, want 1 or 2 (concurrency)", jobs, len(served), served)
	}
	for pid, ppid := range served {
		if !slices.Contains(children, ppid) {
			t.Errorf("handler %d served as a child of %d, want the seed child %v", pid, ppid, children)
		}
	}
	if got := r.running("seed"); !slices.Equal(got, children) {
		t.Errorf("seed children %v after the jobs, want %v unchanged", got, children)
	}

	srv := r.servers[0]
	before := r.pid(srv, "crash")
	out := r.job(srv, "crash", "once")
	if !strings.HasPrefix(out, "attempt 2 pid ") || out == fmt.Sprintf("attempt 2 pid %d", before) {
		t.Fatalf("crash once with prefetch: %q, want attempt 2 on a new handler (was %d)", out, before)
	}
}
