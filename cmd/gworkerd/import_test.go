package main

// `gworkerd import`: the example configurations of deploy/examples are
// converted by the built binary, the YAML loads, the report names file
// and line; bad input fails naming FILE:LINE; and the GearmanManager
// example, imported, serves its worker files to real clients.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// importGworkerd runs `gworkerd import ARGS...`; stdout and stderr apart.
func importGworkerd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gworkerdBin, append([]string{"import"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// exampleFile is a file of deploy/examples.
func exampleFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", "examples", rel)
}

// loadImported writes an imported YAML to a file and loads it as
// gworkerd does.
func loadImported(t *testing.T, y string) (*config.Worker, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "imported.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := config.LoadWorker(config.Inputs{LookupEnv: func(k string) (string, bool) { return path, k == "GWORKERD_CONFIG" }})
	if err != nil {
		t.Fatalf("the imported YAML does not load: %v\n%s", err, y)
	}
	return w, path
}

func TestImportExamples(t *testing.T) {
	t.Parallel()
	gmWant := func(t *testing.T, w *config.Worker) {
		t.Helper()
		if got, want := w.Servers, []string{"10.0.0.1:4730", "10.0.0.2:4730"}; !slices.Equal(got, want) {
			t.Errorf("servers = %q, want %q", got, want)
		}
		if got, want := w.WorkerDirs, []string{"/srv/app/workers"}; !slices.Equal(got, want) {
			t.Errorf("worker_dirs = %q, want %q", got, want)
		}
		if got, want := w.Exclude, []string{"Deprecated_Report"}; !slices.Equal(got, want) {
			t.Errorf("exclude = %q, want %q", got, want)
		}
		for _, c := range []struct {
			name    string
			count   int
			timeout time.Duration
		}{{"any", 2, 5 * time.Minute}, {"Reverse_String", 3, 10 * time.Minute}, {"Upper_String", 2, 5 * time.Minute}} {
			f := w.Function(c.name)
			if f.Count != c.count || f.Timeout != c.timeout || f.MaxJobs != 500 || f.MaxLifetime != time.Hour || f.LifetimeSplay != 5*time.Minute || f.User != "www-data" {
				t.Errorf("%s: count %d timeout %v max_jobs %d max_lifetime %v lifetime_splay %v user %q; want count %d timeout %v, 500, 1h, 5m, www-data",
					c.name, f.Count, f.Timeout, f.MaxJobs, f.MaxLifetime, f.LifetimeSplay, f.User, c.count, c.timeout)
			}
		}
	}
	for _, tc := range []struct {
		format, example string
		// stderr lines, after "FILE:"
		report []string
		check  func(t *testing.T, w *config.Worker)
		// the YAML passes `gworkerd check` as it is
		checks bool
	}{
		{
			format: "gearmanmanager", example: "gearmanmanager/config.ini",
			report: []string{
				"37: auto_update: not mapped: gworkerd does not watch the worker files",
				"44: Reverse_String.priority: not mapped: ",
				"32: user: note: ",
			},
			check: gmWant,
		},
		{
			format: "gearmanmanager", example: "gearmanmanager/config.php",
			report: []string{
				"26: auto_update: not mapped: gworkerd does not watch the worker files",
				"33: Reverse_String.priority: not mapped: ",
			},
			check: gmWant,
		},
		{
			format: "supervisord", example: "supervisord/workers.conf",
			report: []string{
				"8: [program:mailer] process_name: not mapped: ",
				"20: [program:thumbnailer] autorestart: not mapped: false: gworkerd always replaces a child that exits",
				"22: [program:thumbnailer] stdout_logfile: not mapped: ",
				"23: [program:thumbnailer] redirect_stderr: not mapped: ",
			},
			check: func(t *testing.T, w *config.Worker) {
				m := w.Function("mailer")
				if got, want := m.Command, []string{"php", "/srv/app/worker.php", "--function=send_mail"}; !slices.Equal(got, want) {
					t.Errorf("mailer command = %q, want %q", got, want)
				}
				env := map[string]string{"APP_ENV": "production", "GEARMAN_SERVERS": "10.0.0.1:4730,10.0.0.2:4730", "MAIL_FROM": "noreply@example.com"}
				if m.Count != 4 || m.Dir != "/srv/app" || m.User != "www-data" || m.StopTimeout != time.Minute || m.ReadyAfter != 2*time.Second ||
					m.FatalAfter != 4 || fmt.Sprint(m.Env) != fmt.Sprint(env) {
					t.Errorf("mailer = %+v; want numprocs 4 → count, directory → dir, user, stopwaitsecs 60 → stop_timeout 1m, startsecs 2 → ready_after 2s, fatal_after 4, env %v", m, env)
				}
				th := w.Function("thumbnailer")
				here := filepath.Dir(exampleFile(t, "supervisord/workers.conf"))
				if got, want := th.Command, []string{"/usr/bin/python3", here + "/thumbnailer.py", "--quality", "85", "--name=thumbnailer"}; !slices.Equal(got, want) {
					t.Errorf("thumbnailer command = %q, want %q (%%(here)s is the file's directory)", got, want)
				}
				if th.Count != 1 || th.StopTimeout != 10*time.Second || th.FatalAfter != 11 || len(th.Env) != 0 {
					t.Errorf("thumbnailer = %+v; want count 1, stop_timeout 10s (supervisord's default), fatal_after 11, no env", th)
				}
			},
			checks: true,
		},
	} {
		t.Run(filepath.Base(tc.example), func(t *testing.T) {
			t.Parallel()
			file := exampleFile(t, tc.example)
			stdout, stderr, err := importGworkerd(t, tc.format, file)
			if err != nil {
				t.Fatalf("gworkerd import %s %s: %v\n%s", tc.format, file, err, stderr)
			}
			w, path := loadImported(t, stdout)
			tc.check(t, w)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			for _, want := range tc.report {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, file+":"+want) }) {
					t.Errorf("stderr has no line %q:\n%s", file+":"+want, stderr)
				}
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, file+":") || !(strings.Contains(l, ": not mapped: ") || strings.Contains(l, ": note: ")) {
					t.Errorf("stderr line %q is not FILE:LINE: key: not mapped|note: ...", l)
				}
			}
			// The YAML lists the same findings at its top.
			for _, want := range tc.report {
				line, rest, _ := strings.Cut(want, ": ")
				key, _, _ := strings.Cut(rest, ": ")
				if !strings.Contains(stdout, "#   "+file+":"+line+": "+key+": ") {
					t.Errorf("the YAML header does not list %s:%s: %s:\n%s", file, line, key, stdout)
				}
			}
			if tc.checks {
				out, err := exec.Command(gworkerdBin, "--config", path, "check").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "OK, 2 functions") {
					t.Errorf("gworkerd check of the imported YAML: %v\n%s", err, out)
				}
			}
		})
	}
}

