package interop

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// findLine returns the first line with the given prefix.
func findLine(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// Checklist (A) "status, workers, prioritystatus, show jobs, show unique
// jobs, cancel job, create function, drop function, maxqueue (1 or 3
// sizes), getpid, verbose, version: byte-exact formats from section 3,
// including \n versus \r\n and the ERR ... +-encoded texts".
func adminChecks() []check {
	return []check{
		{name: "Formats/Lists", run: func(t *testing.T, e *env) {
			fn := e.names.fn("adm")
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJobHighBg, fn, "u-high", "x")
			c.submit(protocol.SubmitJobBg, fn, "", "x")
			c.submit(protocol.SubmitJobLowBg, fn, "u-low", "x")
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.barrier()
			if got := findLine(c.adminList("status"), fn+"\t"); got != fn+"\t3\t0\t1" {
				t.Fatalf("status line %q, want %q", got, fn+"\t3\t0\t1")
			}
			// Extra arguments after status/workers are ignored.
			if got := findLine(c.adminList("status extra words"), fn+"\t"); got != fn+"\t3\t0\t1" {
				t.Fatalf("status with args: line %q", got)
			}
			if got := findLine(c.adminList("prioritystatus"), fn+"\t"); got != fn+"\t1\t1\t1\t1" {
				t.Fatalf("prioritystatus line %q, want %q", got, fn+"\t1\t1\t1\t1")
			}
			jobs := c.adminList("show jobs")
			jobRE := regexp.MustCompile(`^H:[^\t]+:[0-9]+\t[0-9]+\t[01]\t[01]$`)
			for _, l := range jobs {
				if !jobRE.MatchString(l) {
					t.Fatalf("show jobs line %q does not match HANDLE\\tRETRIES\\tIGNORE\\tQUEUED", l)
				}
			}
			uniq := c.adminList("show unique jobs")
			hasEmpty := false
			for _, want := range []string{"u-high", "u-low"} {
				if findLine(uniq, want) != want {
					t.Fatalf("show unique jobs %q lacks %q", uniq, want)
				}
			}
			for _, l := range uniq {
				hasEmpty = hasEmpty || l == ""
			}
			if !hasEmpty {
				t.Fatalf("show unique jobs %q: want an empty line for the empty unique", uniq)
			}
			workers := c.adminList("workers")
			found := false
			for _, l := range workers {
				if !workerLineRE.MatchString(l) {
					t.Fatalf("workers line %q does not match \"FD IP ID :[ FUNC...]\"", l)
				}
				found = found || strings.HasSuffix(l, " : "+fn)
			}
			if !found {
				t.Fatalf("workers %q: no line for the worker of %s", workers, fn)
			}
			// A connection with no functions: no trailing space after ':'.
			if !regexp.MustCompile(`^[0-9]+ 127\.0\.0\.1 - :$`).MatchString(lastNoFunc(workers)) {
				t.Fatalf("workers %q: no \"FD IP - :\" line for the admin connection", workers)
			}
		}},
		{name: "Formats/SingleLines", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			c.write([]byte("version\n"))
			if v := c.line(); !regexp.MustCompile(`^OK [^\r\n ]+\n$`).MatchString(v) {
				t.Fatalf("version %q, want \"OK <version>\\n\"", v)
			}
			c.write([]byte("verbose\n"))
			if v := c.line(); !regexp.MustCompile(`^OK (FATAL|ALERT|CRITICAL|ERROR|WARNING|NOTICE|INFO|DEBUG)\n$`).MatchString(v) {
				t.Fatalf("verbose %q, want \"OK <LEVEL>\\n\"", v)
			}
			c.write([]byte("getpid\n"))
			if v, want := c.line(), "OK "+strconv.Itoa(e.srv.Cmd.Process.Pid)+"\n"; v != want {
				t.Fatalf("getpid %q, want %q", v, want)
			}
		}},
		{name: "Errors/Texts", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			for _, tc := range []struct{ cmd, want string }{
				{"bogus", protocol.ReplyUnknownCommand("bogus")},
				{"   status", protocol.ReplyUnknownCommand("")},
				{"cancel job", protocol.ReplyUnknownCommand("cancel")},
				{"cancel foo bar", protocol.ReplyUnknownError},
				{"cancel job H:nohost:99999", protocol.ReplyUnknownJob},
				{"show foo", protocol.ReplyUnknownShowArgs},
				{"create function", protocol.ReplyInvalidArguments("create")},
				{"maxqueue", protocol.ReplyInvalidArguments("maxqueue")},
				{"drop function " + e.names.fn("nosuch"), protocol.ReplyFunctionNotFound},
				// Checklist (B) "shutdown [graceful]: only with --admin-shutdown
				// ...; otherwise gearmand's unknown-command error".
				{"shutdown", protocol.ReplyUnknownCommand("shutdown")},
				{"shutdown graceful", protocol.ReplyUnknownCommand("shutdown")},
			} {
				c.write([]byte(tc.cmd + "\r\n"))
				if got := c.readN(len(tc.want)); got != tc.want {
					t.Fatalf("%q: got %q, want %q", tc.cmd, got, tc.want)
				}
			}
			c.barrier() // nothing more was sent
		}},
		{name: "Functions/CreateDrop", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("created")
			c.write([]byte("create function " + fn + "\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("create function: %q", got)
			}
			if got := findLine(c.adminList("status"), fn+"\t"); got != fn+"\t0\t0\t0" {
				t.Fatalf("after create: status line %q", got)
			}
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.barrier()
			c.write([]byte("drop function " + fn + "\r\n"))
			if got := c.readN(len(protocol.ReplyFunctionBusy)); got != protocol.ReplyFunctionBusy {
				t.Fatalf("drop with a worker: %q", got)
			}
			w.send(protocol.CantDo, fn)
			w.barrier()
			// The name matches case-insensitively.
			c.write([]byte("drop function " + strings.ToUpper(fn) + "\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("drop: %q", got)
			}
			if got := findLine(c.adminList("status"), fn+"\t"); got != "" {
				t.Fatalf("after drop: status line %q", got)
			}
		}},
		{name: "Functions/Maxqueue", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("maxq")
			c.submit(protocol.SubmitJobBg, fn, "", "1")
			c.write([]byte("maxqueue " + fn + " 2\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("maxqueue: %q", got)
			}
			c.submit(protocol.SubmitJobBg, fn, "", "2")
			c.send(protocol.SubmitJobBg, fn, "", "3")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			// Three sizes: high, normal, low.
			c.write([]byte("maxqueue " + fn + " 10 2 2\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("maxqueue 3 sizes: %q", got)
			}
			c.submit(protocol.SubmitJobHighBg, fn, "", "h")
			c.send(protocol.SubmitJobLowBg, fn, "", "l")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			c.write([]byte("maxqueue " + fn + " 0\r\n"))
			c.readN(len(protocol.ReplyOK))
			c.submit(protocol.SubmitJobBg, fn, "", "unlimited")
		}},
		// Issue 11: a submit whose unique matches a queued or running job
		// adds no job, so maxqueue does not refuse it; the limit counts
		// running jobs too.
		{name: "Functions/MaxqueueCoalesces", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("mqco")
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn) // gearmand's maxqueue only limits a known function
			w.barrier()
			c.write([]byte("maxqueue " + fn + " 1\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("maxqueue: %q", got)
			}
			// Pipelined: the second joins the first before a reply.
			c.send(protocol.SubmitJobBg, fn, "u1", "a")
			c.send(protocol.SubmitJobBg, fn, "u1", "b")
			h := c.expectType(protocol.JobCreated).args[0]
			c.expect(protocol.JobCreated, h)
			c.send(protocol.SubmitJobBg, fn, "u2", "c")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			c.send(protocol.SubmitJobHighBg, fn, "u1", "d")
			c.expect(protocol.JobCreated, h)
			fg := dial(t, e.addr())
			if got := fg.submit(protocol.SubmitJob, fn, "u1", "e"); got != h {
				t.Fatalf("foreground submit of a queued unique at the limit: %s, want %s", got, h)
			}
			if got := w.grab(fn); got.args[0] != h {
				t.Fatalf("grabbed %v, want %s", got, h)
			}
			fg2 := dial(t, e.addr())
			if got := fg2.submit(protocol.SubmitJob, fn, "u1", "f"); got != h {
				t.Fatalf("foreground submit of a running unique at the limit: %s, want %s", got, h)
			}
			c.send(protocol.SubmitJobBg, fn, "u3", "g") // the running job counts
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			w.send(protocol.WorkComplete, h, "r")
			fg.expect(protocol.WorkComplete, h, "r")
			fg2.expect(protocol.WorkComplete, h, "r")
			c.submit(protocol.SubmitJobBg, fn, "u3", "g")
		}},
		// Issue 11: maxqueue's sizes as gearmand 1.1.20 reads them: two
		// sizes are high and normal (low unlimited), a size is C's atoi cut
		// to an int, a negative one is unlimited. (A fourth size makes six
		// words, and gearmand closes a connection that sends an admin line
		// of more than five.)
		{name: "Functions/MaxqueueSizes", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("mqsz")
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn) // gearmand's maxqueue only limits a known function
			w.barrier()
			maxqueue := func(args string) {
				t.Helper()
				c.write([]byte("maxqueue " + fn + " " + args + "\r\n"))
				if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
					t.Fatalf("maxqueue %s: %q", args, got)
				}
			}
			maxqueue("1 3")
			c.submit(protocol.SubmitJobBg, fn, "", "n1")
			c.submit(protocol.SubmitJobBg, fn, "", "n2")
			c.send(protocol.SubmitJobHighBg, fn, "", "h")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			for i := range 3 {
				c.submit(protocol.SubmitJobLowBg, fn, "", "l"+strconv.Itoa(i))
			}
			c.send(protocol.SubmitJobBg, fn, "", "n3")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			// 5 jobs now. 4294967301 is 5 as a C int; -1 is unlimited.
			maxqueue("4294967301")
			c.send(protocol.SubmitJobLowBg, fn, "", "l")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			maxqueue("-1")
			c.submit(protocol.SubmitJobBg, fn, "", "n4")
			// Three sizes: high, normal, low; the limit counts the jobs of
			// every priority (6 now).
			maxqueue("9 6 7")
			c.send(protocol.SubmitJobBg, fn, "", "n5")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			c.submit(protocol.SubmitJobLowBg, fn, "", "l7")
			c.send(protocol.SubmitJobLowBg, fn, "", "l8")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
			c.submit(protocol.SubmitJobHighBg, fn, "", "h2")
		}},
		{name: "Jobs/Cancel", run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("cancel")
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			a := dial(t, e.addr())
			a.write([]byte("cancel job " + h + "\r\n"))
			if got := a.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("cancel job: %q", got)
			}
			c.expect(protocol.WorkFail, h)
			w := dial(t, e.addr())
			w.send(protocol.CanDo, fn)
			w.send(protocol.GrabJob)
			w.expect(protocol.NoJob)
		}},
		// Section 0 decisions (checklist (Q)).
		{name: "Functions/CreateWithLFKeepsName", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("lf")
			c.write([]byte("create function " + fn + "\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("create: %q", got)
			}
			if got := findLine(c.adminList("status"), fn+"\t"); got != fn+"\t0\t0\t0" {
				t.Fatalf("status line %q, want %q", got, fn+"\t0\t0\t0")
			}
		}},
		{name: "Functions/DropRefusesQueuedJobs", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("dropq")
			c.submit(protocol.SubmitJobBg, fn, "", "x")
			c.write([]byte("drop function " + fn + "\r\n"))
			if got := c.line(); !strings.HasPrefix(got, "ERR ") || !strings.HasSuffix(got, "\r\n") {
				t.Fatalf("drop with a queued job: %q, want an ERR line", got)
			}
			if got := findLine(c.adminList("status"), fn+"\t"); got != fn+"\t1\t0\t0" {
				t.Fatalf("status line %q after refused drop", got)
			}
		}},
		{name: "Functions/MaxqueueUnknownFunction", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("mqnew")
			c.write([]byte("maxqueue " + fn + " 1\r\n"))
			if got := c.readN(len(protocol.ReplyOK)); got != protocol.ReplyOK {
				t.Fatalf("maxqueue: %q", got)
			}
			c.submit(protocol.SubmitJobBg, fn, "", "1")
			c.send(protocol.SubmitJobBg, fn, "", "2")
			c.expectError(protocol.CodeQueueError, protocol.TextQueueFull)
		}},
		{name: "Jobs/CancelRunningDetaches", gserverdOnly: true, run: func(t *testing.T, e *env) {
			c := dial(t, e.addr())
			fn := e.names.fn("cancelrun")
			h := c.submit(protocol.SubmitJob, fn, "", "x")
			w := dial(t, e.addr())
			w.grab(fn)
			a := dial(t, e.addr())
			a.write([]byte("cancel job " + h + "\r\n"))
			a.readN(len(protocol.ReplyOK))
			c.expect(protocol.WorkFail, h)
			w.send(protocol.WorkComplete, h, "late")
			w.barrier()
			c.barrier() // no WORK_COMPLETE after the WORK_FAIL
		}},
		{name: "Jobs/AbandonedForegroundJobRemoved", gserverdOnly: true, run: func(t *testing.T, e *env) {
			fn := e.names.fn("abandon")
			c := dial(t, e.addr())
			c.submit(protocol.SubmitJob, fn, "", "x")
			c.c.Close()
			waitFor(t, "abandoned job to leave status", func() bool {
				return statusOf(t, e.addr(), fn) == fn+"\t0\t0\t0"
			})
		}},
		// gearadmin (every flag it has), output compared by shape.
		{name: "Gearadmin/AllFlags", run: func(t *testing.T, e *env) {
			bin := testpeer.Require(t, "gearadmin")
			fn := e.names.fn("ga")
			c := dial(t, e.addr())
			h := c.submit(protocol.SubmitJobBg, fn, "ga-uniq", "x")
			host, port := splitAddr(t, e.addr())
			run := func(args ...string) (string, string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("gearadmin %v: %v\n%s", args, err, stderr.String())
				}
				return stdout.String(), stderr.String()
			}
			lines := func(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
			out, _ := run("--status")
			if l := lines(out); l[len(l)-1] != "." || findLine(l, fn+"\t") != fn+"\t1\t0\t0" {
				t.Fatalf("--status: %q", out)
			}
			// -S (--ssl): Debian's libgearman is built without TLS, so the
			// flag changes nothing on the wire; it must keep working.
			if ssl, _ := run("-S", "--status"); findLine(lines(ssl), fn+"\t") != fn+"\t1\t0\t0" || !strings.HasSuffix(ssl, "\n.\n") {
				t.Fatalf("-S --status: %q lacks %s's line", ssl, fn)
			}
			out, _ = run("--priority-status")
			if l := lines(out); l[len(l)-1] != "." || findLine(l, fn+"\t") != fn+"\t0\t1\t0\t0" {
				t.Fatalf("--priority-status: %q", out)
			}
			out, _ = run("--workers")
			if l := lines(out); l[len(l)-1] != "." || !workerLineRE.MatchString(l[0]) {
				t.Fatalf("--workers: %q", out)
			}
			out, _ = run("--show-jobs")
			if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(h)+`\t0\t0\t[01]$`).MatchString(out) || !strings.HasSuffix(out, "\n.\n") {
				t.Fatalf("--show-jobs: %q", out)
			}
			out, _ = run("--show-unique-jobs")
			if !regexp.MustCompile(`(?m)^ga-uniq$`).MatchString(out) || !strings.HasSuffix(out, "\n.\n") {
				t.Fatalf("--show-unique-jobs: %q", out)
			}
			out, _ = run("--server-version")
			if !regexp.MustCompile(`^[^\s]+\n$`).MatchString(out) {
				t.Fatalf("--server-version: %q", out)
			}
			out, _ = run("--server-verbose")
			if !regexp.MustCompile(`^(FATAL|ALERT|CRITICAL|ERROR|WARNING|NOTICE|INFO|DEBUG)\n$`).MatchString(out) {
				t.Fatalf("--server-verbose: %q", out)
			}
			out, _ = run("--getpid")
			if want := strconv.Itoa(e.srv.Cmd.Process.Pid) + "\n"; out != want {
				t.Fatalf("--getpid: %q, want %q", out, want)
			}
			nf := e.names.fn("ganew")
			if out, _ = run("--create-function=" + nf); out != "OK\n" {
				t.Fatalf("--create-function: %q", out)
			}
			if out, _ = run("--drop-function=" + nf); out != "OK\n" {
				t.Fatalf("--drop-function: %q", out)
			}
			if out, errOut := run("--drop-function=" + nf); out != "" || !strings.Contains(errOut, "Error: function not found") {
				t.Fatalf("--drop-function of a missing function: %q %q", out, errOut)
			}
			if out, _ = run("--cancel-job=" + h); out != "OK\n" {
				t.Fatalf("--cancel-job: %q", out)
			}
			if out, errOut := run("--cancel-job=H:nohost:99999"); out != "" || !strings.Contains(errOut, "Error: UNKNOWN_JOB") {
				t.Fatalf("--cancel-job unknown: %q %q", out, errOut)
			}
			// Several flags run in gearadmin's fixed order: workers before status.
			out, _ = run("--status", "--workers")
			first, rest, _ := strings.Cut(out, "\n.\n")
			if !workerLineRE.MatchString(strings.Split(first, "\n")[0]) || !strings.Contains(rest, fn+"\t") {
				t.Fatalf("--status --workers: %q, want the workers list then the status list", out)
			}
		}},
	}
}

// workerLineRE is one line of `workers`: "FD IP CLIENT_ID :[ FUNC]...".
var workerLineRE = regexp.MustCompile(`^[0-9]+ 127\.0\.0\.1 \S+ :( \S+)*$`)

func lastNoFunc(workers []string) string {
	for _, l := range workers {
		if strings.HasSuffix(l, " :") {
			return l
		}
	}
	return ""
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q", addr)
	}
	return addr[:i], addr[i+1:]
}
