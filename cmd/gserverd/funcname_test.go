package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// The wire bytes of the refusal, written out (not protocol's constants) so
// that the test runs unchanged against servers that predate it.
const (
	codeInvalidName  = "INVALID_FUNCTION_NAME"
	replyInvalidName = "ERR INVALID_FUNCTION_NAME Function+name+contains+a+control+character\r\n"
)

var httpEndpointAddr = regexp.MustCompile(`HTTP endpoint listening.*?addr="?([^\s,"]+)`)

// TestBinaryFunctionNameControlChars (issue 10, item 10): a function name
// with a control character (a byte below 0x20, or 0x7f) would forge lines
// and columns of the admin `status` listing. Every packet that names a
// function to create (CAN_DO, CAN_DO_TIMEOUT, every SUBMIT_*) gets an
// ERROR packet and the connection stays usable; `create function` and
// `maxqueue` answer ERR; the HTTP protocol (-r http) and the monitor's
// POST /api/v1/jobs/{function} answer 400. `status` then lists only the
// valid names, which keep working: spaces, UTF-8 and the empty name.
func TestBinaryFunctionNameControlChars(t *testing.T) {
	t.Parallel()
	p := logOnFailure(t, startGserverd(t, "-q", "builtin", "--http-listen", "127.0.0.1:0", "-r", "http", "--http-port", "0"))
	defer p.Stop()
	var monitorAddr, httpAddr string
	eventually(t, "gserverd logs its HTTP addresses", func() bool {
		out := p.Output()
		if m := httpEndpointAddr.FindStringSubmatch(out); m != nil {
			monitorAddr = m[1]
		}
		if m := httpProtocolAddr.FindStringSubmatch(out); m != nil {
			httpAddr = m[1]
		}
		return monitorAddr != "" && httpAddr != ""
	})

	bad := []string{"x\ny", "x\ty", "x\r\ny\t1\t0\t0", "\x01", "x\x1f", "x\x7f", "\x1b[31mred", "x\r"}
	packets := []struct {
		typ  protocol.Type
		args func(name string) []string
		code string // ERROR code expected
	}{
		{protocol.CanDo, func(n string) []string { return []string{n} }, codeInvalidName},
		{protocol.CanDoTimeout, func(n string) []string { return []string{n, "5000"} }, codeInvalidName},
		{protocol.SubmitJob, submitArgs, codeInvalidName},
		{protocol.SubmitJobBg, submitArgs, codeInvalidName},
		{protocol.SubmitJobHigh, submitArgs, codeInvalidName},
		{protocol.SubmitJobHighBg, submitArgs, codeInvalidName},
		{protocol.SubmitJobLow, submitArgs, codeInvalidName},
		{protocol.SubmitJobLowBg, submitArgs, codeInvalidName},
		// Not implemented at all (as in gearmand): refused whatever the name.
		{protocol.SubmitJobSched, func(n string) []string { return []string{n, "u", "0", "0", "1", "1", "0", "data"} }, protocol.CodeInvalidCommand},
		{protocol.SubmitJobEpoch, func(n string) []string { return []string{n, "u", "1", "data"} }, codeInvalidName},
		{protocol.SubmitReduceJob, func(n string) []string { return []string{n, "u", "reducer", "", "data"} }, codeInvalidName},
		{protocol.SubmitReduceJobBackground, func(n string) []string { return []string{n, "u", "reducer", "", "data"} }, codeInvalidName},
	}
	rc := dialRaw(t, p.Addr)
	for _, pk := range packets {
		for _, name := range bad {
			rc.send(pk.typ, pk.args(name)...)
			got := rc.expect(protocol.Error)
			if len(got) != 2 || got[0] != pk.code || got[1] == "" {
				t.Errorf("%v %q: ERROR %q, want code %s and a text", pk.typ, name, got, pk.code)
			}
			rc.send(protocol.EchoReq, "still here")
			if got := rc.expect(protocol.EchoRes); len(got) != 1 || got[0] != "still here" {
				t.Fatalf("%v %q: the connection is out of step: ECHO_RES %q", pk.typ, name, got)
			}
		}
	}
	// A pipelined bad background submit between two good ones: the replies
	// keep the order of the requests.
	var pipe []byte
	for _, n := range []string{"ok-bg", "x\ny", "ok-bg"} {
		pipe = protocol.AppendPacketString(pipe, protocol.Req, protocol.SubmitJobBg, n, "", "d")
	}
	if _, err := rc.c.Write(pipe); err != nil {
		t.Fatal(err)
	}
	rc.expect(protocol.JobCreated)
	if got := rc.expect(protocol.Error); got[0] != codeInvalidName {
		t.Errorf("pipelined bad submit: ERROR %q", got)
	}
	rc.expect(protocol.JobCreated)

	for _, cmd := range []string{"create function x\ty", "create function x\x01", "maxqueue x\ty 5", "maxqueue x\x7f 1 2 3"} {
		if got := adminLine(t, p.Addr, cmd); got != replyInvalidName {
			t.Errorf("%q: %q, want %q", cmd, got, replyInvalidName)
		}
	}

	// gearmand's HTTP protocol: the raw request target is the name.
	for _, target := range []string{"x\ty", "x\x01y", "x\x7f"} {
		got := httpExchange(t, httpAddr, "POST /"+target+" HTTP/1.1\r\nX-Gearman-Background: true\r\nContent-Length: 1\r\n\r\nx")
		if !strings.HasPrefix(got, "HTTP/1.0 400 Bad Request\r\n") || !strings.Contains(got, "X-Gearman-Command: ERROR\r\n") || !strings.Contains(got, codeInvalidName) {
			t.Errorf("-r http POST /%q: %q, want 400 with ERROR %s", target, got, codeInvalidName)
		}
	}
	// The monitor's API: path values are percent-decoded.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{
		"/api/v1/jobs/" + url.PathEscape("x\ny"),
		"/api/v1/jobs/" + url.PathEscape("x\ty"),
		"/api/v1/functions/" + url.PathEscape("x\ty") + "/maxqueue?n=1",
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+monitorAddr+path, strings.NewReader("x"))
		req.Header.Set("X-Gearman-Background", "true")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("monitor POST %s: %d %s, want 400", path, resp.StatusCode, body)
		}
	}

	// Valid names keep working: spaces, UTF-8, the empty name.
	good := []string{"with space", "naïve→函数", ""}
	worker := dialRaw(t, p.Addr)
	for _, name := range good {
		worker.send(protocol.CanDo, name)
		rc.send(protocol.SubmitJobBg, name, "", "payload")
		rc.expect(protocol.JobCreated)
		worker.send(protocol.GrabJobUniq)
		if got := worker.expect(protocol.JobAssignUniq); len(got) != 4 || got[1] != name || got[3] != "payload" {
			t.Errorf("%q: JOB_ASSIGN_UNIQ %q", name, got)
		}
	}
	if got := adminLine(t, p.Addr, "create function caf\u00e9"); got != protocol.ReplyOK {
		t.Errorf("create function café: %q", got)
	}

	want := map[string]bool{"ok-bg": true, "with space": true, "naïve→函数": true, "": true, "café": true}
	lines := adminList(t, p.Addr, "status")
	seen := map[string]bool{}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 || !want[f[0]] {
			t.Errorf("status line %q: not one of the valid functions (a forged line?)", l)
		}
		seen[f[0]] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("status does not list %q: %q", name, lines)
		}
	}

	// The C tools: gearman's client gets the error, gearadmin's status
	// parses.
	if gearman, err := exec.LookPath("gearman"); err == nil {
		host, port, _ := net.SplitHostPort(p.Addr)
		// gearman exits 0 after an error; libgearman names the code.
		for _, mode := range []string{"-b", "-s"} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := exec.CommandContext(ctx, gearman, "-h", host, "-p", port, mode, "-f", "x\ty", "payload").CombinedOutput()
			cancel()
			if !strings.Contains(string(out), "INVALID_FUNCTION_NAME") {
				t.Errorf("gearman %s -f 'x\\ty': %v, %q; want an error naming INVALID_FUNCTION_NAME", mode, err, out)
			}
		}
		if gearadmin, err := exec.LookPath("gearadmin"); err == nil {
			out, err := exec.Command(gearadmin, "-h", host, "-p", port, "--status").Output()
			if err != nil {
				t.Fatalf("gearadmin --status: %v", err)
			}
			for _, l := range strings.Split(strings.TrimSuffix(string(out), ".\n"), "\n") {
				if f := strings.Split(l, "\t"); l != "" && (len(f) != 4 || !want[f[0]]) {
					t.Errorf("gearadmin --status line %q", l)
				}
			}
		}
	}
}

func submitArgs(name string) []string { return []string{name, "", "data"} }

// adminLine sends one admin command to addr and returns its one-line reply.
func adminLine(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatalf("%q: %v", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", cmd, err)
	}
	return line
}

// httpExchange sends a raw HTTP request to addr and reads the answer up to
// the server's close.
func httpExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}
