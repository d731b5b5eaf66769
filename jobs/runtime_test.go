package jobs

// Conformance tests of the shipped resident runtimes (jobs/runtime:
// gworkerd.php and gworkerd.py) against the resident protocol, version 1
// (README.md, "Resident handlers"). Each test starts the embedded script
// with the real interpreter, fd 3 and fd 4 on os.Pipe pairs, writes J
// frames and checks the replies frame by frame. The frame helpers here are
// the test's own, independent of the production encoder.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	jobruntime "github.com/gworkerd/gworkerd/jobs/runtime"
)

// testRuntimeWait bounds each wait on a runtime: for a frame, for its
// exit, for a line on its stderr. Generous, because CI is a loaded 2-core
// machine running these tests in parallel and PHP copies 8 MiB through
// pipes; a passing run never waits for it.
const testRuntimeWait = 2 * time.Minute

// testFrameMax is the largest reply body the test accepts, gworkerd's own
// limit.
const testFrameMax = 64 << 20

// testFrame is one frame of the resident protocol.
type testFrame struct {
	typ  byte
	body []byte
}

func (f testFrame) String() string {
	if len(f.body) > 64 {
		return fmt.Sprintf("%c(%d bytes: %q...)", f.typ, len(f.body), f.body[:32])
	}
	return fmt.Sprintf("%c%q", f.typ, f.body)
}

func (f testFrame) terminal() bool { return f.typ == 'C' || f.typ == 'F' || f.typ == 'E' }

// Expected frames, for the tables.
func testC(s string) testFrame { return testFrame{'C', []byte(s)} }
func testE(s string) testFrame { return testFrame{'E', []byte(s)} }
func testD(s string) testFrame { return testFrame{'D', []byte(s)} }
func testW(s string) testFrame { return testFrame{'W', []byte(s)} }
func testF() testFrame         { return testFrame{'F', []byte{}} }
func testS(n, d uint32) testFrame {
	return testFrame{'S', binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, n), d)}
}

// testEncodeFrame returns a frame: type, 4-byte big-endian length, body.
func testEncodeFrame(typ byte, body []byte) []byte {
	b := make([]byte, 0, 5+len(body))
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// testJobBody returns a J body: each field as a 4-byte big-endian length
// and its bytes.
func testJobBody(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// testReadFrame reads one frame. It returns io.EOF at end of file before
// a frame, io.ErrUnexpectedEOF inside one.
func testReadFrame(r io.Reader) (testFrame, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return testFrame{}, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > testFrameMax {
		return testFrame{}, fmt.Errorf("frame %c: body of %d bytes exceeds %d", h[0], n, testFrameMax)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return testFrame{}, fmt.Errorf("frame %c: body: %w", h[0], err)
	}
	return testFrame{h[0], body}, nil
}

func testFramesEqual(a, b []testFrame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].typ != b[i].typ || !bytes.Equal(a[i].body, b[i].body) {
			return false
		}
	}
	return true
}

// testRuntime is one way to run a runtime script.
type testRuntime struct {
	name   string
	lang   string // "php" or "python": which fixtures and cases apply
	ext    bool   // PHP with the gearman extension loaded
	script func() []byte
	file   string
	// argv returns the interpreter and its flags, or skips t.
	argv func(t *testing.T) []string
}

func testRuntimes() []testRuntime {
	return []testRuntime{
		{
			name: "php-n", lang: "php", script: jobruntime.PHP, file: jobruntime.PHPFile,
			// -n: no php.ini, so no gearman extension either.
			argv: func(t *testing.T) []string { return []string{testpeer.Require(t, "php"), "-n"} },
		},
		{
			name: "php-gearman", lang: "php", ext: true, script: jobruntime.PHP, file: jobruntime.PHPFile,
			argv: func(t *testing.T) []string { return []string{testpeer.RequirePHPGearman(t)} },
		},
		{
			name: "python3", lang: "python", script: jobruntime.Python, file: jobruntime.PythonFile,
			argv: func(t *testing.T) []string { return []string{testpeer.Require(t, "python3")} },
		},
	}
}

