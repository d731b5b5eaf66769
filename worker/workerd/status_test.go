package workerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/worker/supervise"
)

func TestCtlRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		want    supervise.Request
		wantErr string
	}{
		{args: []string{"status"}, want: supervise.Request{Cmd: "status"}},
		{args: []string{"reload"}, want: supervise.Request{Cmd: "reload"}},
		{args: []string{"restart", "f"}, want: supervise.Request{Cmd: "restart", Function: "f"}},
		{args: []string{"scale", "f", "3"}, want: supervise.Request{Cmd: "scale", Function: "f", N: 3}},
		{args: []string{"status", "x"}, wantErr: "ctl status takes no arguments"},
		{args: []string{"stop"}, wantErr: "usage: gworkerd ctl stop FUNCTION"},
		{args: []string{"scale", "f"}, wantErr: "usage: gworkerd ctl scale FUNCTION N"},
		{args: []string{"scale", "f", "-1"}, wantErr: `ctl scale: N must be a count, got "-1"`},
		{args: []string{"dance"}, wantErr: `unknown ctl command "dance"`},
		{args: nil, wantErr: "ctl: name a command"},
	} {
		got, err := CtlRequest(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CtlRequest(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CtlRequest(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	PrintStatus(&b, supervise.Response{Pid: 42, Status: &supervise.Status{Memory: "process tree", Children: []supervise.ChildStatus{
		{Function: "rev", Pid: 7, State: supervise.StateRunning, Uptime: 3 * time.Second, JobsDone: 2, RSS: 3 << 20},
		{Function: "cmd", Command: true, State: supervise.StateBackoff, RSS: 0, Restarts: 4, LastExit: "exit status 1"},
	}}})
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	want := [][]string{
		{"gworkerd", "pid", "42"},
		{"memory:", "process", "tree"},
		{"FUNCTION", "PID", "STATE", "UPTIME", "JOBS", "CURRENT", "JOB", "AGE", "RSS", "RESTARTS", "LAST", "EXIT"},
		{"rev", "7", "running", "3s", "2", "-", "-", "3.0M", "0", "-"},
		{"cmd", "-", "backoff", "-", "-", "-", "-", "-", "4", "exit", "status", "1"},
	}
	if len(lines) != len(want) {
		t.Fatalf("status:\n%s\nwant %d lines", b.String(), len(want))
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
	for n, want := range map[int64]string{0: "-", 2048: "2K", 5 << 20: "5.0M", 3 << 30: "3.0G"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestNotRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.pid")
	if got, want := notRunning(missing).Error(), "gworkerd is not running (no pid file at "+missing+")"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	stale := filepath.Join(dir, "stale.pid")
	if err := os.WriteFile(stale, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := notRunning(stale).Error(), "gworkerd is not running (pid file "+stale+" is not locked)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
