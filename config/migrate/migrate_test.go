package migrate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixedEnv is the environment the tests import with.
func fixedEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// loadYAML writes y to a file and loads it with gworkerd's loader: what
// an import writes must be a config gworkerd accepts.
func loadYAML(t testing.TB, dir string, y []byte) (*config.Worker, error) {
	t.Helper()
	f, err := os.CreateTemp(dir, "import-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(y); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	name := f.Name()
	return config.LoadWorker(config.Inputs{LookupEnv: func(k string) (string, bool) { return name, k == "GWORKERD_CONFIG" }})
}

// checkOutput checks what every successful import must give: YAML that
// gworkerd loads, a header of comment lines only (nothing from the file
// can break out of a comment), and one report line per finding. It
// returns the loaded config.
func checkOutput(t testing.TB, dir string, res *Result) *config.Worker {
	t.Helper()
	y, err := res.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	w, err := loadYAML(t, dir, y)
	if err != nil {
		t.Fatalf("the imported YAML does not load: %v\n%s", err, y)
	}
	header, _, ok := strings.Cut(string(y), "\n\n")
	if !ok {
		t.Fatalf("no blank line after the header:\n%s", y)
	}
	for i, l := range strings.Split(header, "\n") {
		if !strings.HasPrefix(l, "#") {
			t.Fatalf("header line %d is not a comment: %q\n%s", i+1, l, y)
		}
	}
	report := res.Report()
	if got, want := strings.Count(report, "\n"), len(res.Unmapped)+len(res.Notes); got != want {
		t.Fatalf("report has %d lines, want one per finding (%d):\n%s", got, want, report)
	}
	return w
}

// field renders one setting of a loaded config for comparison: a
// top-level key ("servers", "stop_timeout", ...), "functions" (the names
// of the functions section), or "FUNCTION.key" with the settings
// gworkerd gives that function ("*" is a function the section does not
// name: the defaults).
func field(w *config.Worker, path string) string {
	switch path {
	case "servers":
		return fmt.Sprint(w.Servers)
	case "worker_dirs":
		return fmt.Sprint(w.WorkerDirs)
	case "include":
		return fmt.Sprint(w.Include)
	case "exclude":
		return fmt.Sprint(w.Exclude)
	case "function_prefix":
		return w.FunctionPrefix
	case "pid_file":
		return w.PidFile
	case "log_file":
		return w.LogFile
	case "stop_timeout":
		return w.StopTimeout.String()
	case "functions":
		var names []string
		for _, f := range w.Functions {
			names = append(names, f.Name)
		}
		return fmt.Sprint(names)
	}
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "unknown path " + path
	}
	name, key := path[:i], path[i+1:]
	if name == "*" {
		name = "function-not-in-the-section"
	}
	f := w.Function(name)
	switch key {
	case "count":
		return fmt.Sprint(f.Count)
	case "max_jobs":
		return fmt.Sprint(f.MaxJobs)
	case "fatal_after":
		return fmt.Sprint(f.FatalAfter)
	case "timeout":
		return f.Timeout.String()
	case "max_lifetime":
		return f.MaxLifetime.String()
	case "lifetime_splay":
		return f.LifetimeSplay.String()
	case "stop_timeout":
		return f.StopTimeout.String()
	case "ready_after":
		return f.ReadyAfter.String()
	case "user":
		return f.User
	case "dir":
		return f.Dir
	case "command":
		return fmt.Sprintf("%q", f.Command)
	case "env":
		return fmt.Sprint(f.Env)
	case "disabled":
		return fmt.Sprint(f.Disabled)
	}
	return "unknown key " + key
}

// checkFindings checks the unmapped keys exactly (each "key: reason
// fragment" of want matches one finding, and no finding is left over)
// and the notes as a subset.
func checkFindings(t *testing.T, res *Result, unmapped, notes []string) {
	t.Helper()
	left := append([]Finding(nil), res.Unmapped...)
	for _, w := range unmapped {
		key, frag, _ := strings.Cut(w, ": ")
		j := -1
		for i, f := range left {
			if f.Key == key && strings.Contains(f.Msg, frag) {
				j = i
				break
			}
		}
		if j < 0 {
			t.Errorf("no unmapped %q with a reason saying %q; unmapped:\n%s", key, frag, findings(res.Unmapped))
			continue
		}
		left = append(left[:j], left[j+1:]...)
	}
	if len(left) > 0 {
		t.Errorf("unexpected unmapped keys:\n%s", findings(left))
	}
	for _, w := range notes {
		key, frag, _ := strings.Cut(w, ": ")
		found := false
		for _, f := range res.Notes {
			found = found || (f.Key == key && strings.Contains(f.Msg, frag))
		}
		if !found {
			t.Errorf("no note on %q saying %q; notes:\n%s", key, frag, findings(res.Notes))
		}
	}
}

func findings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %d: %s: %s\n", f.Line, f.Key, f.Msg)
	}
	return b.String()
}