// testOutput collects a stream of the handler (stdout or stderr) and lets
// a test wait until a text appears in it.
type testOutput struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed, and replaced, on every write
}

func newTestOutput() *testOutput { return &testOutput{changed: make(chan struct{})} }

func (o *testOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *testOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor reports whether s appears in the output within testRuntimeWait.
// done is closed when the process exited and all its output was copied.
func (o *testOutput) waitFor(s string, done <-chan struct{}) bool {
	timer := time.NewTimer(testRuntimeWait)
	defer timer.Stop()
	for {
		o.mu.Lock()
		found := strings.Contains(o.buf.String(), s)
		changed := o.changed
		o.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return strings.Contains(o.String(), s)
		case <-timer.C:
			return false
		}
	}
}

// testHandler is a runtime process with the test at the other end of its
// protocol descriptors.
type testHandler struct {
	t      *testing.T
	cmd    *exec.Cmd
	req    *os.File // write end of the handler's fd 3
	rep    *os.File // read end of the handler's fd 4
	stdout *testOutput
	stderr *testOutput
	done   chan struct{} // closed when the process exited; err is set then
	err    error         // cmd.Wait's result
}

// testStartRuntime writes rt's embedded script to a temporary directory
// and starts it on fixture (in testdata/resident, which is its working
// directory, as gworkerd does) with callable. The handler gets end of
// file on fd 3 and is waited for (killed if it does not exit) at cleanup.
func testStartRuntime(t *testing.T, rt testRuntime, fixture, callable string) *testHandler {
	t.Helper()
	argv := rt.argv(t)
	script := filepath.Join(t.TempDir(), rt.file)
	if err := os.WriteFile(script, rt.script(), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "resident"))
	if err != nil {
		t.Fatal(err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &testHandler{t: t, req: reqW, rep: repR, stdout: newTestOutput(), stderr: newTestOutput(), done: make(chan struct{})}
	args := append(argv[1:len(argv):len(argv)], script, "--file", filepath.Join(dir, fixture), "--callable", callable, "--function", "conform")
	h.cmd = exec.Command(argv[0], args...)
	h.cmd.Dir = dir
	h.cmd.Env = append(os.Environ(), "GWORKERD_RESIDENT=1", "GEARMAN_FUNCTION=conform",
		"PYTHONDONTWRITEBYTECODE=1") // no __pycache__ in testdata
	h.cmd.Stdout = h.stdout
	h.cmd.Stderr = h.stderr
	h.cmd.ExtraFiles = []*os.File{reqR, repW} // fd 3, fd 4
	err = h.cmd.Start()
	// The child has its copies; ours must go, so that the handler's exit
	// reads as end of file on rep, and our close of req as end of file on
	// its fd 3.
	reqR.Close()
	repW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		t.Fatalf("start %v: %v", h.cmd.Args, err)
	}
	go func() {
		h.err = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.req.Close()
		select {
		case <-h.done:
		case <-time.After(testRuntimeWait):
			_ = h.cmd.Process.Kill()
			<-h.done
		}
		h.rep.Close()
	})
	return h
}

// read reads the next reply frame, failing the test on any error.
func (h *testHandler) read() testFrame {
	h.t.Helper()
	_ = h.rep.SetReadDeadline(time.Now().Add(testRuntimeWait))
	f, err := testReadFrame(h.rep)
	if err != nil {
		h.t.Fatalf("read reply: %v\nstderr:\n%s", err, h.stderr.String())
	}
	return f
}

// hello reads the H frame and returns its body.
func (h *testHandler) hello() string {
	h.t.Helper()
	f := h.read()
	if f.typ != 'H' {
		h.t.Fatalf("first frame = %v, want H\nstderr:\n%s", f, h.stderr.String())
	}
	return string(f.body)
}