// Bad input fails with FILE:LINE: message on stderr and nothing on
// stdout; -o keeps an existing file unless --force.
func TestImportErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("big.ini", "[GearmanManager]\n"+strings.Repeat("; "+strings.Repeat("x", 1000)+"\n", 1100))
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string // the whole first line of stderr
	}{
		{"ini syntax", []string{"gearmanmanager", write("bad.ini", "[GearmanManager]\nhost = \"10.0.0.1\n")}, "%s:2: unterminated \" string"},
		{"php not parsed", []string{"gearmanmanager", write("bad.php", "<?php\n$gearman_config = array(\n  'GearmanManager' => getenv('GM'),\n);\n")},
			"%s:3: unsupported expression at \"getenv\": the file is parsed, not run; use literal values"},
		{"no command", []string{"supervisord", write("bad.conf", "[program:ok]\ncommand=/bin/true\n\n[program:mailer]\nnumprocs=2\n")},
			"%s:4: [program:mailer] does not specify a command"},
		{"NUL", []string{"supervisord", write("nul.conf", "[program:a]\ncommand=/bin/true\nuser=a\x00b\n")}, "%s:3: line holds a NUL byte"},
		{"not UTF-8", []string{"gearmanmanager", write("latin1.ini", "[GearmanManager]\n; caf\xe9\n")}, "%s:2: line is not valid UTF-8"},
		{"too large", []string{"gearmanmanager", big}, "%s: file is larger than 1048576 bytes (1 MiB)"},
		{"missing", []string{"supervisord", filepath.Join(dir, "missing.conf")}, "open %s: no such file or directory"},
		{"a directory", []string{"supervisord", dir}, "%s: not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := importGworkerd(t, tc.args...)
			if err == nil {
				t.Fatalf("gworkerd import %q succeeded, want a failure:\n%s", tc.args, stdout)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if want := "gworkerd: " + fmt.Sprintf(tc.stderr, tc.args[len(tc.args)-1]); first != want {
				t.Errorf("stderr %q, want %q", first, want)
			}
		})
	}

	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{}, {"gearmanmanager"}, {"supervisord", "a", "b"}, {"bogus", "x"}} {
			if _, stderr, err := importGworkerd(t, args...); err == nil {
				t.Errorf("gworkerd import %q succeeded, want a usage error", args)
			} else if !strings.HasPrefix(stderr, "gworkerd: ") {
				t.Errorf("gworkerd import %q: stderr %q", args, stderr)
			}
		}
	})

	t.Run("output file", func(t *testing.T) {
		t.Parallel()
		conf := exampleFile(t, "supervisord/workers.conf")
		out := filepath.Join(t.TempDir(), "gworkerd.yaml")
		stdout, stderr, err := importGworkerd(t, "supervisord", conf, "-o", out)
		if err != nil || stdout != "" || !strings.Contains(stderr, out+": written: 4 keys not mapped, 1 notes") {
			t.Fatalf("-o %s: %v, stdout %q, stderr %q", out, err, stdout, stderr)
		}
		first, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		loadImported(t, string(first))

		if err := os.WriteFile(out, []byte("servers: [mine]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err = importGworkerd(t, "supervisord", conf, "-o", out)
		if want := "gworkerd: " + out + " exists: not overwritten (use --force)\n"; err == nil || stdout != "" || stderr != want {
			t.Errorf("-o over an existing file: %v, stdout %q, stderr %q; want a failure and only %q", err, stdout, stderr, want)
		}
		if b, _ := os.ReadFile(out); string(b) != "servers: [mine]\n" {
			t.Errorf("the existing file was changed to %q", b)
		}

		if _, stderr, err := importGworkerd(t, "supervisord", conf, "-o", out, "--force"); err != nil {
			t.Fatalf("--force: %v\n%s", err, stderr)
		}
		if b, _ := os.ReadFile(out); !bytes.Equal(b, first) {
			t.Errorf("--force wrote %q, want the import %q", b, first)
		}
		if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
			t.Errorf("the output directory holds %d files, want only %s (no temporary left)", len(entries), out)
		}
	})
}

