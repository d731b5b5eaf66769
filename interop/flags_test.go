package interop

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// How a flag form is tried.
const (
	// checkArgs runs `<server> --check-args FORM...` and compares the exit
	// status: gearmand's fast path that parses the options and the config
	// file, then exits.
	checkArgs = iota
	// serve starts the server with the form on a free port: it must either
	// serve (a background job is accepted) or exit with the status.
	serve
	// plain runs `<server> FORM...` (-h, -V) and compares the exit status.
	plain
	// daemon is serve for -d: the command exits 0 once detached, then the
	// daemon (its pid in $TMP/server.pid) must take a job; it is stopped
	// with SIGTERM.
	daemon
)

// serves is the outcome "started and accepted a job".
const serves = -1

// flagForm is one command line given to gearmand 1.1.20 and gserverd.
// gearmand is the outcome the test checks gearmand against (so the table
// is a measurement of gearmand, not a belief); gserverd is ours. They
// differ only where why says why (a decision of issue 11 or
// docs/PROTOCOL.md section 0).
type flagForm struct {
	args     []string // $TMP is a private directory, $PORT a free port
	mode     int
	gearmand int // exit status, or serves
	gserverd int
	why      string
	file     string // written to $TMP/gearmand.conf first
}

// flagForms covers every option of gearmand 1.1.20's --help (General,
// HTTP, Gear, libmemcached, libsqlite3, Postgres, redis, MySQL), with a
// served form for each class of option, and each bad form.
func flagForms() []flagForm {
	ok := func(mode int, args ...string) flagForm {
		out := 0
		if mode == serve {
			out = serves
		}
		return flagForm{args: args, mode: mode, gearmand: out, gserverd: out}
	}
	bad := func(mode int, args ...string) flagForm {
		return flagForm{args: args, mode: mode, gearmand: 1, gserverd: 1}
	}
	differ := func(f flagForm, gserverd int, why string) flagForm {
		f.gserverd, f.why = gserverd, why
		return f
	}
	return []flagForm{
		// General options, accepted.
		ok(serve, "-b", "64"),
		ok(checkArgs, "--backlog=16"),
		ok(checkArgs, "-d"),
		{args: []string{"-d", "-P", "$TMP/server.pid", "-l", "$TMP/server.log"}, mode: daemon, gearmand: serves, gserverd: serves},
		ok(checkArgs, "--daemon"),
		ok(serve, "--exceptions"),
		ok(serve, "-f", "4096"),
		ok(checkArgs, "--file-descriptors=2048"),
		ok(plain, "-h"),
		ok(plain, "--help"),
		ok(serve, "-j", "2"),
		ok(checkArgs, "--job-retries=0"),
		ok(serve, "--job-handle-prefix", "FX"),
		ok(serve, "--hashtable-buckets", "1733003"),
		ok(serve, "--keepalive", "--keepalive-idle", "30", "--keepalive-interval", "5", "--keepalive-count", "3"),
		ok(serve, "-l", "$TMP/server.log"),
		ok(checkArgs, "--log-file=none"),
		ok(serve, "-L", "127.0.0.1"),
		ok(serve, "--listen=127.0.0.1"),
		ok(serve, "-P", "$TMP/server.pid"),
		ok(checkArgs, "--pid-file=$TMP/x.pid"),
		ok(serve, "-r", "http", "--http-port", "$PORT"),
		ok(checkArgs, "--protocol=http"),
		ok(serve, "-R"),
		ok(checkArgs, "--round-robin"),
		ok(serve, "-q", "builtin"),
		ok(checkArgs, "--queue-type=builtin"),
		{args: []string{"--config-file", "$TMP/gearmand.conf"}, mode: serve, gearmand: serves, gserverd: serves,
			file: "--job-retries=2\n--verbose=INFO --exceptions\n"},
		ok(serve, "--syslog"),
		ok(serve, "--coredump"),
		ok(serve, "-t", "1"),
		ok(checkArgs, "--threads=0"),
		ok(checkArgs, "-u", "nobody"),
		ok(checkArgs, "--user=nobody"),
		ok(serve, "--verbose", "DEBUG"),
		ok(checkArgs, "--verbose=WARNING"),
		ok(plain, "-V"),
		ok(plain, "--version"),
		ok(serve, "-w", "1"),
		ok(checkArgs, "--worker-wakeup=3"),
		// HTTP and Gear.
		ok(checkArgs, "--http-port=8081"),
		ok(checkArgs, "-p", "4730"),
		ok(serve, "--port=$PORT"),
		ok(checkArgs, "--ssl-ca-file=ca.pem", "--ssl-certificate=c.pem", "--ssl-key=k.pem"),
		ok(checkArgs, "--ssl", "--ssl-certificate=c.pem", "--ssl-key=k.pem"),
		// Queue modules' options (their queue not selected).
		ok(serve, "--libmemcached-servers", "127.0.0.1:1", "--libmemcached-prefix", "x_"),
		ok(serve, "--libsqlite3-db", "$TMP/q.db", "--libsqlite3-table", "t", "--store-queue-on-shutdown"),
		ok(checkArgs, "--libpq-conninfo", "host=127.0.0.1 dbname=test", "--libpq-table", "q"),
		ok(serve, "--redis-server", "127.0.0.1", "--redis-port", "6379", "--redis-password", "x", "--redis-prefix", "p_"),
		ok(checkArgs, "--mysql-host", "h", "--mysql-port", "3307", "--mysql-user", "u", "--mysql-password", "p", "--mysql-db", "d", "--mysql-table", "t"),

		// Bad forms: the same exit status.
		bad(checkArgs, "foo"),
		bad(checkArgs, "--port=1", "stray"),
		bad(checkArgs, "--bogus"),
		bad(checkArgs, "-p"),
		bad(checkArgs, "--verbose=BOGUS"),
		bad(checkArgs, "-j", "abc"),
		bad(checkArgs, "-j", "99999999999"),
		bad(checkArgs, "-t", "2.5"),
		bad(checkArgs, "-b", "abc"),
		bad(checkArgs, "-w", "abc"),
		bad(checkArgs, "-f", "abc"),
		bad(checkArgs, "--hashtable-buckets=0"),
		bad(checkArgs, "--hashtable-buckets=abc"),
		bad(checkArgs, "--keepalive-idle=abc"),
		bad(checkArgs, "--mysql-port=abc"),
		bad(checkArgs, "--config-file=$TMP/missing.conf"),
		{args: []string{"--config-file", "$TMP/gearmand.conf"}, mode: checkArgs, gearmand: 1, gserverd: 1, file: "--port=1\n--bogus\n"},
		bad(serve, "-p", "abc"),
		bad(serve, "-q", "bogus"),
		bad(serve, "-r", "bogus"),
		bad(serve, "-r", "http", "--http-port", "abc"),
		bad(serve, "-u", "nosuchuser"),
		bad(serve, "-P", "$TMP/missing/server.pid"),
		bad(serve, "-q", "libdrizzle"),

		// Where gserverd decides otherwise.
		differ(bad(checkArgs, "-v"), 0, "issue 11: -v stacks (each v one level up from --verbose); gearmand 1.1.20 refuses it"),
		differ(bad(serve, "-vvv"), serves, "issue 11: -vvv is INFO; gearmand 1.1.20 refuses it"),
		differ(ok(checkArgs, "-j", "256"), 1, "--job-retries takes gearmand HEAD's -1..255; 1.1.20 wraps 256 to 0 (unlimited)"),
		differ(ok(checkArgs, "-t", "-1"), 1, "a negative count is refused; gearmand 1.1.20 wraps it to 4 billion threads"),
		differ(ok(checkArgs, "-w", "-1"), 1, "a negative count is refused; gearmand 1.1.20 wraps it"),
		differ(ok(checkArgs, "-b", "-5"), 1, "a negative backlog is refused; gearmand 1.1.20 passes it to listen"),
		differ(ok(checkArgs, "--keepalive-idle=-5"), 1, "only -1 or a positive time; gearmand 1.1.20 passes it to setsockopt"),
		differ(ok(checkArgs, "--http-port=abc"), 1, "every value is checked; gearmand 1.1.20 reads --http-port only with -r http"),
		differ(ok(checkArgs, "--redis-port=abc"), 1, "every value is checked; gearmand 1.1.20 reads --redis-port only with -q redis"),
		differ(ok(serve, "--ssl"), 1, "--ssl without a certificate is refused; gearmand 1.1.20 starts and fails every TLS handshake"),
		differ(bad(checkArgs, "-L", "127.0.0.1", "-L", "::1"), 0, "-L repeats: gserverd binds each; gearmand 1.1.20 takes one address"),
		differ(bad(checkArgs, "--port=1", "--port=2"), 0, "the last of an option given twice wins (scripts add overrides to a base line); gearmand 1.1.20 refuses it"),
		differ(bad(checkArgs, "--exceptions", "--exceptions"), 0, "an option given twice is no error"),
		differ(bad(checkArgs, "--verbose=info"), 0, "level names are case-insensitive"),
		differ(bad(checkArgs, "--syslog=1"), 0, "an on/off option also takes a value (--daemon=false), as GSERVERD_* variables and the YAML file do"),
		differ(bad(checkArgs, "--daemon=yes"), 0, "an on/off option also takes a value (--daemon=false)"),
		differ(bad(checkArgs, "--daemon=maybe"), 1, "an on/off option also takes a value, but only true/false, yes/no, on/off, 1/0"),
		differ(bad(serve, "-q", "libmemcached"), serves, "issue 11: no memcached queue; the embedded store stands in, with a warning"),
		differ(bad(serve, "-q", "libpq"), serves, "libpq (gearmand's option prefix) names the Postgres queue too"),
		differ(bad(checkArgs, "--libtokyocabinet-file=q.tc", "--libdrizzle-host=h"), 0,
			"issue 11: upstream's tokyocabinet and drizzle options (not in Debian's gearmand build) are accepted and ignored, with a warning"),
	}
}