// send writes a J frame with the given fields.
func (h *testHandler) send(fields ...[]byte) {
	h.t.Helper()
	_ = h.req.SetWriteDeadline(time.Now().Add(testRuntimeWait))
	if _, err := h.req.Write(testEncodeFrame('J', testJobBody(fields...))); err != nil {
		h.t.Fatalf("write J: %v\nstderr:\n%s", err, h.stderr.String())
	}
}

// replies reads frames up to and including the job's C, F or E.
func (h *testHandler) replies() []testFrame {
	h.t.Helper()
	var got []testFrame
	for {
		f := h.read()
		got = append(got, f)
		if f.terminal() {
			return got
		}
		if f.typ != 'S' && f.typ != 'D' && f.typ != 'W' {
			h.t.Fatalf("unexpected frame %v during a job (so far %v)", f, got)
		}
	}
}

// call runs one job with the given handle and workload (attempt 1) and
// returns its frames.
func (h *testHandler) call(handle string, workload []byte) []testFrame {
	h.t.Helper()
	h.send([]byte(handle), []byte("conform"), []byte("u-"+handle), []byte("1"), workload)
	return h.replies()
}

// wait waits for the handler's exit and returns its status.
func (h *testHandler) wait() int {
	h.t.Helper()
	select {
	case <-h.done:
	case <-time.After(testRuntimeWait):
		h.t.Fatalf("handler did not exit within %v\nstderr:\n%s", testRuntimeWait, h.stderr.String())
	}
	var exit *exec.ExitError
	switch {
	case h.err == nil:
		return 0
	case errors.As(h.err, &exit):
		return exit.ExitCode()
	default:
		h.t.Fatalf("wait: %v", h.err)
		return -1
	}
}

// eof closes fd 3 (end of file: "exit now") and returns the exit status.
func (h *testHandler) eof() int {
	h.t.Helper()
	h.req.Close()
	return h.wait()
}

// expectNoHello checks that the handler exits without writing any frame
// and returns its exit status.
func (h *testHandler) expectNoHello() int {
	h.t.Helper()
	_ = h.rep.SetReadDeadline(time.Now().Add(testRuntimeWait))
	if f, err := testReadFrame(h.rep); !errors.Is(err, io.EOF) {
		h.t.Fatalf("read = %v, %v; want end of file before any frame\nstderr:\n%s", f, err, h.stderr.String())
	}
	return h.wait()
}

// wantStderr waits until s appears on the handler's stderr.
func (h *testHandler) wantStderr(s string) {
	h.t.Helper()
	if !h.stderr.waitFor(s, h.done) {
		h.t.Errorf("stderr does not show %q; stderr:\n%s", s, h.stderr.String())
	}
}

// testFixture returns the job file and callable of a GearmanDaemon-layout
// fixture job_<name> for rt's language.
func testFixture(rt testRuntime, name string) (file, callable string) {
	ext := ".php"
	if rt.lang == "python" {
		ext = ".py"
	}
	return "job_" + name + ext, "fnc_" + name
}