// Imported and served: the GearmanManager example, imported, with its
// servers, worker_dir and files pointed at this test's, serves the worker
// files of deploy/examples/gearmanmanager/workers (the function form and
// the class form, the excluded one left out) to the gearman CLI through
// a real gserverd, with the counts the import computed.
func TestImportGearmanManagerServed(t *testing.T) {
	t.Parallel()
	testpeer.Require(t, "php")
	gearman := testpeer.Require(t, "gearman")
	gs := testpeer.StartGserverd(t)
	e := newEnv(t, gs.Addr, "", 30*time.Second)

	imported, stderr, err := importGworkerd(t, "gearmanmanager", exampleFile(t, "gearmanmanager/config.ini"))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, stderr)
	}
	// What differs on this machine: the servers, the worker directory
	// (/srv/app/workers there) and gworkerd's own files. The user is
	// left out: switching to www-data needs root and a readable tree.
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(imported), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	setKey(root, "servers", []string{gs.Addr})
	setKey(root, "worker_dirs", []string{exampleFile(t, "gearmanmanager/workers")})
	setKey(root, "pid_file", e.pidFile)
	setKey(root, "control_socket", e.sock)
	setKey(root, "log_file", e.log)
	defaults := mapValue(t, root, "defaults")
	if mapValue(t, defaults, "user") == nil {
		t.Fatalf("the import gave no defaults.user:\n%s", imported)
	}
	deleteKey(defaults, "user")
	y, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg, y, 0o644); err != nil {
		t.Fatal(err)
	}

	counts := map[string]int{"Reverse_String": 3, "Upper_String": 2}
	out := e.must("check")
	for fn, n := range counts {
		if !regexp.MustCompile(`(?m)^\s+` + fn + `\s+children ` + fmt.Sprint(n) + `$`).MatchString(out) {
			t.Errorf("gworkerd check does not list %s with %d children:\n%s", fn, n, out)
		}
	}
	if strings.Contains(out, "Deprecated_Report") || !strings.Contains(out, "OK, 2 functions") {
		t.Errorf("gworkerd check: want Reverse_String and Upper_String only (Deprecated_Report is excluded):\n%s", out)
	}

	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 60*time.Second, "3 Reverse_String and 2 Upper_String children", func() bool {
		return len(e.running("Reverse_String")) == 3 && len(e.running("Upper_String")) == 2
	})
	var fns []string
	for _, c := range e.status().Children {
		if !slices.Contains(fns, c.Function) {
			fns = append(fns, c.Function)
		}
	}
	slices.Sort(fns)
	if want := []string{"Reverse_String", "Upper_String"}; !slices.Equal(fns, want) {
		t.Errorf("gworkerd runs children for %q, want %q", fns, want)
	}
	// The server sees every child as a worker of its function.
	waitFor(t, 30*time.Second, "gserverd to see 3 + 2 workers", func() bool {
		st := serverStatus(t, gs.Addr)
		return st["Reverse_String"].Workers == 3 && st["Upper_String"].Workers == 2
	})
	if st := serverStatus(t, gs.Addr); st["Deprecated_Report"].Workers != 0 {
		t.Errorf("Deprecated_Report has %d workers, want none (excluded)", st["Deprecated_Report"].Workers)
	}

	host, port, _ := net.SplitHostPort(gs.Addr)
	for _, tc := range []struct{ fn, payload, want string }{
		{"Reverse_String", "Hello, GearmanManager", "reganaMnamraeG ,olleH"},
		{"Upper_String", "Hello, GearmanManager", "HELLO, GEARMANMANAGER"},
		{"Reverse_String", "été", "\xa9\xc3t\xa9\xc3"}, // bytes, as PHP's strrev
		{"Upper_String", "x", "X"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, gearman, "-h", host, "-p", port, "-f", tc.fn, tc.payload)
		var o, eb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &eb
		err := cmd.Run()
		cancel()
		if got := strings.TrimSuffix(o.String(), "\n"); err != nil || got != tc.want {
			t.Errorf("gearman -f %s %q: %v, stdout %q (stderr %q), want %q\nlog:\n%s", tc.fn, tc.payload, err, got, eb.String(), tc.want, e.logTail())
		}
	}
	// The function form's $log lines reach gworkerd's log.
	waitFor(t, 30*time.Second, "Reverse_String's $log lines in gworkerd's log", func() bool {
		return strings.Contains(e.logTail(), "Result: reganaMnamraeG ,olleH")
	})
}

// setKey sets a key of a YAML mapping to v, added when missing.
func setKey(m *yaml.Node, key string, v any) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = &n
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &n)
}

// mapValue is the value of a key of a YAML mapping, or nil.
func mapValue(t *testing.T, m *yaml.Node, key string) *yaml.Node {
	t.Helper()
	if m == nil || m.Kind != yaml.MappingNode {
		t.Fatalf("not a mapping: %v", m)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// deleteKey removes a key of a YAML mapping.
func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