// TestFlags gives every gearmand 1.1.20 option, and each bad form, to
// both gearmand and gserverd and compares the exit status, and for the
// served forms that each server serves with it.
func TestFlags(t *testing.T) {
	t.Parallel()
	gearmand := testpeer.Require(t, "gearmand")
	gserverd := testpeer.Binary(t, "gserverd")
	for _, f := range flagForms() {
		if f.gearmand != f.gserverd && f.why == "" {
			t.Fatalf("%q: outcomes differ without a reason", f.args)
		}
		name := strings.Join(f.args, " ")
		if f.why != "" {
			name = "differs/" + name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, srv := range []struct {
				name, bin string
				want      int
			}{{"gearmand", gearmand, f.gearmand}, {"gserverd", gserverd, f.gserverd}} {
				got, out := tryForm(t, srv.name, srv.bin, f)
				if got != srv.want {
					t.Errorf("%s %q: %s, want %s\n%s", srv.name, f.args, outcome(got), outcome(srv.want), out)
				}
			}
		})
	}
}

func outcome(n int) string {
	if n == serves {
		return "serves"
	}
	return "exit " + strconv.Itoa(n)
}

// tryForm runs the server binary with f and returns the outcome and the
// server's output.
func tryForm(t *testing.T, name, bin string, f flagForm) (int, string) {
	t.Helper()
	tmp := t.TempDir()
	port := strconv.Itoa(testpeer.FreePort(t))
	if f.file != "" {
		if err := os.WriteFile(filepath.Join(tmp, "gearmand.conf"), []byte(f.file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	given := map[string]bool{}
	for _, a := range f.args {
		a = strings.ReplaceAll(strings.ReplaceAll(a, "$TMP", tmp), "$PORT", port)
		args = append(args, a)
		given[strings.SplitN(a, "=", 2)[0]] = true
	}
	gearPort := port
	if given["-r"] {
		gearPort = strconv.Itoa(testpeer.FreePort(t))
	}
	var base []string
	if f.mode == serve || f.mode == daemon {
		if !given["-p"] && !given["--port"] {
			base = append(base, "-p", gearPort)
		} else if given["--port"] {
			gearPort = port
		}
		if !given["-L"] && !given["--listen"] {
			base = append(base, "-L", "127.0.0.1")
		}
		if !given["-l"] && !given["--log-file"] {
			base = append(base, "-l", "stderr")
		}
		if name == "gearmand" && !given["-P"] {
			base = append(base, "-P", filepath.Join(tmp, "gearmand.pid"))
		}
	}
	if f.mode == checkArgs {
		base = append(base, "--check-args")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	// gserverd: a private store, and no HTTP endpoint (its default port
	// is shared by every gserverd of the test).
	cmd.Env = append(os.Environ(), "GSERVERD_DATA_DIR="+filepath.Join(tmp, "data"), "GSERVERD_HTTP_LISTEN=")
	if f.mode == daemon {
		return tryDaemon(ctx, t, name, cmd, filepath.Join(tmp, "server.pid"), net.JoinHostPort("127.0.0.1", gearPort))
	}
	if f.mode != serve {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return exitCode(t, err), out.String()
	}
	p := testpeer.Start(t, cmd) // its stderr: p.Output()
	addr := net.JoinHostPort("127.0.0.1", gearPort)
	for {
		select {
		case <-p.Done():
			return cmd.ProcessState.ExitCode(), p.Output()
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s %q: neither served nor exited\n%s", name, f.args, p.Output())
		}
		time.Sleep(20 * time.Millisecond) // polling a socket that is not ours to signal
	}
	if _, err := testpeer.SubmitJob(ctx, addr, "flags", "x", true, false); err != nil {
		// gearmand listens on the Gear port before it fails on a later
		// module (-r http --http-port abc): its exit is the outcome.
		select {
		case <-p.Done():
			return cmd.ProcessState.ExitCode(), p.Output()
		case <-ctx.Done():
			t.Fatalf("%s %q: listens but a background submit failed: %v\n%s", name, f.args, err, p.Output())
		}
	}
	p.Stop()
	return serves, p.Output()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// tryDaemon runs cmd (with -d), which must exit 0, then waits for the
// daemon to serve on addr and take a job, and stops it by the pid in
// pidFile.
func tryDaemon(ctx context.Context, t *testing.T, name string, cmd *exec.Cmd, pidFile, addr string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if code := exitCode(t, cmd.Run()); code != 0 {
		return code, out.String()
	}
	var pid int
	waitFor(t, name+" daemon's pid file", func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	gone := func() bool { // exited (a zombie when nobody reaps it) or reaped
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		_, after, _ := strings.Cut(string(st), ") ")
		return err != nil || strings.HasPrefix(after, "Z") || proc.Signal(syscall.Signal(0)) != nil
	}
	t.Cleanup(func() {
		_ = proc.Signal(syscall.SIGTERM)
		waitFor(t, name+" daemon to stop", gone)
	})
	waitFor(t, name+" daemon to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if _, err := testpeer.SubmitJob(ctx, addr, "flags", "x", true, false); err != nil {
		t.Fatalf("%s daemon: a background submit failed: %v\n%s", name, err, out.String())
	}
	return serves, out.String()
}