// TestRuntimeRoundTrip checks hello, the result of the function's return
// value, binary safety and an 8 MiB workload, and a clean exit at end of
// file, on the GearmanDaemon-layout job_rev fixtures.
func TestRuntimeRoundTrip(t *testing.T) {
	t.Parallel()
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i % 251) // NULs included
	}
	reverse := func(b []byte) []byte {
		r := make([]byte, len(b))
		for i, c := range b {
			r[len(b)-1-i] = c
		}
		return r
	}
	workloads := []struct {
		name     string
		workload []byte
	}{
		{"text", []byte("hello")},
		{"empty", []byte{}},
		{"nuls", []byte("a\x00b\x00\x00c\x00")},
		{"8MiB", big},
	}
	for _, rt := range testRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			file, callable := testFixture(rt, "rev")
			h := testStartRuntime(t, rt, file, callable)
			if got, want := h.hello(), "1 "+rt.lang+" "; !strings.HasPrefix(got, want) {
				t.Errorf("hello = %q, want prefix %q", got, want)
			}
			for i, w := range workloads {
				got := h.call(fmt.Sprintf("H:rev:%d", i), w.workload)
				want := []testFrame{{'C', reverse(w.workload)}}
				if !testFramesEqual(got, want) {
					t.Errorf("%s: replies = %v, want %v", w.name, got, want)
				}
			}
			// One byte per write: the runtime sees the frame in pieces
			// (how many depends on timing; the 8 MiB job above always
			// arrives in many).
			frame := testEncodeFrame('J', testJobBody([]byte("H:rev:bytewise"), []byte("rev"), nil, []byte("1"), []byte("bytewise")))
			for i := range frame {
				_ = h.req.SetWriteDeadline(time.Now().Add(testRuntimeWait))
				if _, err := h.req.Write(frame[i : i+1]); err != nil {
					t.Fatalf("write byte %d: %v", i, err)
				}
			}
			if got, want := h.replies(), []testFrame{testC("esiwetyb")}; !testFramesEqual(got, want) {
				t.Errorf("bytewise: replies = %v, want %v", got, want)
			}
			if code := h.eof(); code != 0 {
				t.Errorf("exit status after end of file = %d, want 0\nstderr:\n%s", code, h.stderr.String())
			}
		})
	}
}

// testConformCase is one job of the conformance sequence: the workload
// names what the fixture's fnc_conform does.
type testConformCase struct {
	name     string
	workload string
	attempt  string   // "1" when empty
	extra    []string // fields after the fifth, which runtimes must ignore
	want     []testFrame
	stderr   string // text the handler's stderr must show after the job
	stdout   string // text its stdout must show after the job
}

// testPHPCases are the PHP runtime's, with pecl/gearman's semantics.
var testPHPCases = []testConformCase{
	{name: "fields", workload: "fields", attempt: "3", want: []testFrame{testC("H:conform:fields|conform|u-fields|6|3|0")}},
	{name: "progress frames in order", workload: "progress", want: []testFrame{testS(1, 2), testD("d1\x00d1"), testW("w1"), testS(2, 2), testC("done")}},
	{name: "send arguments coerced", workload: "coerce", want: []testFrame{testD("123"), testS(3, 4), testC("coerced")}},
	{name: "sendComplete then return", workload: "complete-then-return", want: []testFrame{testC("early")}, stderr: "frame D dropped"},
	{name: "sendFail", workload: "fail", want: []testFrame{testF()}},
	{name: "setReturn WORK_FAIL", workload: "setreturn-fail", want: []testFrame{testF()}},
	{name: "setReturn WORK_EXCEPTION fails", workload: "setreturn-exception", want: []testFrame{testF()}},
	{name: "send resets setReturn", workload: "setreturn-then-send", want: []testFrame{testD("progress"), testC("completed anyway")}},
	{name: "sendException", workload: "send-exception", want: []testFrame{testE("custom failure")}},
	{name: "thrown exception", workload: "throw", want: []testFrame{testE("boom")}, stderr: "RuntimeException: boom"},
	{name: "served after exception", workload: "int", want: []testFrame{testC("42")}},
	{name: "exception without message", workload: "throw-empty", want: []testFrame{testE("LogicException")}},
	{name: "Error", workload: "error", want: []testFrame{testE("Call to undefined function conform_undefined_function()")}},
	{name: "throw after sendComplete", workload: "throw-after-complete", want: []testFrame{testC("finished first")}, stderr: "thrown after complete"},
	{name: "null", workload: "null", want: []testFrame{testC("")}},
	{name: "no return", workload: "nothing", want: []testFrame{testC("")}},
	{name: "false", workload: "false", want: []testFrame{testC("")}},
	{name: "true", workload: "true", want: []testFrame{testC("1")}},
	{name: "float", workload: "float", want: []testFrame{testC("1.5")}},
	{name: "array", workload: "array", want: []testFrame{testC("Array")}, stderr: `returned an array: sent as "Array"`},
	{name: "object", workload: "object", want: []testFrame{testE("Object of class stdClass could not be converted to string")}},
	{name: "Stringable", workload: "stringable", want: []testFrame{testC("stringable")}},
	{name: "echo goes to stdout", workload: "echo", want: []testFrame{testC("quiet")}, stdout: "conform echo to stdout"},
	{name: "warning goes to stderr", workload: "notice", want: []testFrame{testC("noticed")}, stderr: `Undefined array key "missing"`},
	{name: "loaded at global scope", workload: "global", want: []testFrame{testC("hello from global scope")}},
	{name: "extra fields ignored", workload: "int", extra: []string{"later", "fields"}, want: []testFrame{testC("42")}},
}

