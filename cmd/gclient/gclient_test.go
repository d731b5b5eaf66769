package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/client/cli"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestErrors checks that each kind of failure has its exit code and one
// line that says what to do.
func TestErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	payload := filepath.Join(dir, "p.json")
	if err := os.WriteFile(payload, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory cannot be read as a payload, even by root (a file with
	// mode 0 can).
	unreadable := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	dead := testpeer.DeadAddr(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		wantHint string
	}{
		{"missing file", []string{"--servers", dead, "submit", "resize", filepath.Join(dir, "nope.json")}, cli.ExitFile, "check the path"},
		{"unknown priority", []string{"--servers", dead, "submit", "resize", payload, "--prio", "urgent"}, cli.ExitPriority, "use --prio high, normal or low"},
		{"unreachable server", []string{"--servers", dead, "submit", "resize", payload}, cli.ExitUnreachable, "point --servers"},
		{"unreachable ping", []string{"--servers", dead, "ping"}, cli.ExitUnreachable, "start a job server"},
		{"unreachable admin", []string{"--servers", dead, "admin", "status"}, cli.ExitUnreachable, "start a job server"},
		{"no function", []string{"submit"}, cli.ExitUsage, "gclient help"},
		{"unknown flag", []string{"submit", "f", "--bogus"}, cli.ExitUsage, "gclient help"},
		{"unknown admin command", []string{"admin", "bogus"}, cli.ExitUsage, "gclient help"},
		{"bad --at", []string{"submit", "f", "--at", "tomorrow"}, cli.ExitUsage, "gclient help"},
		{"--at with --wait", []string{"submit", "f", "--at", "+1m", "--wait"}, cli.ExitUsage, "gclient help"},
		{"maxqueue size", []string{"--servers", dead, "admin", "maxqueue", "f", "x"}, cli.ExitUsage, "gclient help"},
		{"missing batch file", []string{"submit", "f", "--batch", filepath.Join(dir, "none.jsonl")}, cli.ExitFile, "check the path"},
		{"bad config file", []string{"--config", filepath.Join(dir, "none.yaml"), "ping"}, cli.ExitUsage, "gclient help"},
		{"unreadable file", []string{"--servers", dead, "submit", "resize", unreadable}, cli.ExitFile, "check the path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gclient(t, "", tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "gclient: ") || !strings.Contains(last, tt.wantHint) {
				t.Errorf("last stderr line %q, want a gclient: line with %q", last, tt.wantHint)
			}
		})
	}
}

// cobra's suggestions keep their own lines.
func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	r := gclient(t, "", "sumbit", "f")
	want := "gclient: unknown command \"sumbit\" for \"gclient\"\nDid you mean this?\n\tsubmit\nrun `gclient help` for usage\n"
	if r.code != cli.ExitUsage || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, cli.ExitUsage, want)
	}
}

