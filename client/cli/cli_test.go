package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// A batch whose every line fails the same way (no server) says so in a
// few lines, not one per job.
func TestBatchRepeatedErrors(t *testing.T) {
	t.Parallel()
	batch := filepath.Join(t.TempDir(), "b.jsonl")
	if err := os.WriteFile(batch, []byte(strings.Repeat("\"x\"\n", 300)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	a := &App{Servers: []string{testpeer.DeadAddr(t)}, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}
	code := Report(&stderr, a.Submit(ctx, []string{"f"}, SubmitFlags{Prio: "normal", Batch: batch}))
	if code != ExitUnreachable {
		t.Errorf("exit %d, want %d; stderr %q", code, ExitUnreachable, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) > 5 {
		t.Errorf("%d lines of errors for 300 jobs failing alike:\n%s", len(lines), stderr.String())
	}
	if !strings.Contains(stderr.String(), "gclient: line 1: ") || !strings.Contains(stderr.String(), "299 more lines up to line 300 failed with the same error") {
		t.Errorf("stderr %q lacks the first error and the summary", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want no handles", stdout.String())
	}
}

// TestRepeatedErrors: each run of lines failing alike is its first line
// and one summary; a different error ends the run.
func TestRepeatedErrors(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	r := repeatedErrors{w: &b}
	for line, msg := range []string{"a", "a", "a", "b", "a", "a"} {
		r.report(line+1, msg)
	}
	r.flush()
	r.flush() // a second flush prints nothing
	want := "gclient: line 1: a\n" +
		"gclient: 2 more lines up to line 3 failed with the same error\n" +
		"gclient: line 4: b\n" +
		"gclient: line 5: a\n" +
		"gclient: 1 more lines up to line 6 failed with the same error\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestParseAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"+10m", now.Add(10 * time.Minute), false},
		{"1795000000", time.Unix(1795000000, 0), false},
		{"2026-11-22T08:00:00Z", now.Add(time.Hour), false},
		{"+soon", time.Time{}, true},
		{"tomorrow", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseAt(tt.in, now)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("parseAt(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		var ue *UsageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("parseAt(%q): error %T, want a *UsageError", tt.in, err)
		}
	}
}

func TestBatchLine(t *testing.T) {
	t.Parallel()
	a := &App{}
	tests := []struct {
		line, fn, payload string
		err               bool
	}{
		{`{"payload":"a b"}`, "f", "a b", false},
		{`{"payload":{"x":1},"function":"g"}`, "g", `{"x":1}`, false},
		{`"just a string"`, "f", "just a string", false},
		{`42`, "f", "42", false},
		{`{"payload":"x","prio":"urgent"}`, "", "", true},
		{`not json`, "", "", true},
		// An object without "payload" is a payload, not an empty job.
		{`{"photo":"cat.jpg","width":200}`, "f", `{"photo":"cat.jpg","width":200}`, false},
		{`{"unique":"u1"}`, "f", `{"unique":"u1"}`, false},
		// A job description with a key it does not know is an error.
		{`{"payload":"x","priority":"high"}`, "", "", true},
		{`{"payload":"x","fucntion":"g"}`, "", "", true},
	}
	for _, tt := range tests {
		req, err := a.parseBatchLine([]byte(tt.line), "f", SubmitFlags{Prio: "normal"})
		if (err != nil) != tt.err {
			t.Errorf("line %s: error %v, want error %v", tt.line, err, tt.err)
			continue
		}
		if !tt.err && (req.Function != tt.fn || string(req.Payload) != tt.payload) {
			t.Errorf("line %s: function %q payload %q, want %q %q", tt.line, req.Function, req.Payload, tt.fn, tt.payload)
		}
	}
}

// TestReport: each kind of error has its exit code and its final line.
func TestReport(t *testing.T) {
	t.Parallel()
	_, prioErr := protocol.ParsePriority("urgent")
	dial := &client.ServerError{Addr: "127.0.0.1:1", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	refused := &client.ServerError{Addr: "127.0.0.1:2", Err: &protocol.ErrorPacket{Code: "QUEUE_FULL", Text: "queue full"}}
	tests := []struct {
		name string
		err  error
		code int
		want string // the whole output
	}{
		{"ok", nil, ExitOK, ""},
		{"usage", &UsageError{"submit needs FUNCTION"}, ExitUsage, "gclient: submit needs FUNCTION; run `gclient help` for usage\n"},
		{"usage on lines", &UsageError{"unknown command \"x\"\n\nDid you mean this?\n\ty\n"}, ExitUsage, "gclient: unknown command \"x\"\nDid you mean this?\n\ty\nrun `gclient help` for usage\n"},
		{"priority", prioErr, ExitPriority, "gclient: " + prioErr.Error() + "; use --prio high, normal or low\n"},
		{"file", &fileError{path: "p.json", err: os.ErrNotExist}, ExitFile, "gclient: cannot read p.json: file does not exist; check the path and its permissions, or pass - to read the payload from stdin\n"},
		{"timeout", fmt.Errorf("submit: %w", context.DeadlineExceeded), ExitTimeout, "gclient: submit: context deadline exceeded; the server did not finish in time; raise --timeout\n"},
		{"unreachable", errors.Join(dial, &client.ServerError{Addr: "127.0.0.1:3", Err: client.ErrBackoff}), ExitUnreachable, "gclient: " + dial.Error() + "; server 127.0.0.1:3: client: server in backoff; start a job server there, or point --servers (or GCLIENT_SERVERS) at a running one\n"},
		{"refused", refused, ExitServer, "gclient: server 127.0.0.1:2: gearman: QUEUE_FULL: queue full; the server refused the request; see its reason above\n"},
		{"one refused, one down", errors.Join(dial, refused), ExitServer, "gclient: " + dial.Error() + "; " + refused.Error() + "; the server refused the request; see its reason above\n"},
		{"job failed", &jobError{client.ErrJobFailed}, ExitFailed, ""},
		{"other", errors.New("boom"), ExitFailed, "gclient: boom\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if code := Report(&b, tt.err); code != tt.code || b.String() != tt.want {
			t.Errorf("%s: Report = %d, %q; want %d, %q", tt.name, code, b.String(), tt.code, tt.want)
		}
	}
}