// testPythonCases are the Python runtime's.
var testPythonCases = []testConformCase{
	{name: "fields", workload: "fields", attempt: "3", want: []testFrame{testC("H:conform:fields|conform|u-fields|6|3")}},
	{name: "progress frames in order", workload: "progress", want: []testFrame{testS(1, 2), testD("d1\x00d1"), testW("w1"), testS(2, 2), testC("done")}},
	{name: "send arguments converted", workload: "coerce", want: []testFrame{testD("123"), testS(3, 4), testC("coerced")}},
	{name: "send_complete then return", workload: "complete-then-return", want: []testFrame{testC("early")}, stderr: "frame D dropped"},
	{name: "send_fail", workload: "fail", want: []testFrame{testF()}},
	{name: "send_exception", workload: "send-exception", want: []testFrame{testE("custom failure")}},
	{name: "raised exception", workload: "throw", want: []testFrame{testE("boom")}, stderr: "RuntimeError: boom"},
	{name: "served after exception", workload: "int", want: []testFrame{testC("42")}},
	{name: "exception without message", workload: "throw-empty", want: []testFrame{testE("ValueError")}},
	{name: "NameError", workload: "error", want: []testFrame{testE("name 'conform_undefined_function' is not defined")}},
	{name: "raise after send_complete", workload: "throw-after-complete", want: []testFrame{testC("finished first")}, stderr: "thrown after complete"},
	{name: "None", workload: "null", want: []testFrame{testC("")}},
	{name: "bytes", workload: "bytes", want: []testFrame{testC("\x00\xff")}},
	{name: "str as UTF-8", workload: "unicode", want: []testFrame{testC("h\u00e9")}},
	{name: "False", workload: "false", want: []testFrame{testC("False")}},
	{name: "float", workload: "float", want: []testFrame{testC("1.5")}},
	{name: "list", workload: "array", want: []testFrame{testC("[1, 2]")}},
	{name: "__str__", workload: "stringable", want: []testFrame{testC("stringable")}},
	{name: "print goes to stdout", workload: "echo", want: []testFrame{testC("quiet")}, stdout: "conform echo to stdout"},
	{name: "stderr", workload: "notice", want: []testFrame{testC("noticed")}, stderr: "conform warning to stderr"},
	{name: "module scope", workload: "global", want: []testFrame{testC("hello from module scope")}},
	{name: "extra fields ignored", workload: "int", extra: []string{"later", "fields"}, want: []testFrame{testC("42")}},
}