func TestAgainstServers(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			addr := srv.Addr
			dir := t.TempDir()
			photo := filepath.Join(dir, "photo.json")
			if err := os.WriteFile(photo, []byte(`{"w":100}`), 0o600); err != nil {
				t.Fatal(err)
			}
			g := func(stdin string, args ...string) result {
				return gclient(t, stdin, append([]string{"--servers", addr}, args...)...)
			}

			// Background submit prints the handle; status finds it.
			r := g("", "submit", "resize", photo, "--prio", "high", "--unique", "photo-1")
			if r.code != 0 || !handleRE.MatchString(r.stdout) {
				t.Fatalf("submit: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			handle := strings.TrimSpace(r.stdout)
			r = g("", "status", handle, "--json")
			var st struct {
				Handle string `json:"handle"`
				Known  bool   `json:"known"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || !st.Known || st.Handle != handle {
				t.Errorf("status: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			r = g("", "status", addr+"/"+handle)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "HANDLE") || !strings.Contains(r.stdout, handle) {
				t.Errorf("status table: %q", r.stdout)
			}
			r = g("", "submit", "resize", photo, "--unique", "photo-1", "--json")
			var h struct{ Handle, Server string }
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &h) != nil || h.Handle != handle || h.Server != addr {
				t.Errorf("coalesced submit --json: code %d stdout %q", r.code, r.stdout)
			}
			r = g("", "submit", "later", "-", "--at", "+1h")
			if r.code != 0 || !handleRE.MatchString(r.stdout) {
				t.Errorf("submit --at: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}

			// Admin commands, as tables and JSON.
			r = g("", "admin", "priority")
			if r.code != 0 || !strings.Contains(r.stdout, "FUNCTION") || !containsFields(r.stdout, "resize", "1", "0", "0", "0") {
				t.Errorf("admin priority: code %d stdout %q", r.code, r.stdout)
			}
			for _, cmd := range [][]string{{"status"}, {"workers"}, {"priority"}, {"jobs"}, {"uniques"}, {"version"}, {"pid"}, {"verbose"}} {
				r = g("", append([]string{"admin"}, append(cmd, "--json")...)...)
				if r.code != 0 || !json.Valid([]byte(r.stdout)) {
					t.Errorf("admin %s --json: code %d stdout %q stderr %q", cmd[0], r.code, r.stdout, r.stderr)
				}
			}
			r = g("", "admin", "uniques")
			if !strings.Contains(r.stdout, "photo-1\n") {
				t.Errorf("admin uniques: %q", r.stdout)
			}
			r = g("", "admin", "pid")
			if strings.TrimSpace(r.stdout) != itoa(srv.Cmd.Process.Pid) {
				t.Errorf("admin pid: %q, want %d", r.stdout, srv.Cmd.Process.Pid)
			}
			for _, cmd := range [][]string{{"create", "made"}, {"maxqueue", "made", "5"}, {"maxqueue", "made", "1", "2", "3"}, {"drop", "made"}, {"cancel", handle}} {
				if r = g("", append([]string{"admin"}, cmd...)...); r.code != 0 || r.stdout != "OK\n" {
					t.Errorf("admin %v: code %d stdout %q stderr %q", cmd, r.code, r.stdout, r.stderr)
				}
			}
			if r = g("", "admin", "cancel", "H:nosuch:999999"); r.code != cli.ExitServer || !strings.Contains(r.stderr, "UNKNOWN_JOB") {
				t.Errorf("admin cancel of an unknown job: code %d stderr %q", r.code, r.stderr)
			}
			if r = g("", "ping"); r.code != 0 || !containsFields(r.stdout, addr, "ok") {
				t.Errorf("ping: code %d stdout %q", r.code, r.stdout)
			}

			// Batch: pipelined, one handle per job, a summary.
			var lines []string
			for i := range 600 {
				lines = append(lines, `{"payload":"job `+itoa(i)+`"}`)
			}
			lines = append(lines, "", `"plain"`, `{"payload":"low","prio":"low"}`)
			batch := filepath.Join(dir, "jobs.jsonl")
			if err := os.WriteFile(batch, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r = g("", "submit", "thumb", "--batch", batch)
			if r.code != 0 || strings.Count(r.stdout, "\n") != 602 || !strings.Contains(r.stderr, "submitted 602 jobs, 0 failed") {
				t.Errorf("batch: code %d, %d handles, stderr %q", r.code, strings.Count(r.stdout, "\n"), r.stderr)
			}
			if strings.Contains(r.stderr, "[") {
				t.Errorf("batch drew a progress bar on a non-terminal: %q", r.stderr)
			}
			r = g("", "admin", "priority")
			if !containsFields(r.stdout, "thumb", "0", "601", "1", "0") {
				t.Errorf("after batch, priority: %q", r.stdout)
			}

			// Foreground: data to stdout, status and warnings to stderr.
			startWorker(t, addr, "upper", "tr", "a-z", "A-Z")
			if r = g("hello", "submit", "upper", "-", "--wait"); r.code != 0 || r.stdout != "HELLO" {
				t.Errorf("submit --wait: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			// On a terminal (script(1) gives it one) the result gets the
			// final newline it lacks; in a pipe (above) it does not.
			if script, err := exec.LookPath("script"); err == nil {
				word := filepath.Join(dir, "word")
				if err := os.WriteFile(word, []byte("hello"), 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(script, "-qec", binary(t, "gclient")+" --servers "+addr+" submit upper "+word+" --wait 2>/dev/null", "/dev/null").Output()
				if err != nil || !strings.HasSuffix(string(out), "HELLO\r\n") {
					t.Errorf("submit --wait on a terminal: %q, %v; want HELLO and a newline", out, err)
				}
			} else if os.Getenv("GWORKERD_REQUIRE_PEERS") != "" {
				t.Errorf("script(1) missing: %v", err)
			}
			startPHPWorker(t, addr, "php")
			r = g("x", "submit", "php.events", "-", "--wait")
			if r.code != 0 || r.stdout != "chunk1:chunk2:done:x" || !strings.Contains(r.stderr, "status 1/2") || !strings.Contains(r.stderr, "warning: careful") {
				t.Errorf("submit --wait events: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			if r = g("", "submit", "php.fail", "--wait"); r.code != cli.ExitFailed || !strings.Contains(r.stderr, "failed") {
				t.Errorf("submit --wait fail: code %d stderr %q", r.code, r.stderr)
			}
			if r = g("e", "submit", "php.exception", "-", "--wait"); r.code != cli.ExitFailed || !strings.Contains(r.stderr, "exception: boom:e") {
				t.Errorf("submit --wait exception: code %d stderr %q", r.code, r.stderr)
			}
			if r = g("", "submit", "nobody-does-this", "--wait", "--timeout", "300ms"); r.code != cli.ExitTimeout {
				t.Errorf("submit --wait --timeout: code %d stderr %q", r.code, r.stderr)
			}
		})
	}
}

// TestConfigSources checks --config and GCLIENT_* (not parallel: it sets
// the environment).
func TestConfigSources(t *testing.T) {
	srv := targets[0].start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gclient.yaml")
	if err := os.WriteFile(cfg, []byte("servers:\n  - "+srv.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := gclient(t, "", "--config", cfg, "ping"); r.code != 0 || !strings.Contains(r.stdout, srv.Addr) {
		t.Errorf("ping with --config: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	t.Setenv("GCLIENT_SERVERS", srv.Addr+","+testpeer.DeadAddr(t))
	r := gclient(t, "", "ping")
	if r.code != cli.ExitUnreachable || !containsFields(r.stdout, srv.Addr, "ok") || !strings.Contains(r.stdout, "unreachable") {
		t.Errorf("ping with GCLIENT_SERVERS: code %d stdout %q", r.code, r.stdout)
	}
	// A flag wins over the environment.
	if r := gclient(t, "", "--servers", srv.Addr, "ping"); r.code != 0 {
		t.Errorf("--servers over GCLIENT_SERVERS: code %d stdout %q", r.code, r.stdout)
	}
	t.Setenv("GCLIENT_TIMEOUT", "300ms")
	if r := gclient(t, "", "--servers", srv.Addr, "submit", "nobody-does-this", "--wait"); r.code != cli.ExitTimeout {
		t.Errorf("GCLIENT_TIMEOUT: code %d stderr %q, want %d", r.code, r.stderr, cli.ExitTimeout)
	}
}

// TestConfigFileErrors: a key the config file does not know is a usage
// error naming the file, the line and the key (`timeot: 3s` used to pass
// silently), and so is a file that is not YAML (TOML used to load).
func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, want string }{
		{"typo", "servers: [" + testpeer.DeadAddr(t) + "]\ntimeot: 3s\n", ":2: timeot: unknown key"},
		{"toml", "servers = [\"" + testpeer.DeadAddr(t) + "\"]\n", ":1: the top level must be a mapping of option: value"},
		{"value", "timeout: soon\n", `:1: timeout: want a duration such as 30s or 2m, got "soon"`},
	} {
		p := filepath.Join(dir, tc.name+".yaml")
		if err := os.WriteFile(p, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		r := gclient(t, "", "--config", p, "ping")
		if want := "gclient: " + p + tc.want; r.code != cli.ExitUsage || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, r.code, r.stderr, cli.ExitUsage, want)
		}
	}
}

// TestBinary runs the built command, as scripts do.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := binary(t, "gclient")
	cmd := exec.Command(bin, "--servers", testpeer.DeadAddr(t), "submit", "resize", "photo.json", "--prio", "urgent")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != cli.ExitPriority {
		t.Errorf("exit code %d (%v), want %d; output %q", code, err, cli.ExitPriority, out)
	}
}

// containsFields reports whether a line of out starts with these
// whitespace-separated fields.
func containsFields(out string, fields ...string) bool {
	want := strings.Join(fields, " ")
	for _, l := range strings.Split(out, "\n") {
		got := strings.Join(strings.Fields(l), " ")
		if got == want || strings.HasPrefix(got, want+" ") {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