// mapCase is one import and what it must give.
type mapCase struct {
	name string
	file string // Options.Name: its ending picks the format
	src  string
	env  map[string]string
	// want are "path=value" settings of the loaded config (see field).
	want []string
	// unmapped are "key: reason fragment", all of them; notes are
	// "key: fragment", some of them.
	unmapped, notes []string
}

func runMapCases(t *testing.T, convert func([]byte, Options) (*Result, error), cases []mapCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := convert([]byte(tc.src), Options{Name: tc.file, Dir: "/etc/old", LookupEnv: fixedEnv(tc.env), Hostname: "worker1"})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			dir := t.TempDir()
			w := checkOutput(t, dir, res)
			for _, kv := range tc.want {
				path, want, _ := strings.Cut(kv, "=")
				// The loader resolves relative paths against the config
				// file's directory: written back relative to it here.
				got := strings.ReplaceAll(field(w, path), dir, ".")
				if got != want {
					t.Errorf("%s = %s, want %s", path, got, want)
				}
			}
			checkFindings(t, res, tc.unmapped, tc.notes)
		})
	}
}

// errCase is an input an import refuses, and where.
type errCase struct {
	name string
	file string
	src  string
	line int    // the line the error names; 0: the whole file
	msg  string // a fragment of the message
}

func runErrCases(t *testing.T, convert func([]byte, Options) (*Result, error), cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := convert([]byte(tc.src), Options{Name: tc.file})
			if err == nil {
				y, _ := res.YAML()
				t.Fatalf("imported, want an error at line %d:\n%s", tc.line, y)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v (%T), want a *ParseError wrapping ErrSyntax", err, err)
			}
			if pe.File != tc.file || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("error %q: file %q line %d, want %q line %d saying %q", err, pe.File, pe.Line, tc.file, tc.line, tc.msg)
			}
			prefix := tc.file + ": "
			if tc.line > 0 {
				prefix = fmt.Sprintf("%s:%d: ", tc.file, tc.line)
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

// The bounds hold for both formats before any parsing: size, line
// length, UTF-8, NUL, each naming the file and the line.
func TestBounds(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxLineSize+1)
	big := strings.Repeat(strings.Repeat("y", 1000)+"\n", MaxFileSize/1001+1)
	for name, convert := range map[string]func([]byte, Options) (*Result, error){
		"ini": GearmanManager, "php": GearmanManager, "conf": Supervisord,
	} {
		file := "old." + name
		runErrCases(t, convert, []errCase{
			{name: name + "/too large", file: file, src: big, msg: "larger than 1048576 bytes"},
			{name: name + "/long line", file: file, src: "a\nb\n; " + long + "\n", line: 3, msg: "longer than 65536 bytes"},
			{name: name + "/long last line", file: file, src: "a\n" + long, line: 2, msg: "longer than 65536 bytes"},
			{name: name + "/not UTF-8", file: file, src: "a\nb = \xff\xfe\n", line: 2, msg: "not valid UTF-8"},
			{name: name + "/NUL", file: file, src: "a\n\nb = x\x00y\n", line: 3, msg: "NUL"},
		})
	}
	// At the limits exactly, the file is read.
	atLimit := "[GearmanManager]\n; " + strings.Repeat("z", MaxLineSize-2) + "\n"
	if _, err := GearmanManager([]byte(atLimit), Options{Name: "a.ini"}); err != nil {
		t.Errorf("a line of exactly MaxLineSize bytes: %v", err)
	}
}

// The report names the file and line of each finding, unmapped keys
// first; the YAML header lists the same.
func TestReport(t *testing.T) {
	t.Parallel()
	res, err := GearmanManager([]byte("[GearmanManager]\nworker_dir = /w\nverbose = 1\ndaemon = 1\n"), Options{Name: "gm.ini"})
	if err != nil {
		t.Fatal(err)
	}
	want := "gm.ini:3: verbose: not mapped: gworkerd has no log level setting\n" +
		"gm.ini:4: daemon: not mapped: "
	if got := res.Report(); !strings.HasPrefix(got, want) {
		t.Errorf("report:\n%s\nwant it to start with:\n%s", got, want)
	}
	y, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "# Not mapped (2):\n#   gm.ini:3: verbose: gworkerd has no log level setting\n") {
		t.Errorf("YAML header does not list the unmapped keys:\n%s", y)
	}
}

// A key holding control characters (PHP "\n" in a key) stays on its line
// in the report and inside its comment in the YAML.
func TestFindingsStayOnOneLine(t *testing.T) {
	t.Parallel()
	src := "<?php\n$gearman_config = ['GearmanManager' => [\"x\\nservers: [evil]\\n\" => 1, 'worker_dir' => '/w']];\n"
	res, err := GearmanManager([]byte(src), Options{Name: "c.php"})
	if err != nil {
		t.Fatal(err)
	}
	w := checkOutput(t, t.TempDir(), res)
	if got := fmt.Sprint(w.Servers); got != "[127.0.0.1:4730]" {
		t.Errorf("servers = %s: a key from the file escaped its comment", got)
	}
	if !strings.Contains(res.Report(), "x?servers: [evil]?: not mapped") {
		t.Errorf("report:\n%s", res.Report())
	}
}