// TestRuntimeConformance runs the conformance sequence on one handler per
// runtime, in order: every job must get exactly its frames, so nothing a
// job sends after its end can go unnoticed (it would be read as the next
// job's reply).
func TestRuntimeConformance(t *testing.T) {
	t.Parallel()
	for _, rt := range testRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			cases := testPHPCases
			if rt.lang == "python" {
				cases = testPythonCases
			}
			file, callable := testFixture(rt, "conform")
			h := testStartRuntime(t, rt, file, callable)
			h.hello()
			for _, c := range cases {
				attempt := c.attempt
				if attempt == "" {
					attempt = "1"
				}
				handle := "H:conform:" + c.workload
				fields := [][]byte{[]byte(handle), []byte("conform"), []byte("u-" + c.workload), []byte(attempt), []byte(c.workload)}
				for _, e := range c.extra {
					fields = append(fields, []byte(e))
				}
				h.send(fields...)
				if got := h.replies(); !testFramesEqual(got, c.want) {
					t.Errorf("%s: replies = %v, want %v\nstderr:\n%s", c.name, got, c.want, h.stderr.String())
				}
				if c.stderr != "" {
					h.wantStderr(c.stderr)
				}
				if c.stdout != "" && !h.stdout.waitFor(c.stdout, h.done) {
					t.Errorf("%s: stdout does not show %q; stdout:\n%s", c.name, c.stdout, h.stdout.String())
				}
			}
			if code := h.eof(); code != 0 {
				t.Errorf("exit status after end of file = %d, want 0\nstderr:\n%s", code, h.stderr.String())
			}
			// Nothing may follow the last job's reply.
			_ = h.rep.SetReadDeadline(time.Now().Add(testRuntimeWait))
			if f, err := testReadFrame(h.rep); !errors.Is(err, io.EOF) {
				t.Errorf("after the last job: read %v, %v; want end of file", f, err)
			}
		})
	}
}

// TestRuntimeClassInstance checks the class form: one instance per
// process, its run() called for each job, so state carries over.
func TestRuntimeClassInstance(t *testing.T) {
	t.Parallel()
	for _, rt := range testRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			file := "Counter.php" // the GearmanManager layout
			if rt.lang == "python" {
				file = "job_counter.py"
			}
			h := testStartRuntime(t, rt, file, "Counter")
			h.hello()
			for i, want := range []string{"1/1", "2/1", "3/1"} {
				handle := fmt.Sprintf("H:counter:%d", i+1)
				if got := h.call(handle, nil); !testFramesEqual(got, []testFrame{testC(want)}) {
					t.Errorf("job %d: replies = %v, want %v", i+1, got, testC(want))
				}
			}
			if rt.lang == "php" {
				h.wantStderr("(H:counter:3) run 3") // its $log
			}
			if code := h.eof(); code != 0 {
				t.Errorf("exit status = %d, want 0", code)
			}
		})
	}
}

// TestRuntimeLog checks the GearmanManager function form
// <Function>($job, &$log): the entries of $log go to stderr after the job,
// one line each, prefixed with the job handle; an array entry as the lines
// of print_r.
func TestRuntimeLog(t *testing.T) {
	t.Parallel()
	for _, rt := range testRuntimes() {
		if rt.lang != "php" {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			h := testStartRuntime(t, rt, "Reverse.php", "Reverse")
			h.hello()
			if got, want := h.call("H:log:1", []byte("abc")), []testFrame{testC("cba")}; !testFramesEqual(got, want) {
				t.Errorf("replies = %v, want %v", got, want)
			}
			for _, line := range []string{
				"(H:log:1) Received job: H:log:1\n",
				"(H:log:1) Result: cba\n",
				"(H:log:1)     [size] => 3\n",
			} {
				h.wantStderr(line)
			}
			if code := h.eof(); code != 0 {
				t.Errorf("exit status = %d, want 0", code)
			}
		})
	}
}

// TestRuntimeTypedGearmanJob checks a pecl worker whose parameter is typed
// GearmanJob: it runs both with the extension loaded (the job object is
// pecl's GearmanJob) and without it (the runtime declares a stand-in).
func TestRuntimeTypedGearmanJob(t *testing.T) {
	t.Parallel()
	for _, rt := range testRuntimes() {
		if rt.lang != "php" {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			h := testStartRuntime(t, rt, "job_typed.php", "fnc_typed")
			h.hello()
			if got, want := h.call("H:typed:1", []byte("abc")), []testFrame{testC("GearmanJob cba")}; !testFramesEqual(got, want) {
				t.Errorf("replies = %v, want %v\nstderr:\n%s", got, want, h.stderr.String())
			}
			if code := h.eof(); code != 0 {
				t.Errorf("exit status = %d, want 0", code)
			}
		})
	}
}

// TestRuntimeStartFailure checks that a runtime that cannot serve exits
// non-zero before H, saying why on stderr.
func TestRuntimeStartFailure(t *testing.T) {
	t.Parallel()
	for _, rt := range testRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			rev, _ := testFixture(rt, "rev")
			broken, brokenFn := testFixture(rt, "broken")
			dir, err := filepath.Abs(filepath.Join("testdata", "resident"))
			if err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name, file, callable string
				stderr               string // "" for any message
			}{
				{"missing callable", rev, "fnc_missing",
					fmt.Sprintf("%s: %s defines neither function fnc_missing nor class fnc_missing with run()\n",
						rt.file, filepath.Join(dir, rev))},
				{"does not parse", broken, brokenFn, ""},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					h := testStartRuntime(t, rt, c.file, c.callable)
					if code := h.expectNoHello(); code == 0 {
						t.Errorf("exit status 0, want non-zero\nstderr:\n%s", h.stderr.String())
					}
					if c.stderr != "" {
						h.wantStderr(c.stderr)
					} else if strings.TrimSpace(h.stderr.String()) == "" {
						t.Errorf("nothing on stderr, want the reason")
					}
				})
			}
		})
	}
}

// TestRuntimeProtocolError checks that a runtime given a malformed request
// exits non-zero, saying why, instead of guessing.
func TestRuntimeProtocolError(t *testing.T) {
	t.Parallel()
	large := bytes.Repeat([]byte("x"), 100<<10)
	job := testEncodeFrame('J', testJobBody([]byte("H:p:1"), []byte("rev"), nil, []byte("1"), []byte("abc")))
	cases := []struct {
		name   string
		input  []byte
		stderr string
	}{
		{"end of file inside a frame", job[:len(job)-2], "end of file on fd 3 inside a frame"},
		{"end of file inside the header", job[:3], "end of file on fd 3 inside a frame"},
		{"unknown frame type", testEncodeFrame('X', nil), "unexpected frame type"},
		{"too few fields", testEncodeFrame('J', testJobBody([]byte("H:p:1"), []byte("rev"))), "has 2 fields, want 5"},
		{"field overruns the frame", append(testEncodeFrame('J', nil)[:1], 0, 0, 0, 4, 0, 0, 0, 9), "overruns the frame"},
		{"body over 64 MiB", []byte{'J', 4, 0, 0, 1}, "exceeds the 64 MiB limit"},
		{"attempt not a number", testEncodeFrame('J', testJobBody(nil, nil, nil, []byte("one"), nil)), "attempt field is not a decimal number"},
		// Frames over 64 KiB are read field by field: the same checks.
		{"too few fields, large frame", testEncodeFrame('J', testJobBody([]byte("H:p:1"), large)), "has 2 fields, want 5"},
		{"field overruns a large frame", testEncodeFrame('J', append([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 2, 0, 0}, large...)), "overruns the frame"},
		{"attempt not a number, large frame", testEncodeFrame('J', testJobBody(nil, nil, nil, []byte("one"), large)), "attempt field is not a decimal number"},
	}
	for _, rt := range testRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			file, callable := testFixture(rt, "rev")
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					h := testStartRuntime(t, rt, file, callable)
					h.hello()
					_ = h.req.SetWriteDeadline(time.Now().Add(testRuntimeWait))
					// The runtime may stop reading at the fault, before the
					// rest of a large frame: a broken pipe then.
					if _, err := h.req.Write(c.input); err != nil && !errors.Is(err, syscall.EPIPE) {
						t.Fatalf("write: %v", err)
					}
					if code := h.eof(); code != 1 {
						t.Errorf("exit status = %d, want 1\nstderr:\n%s", code, h.stderr.String())
					}
					h.wantStderr(c.stderr)
				})
			}
		})
	}
}
