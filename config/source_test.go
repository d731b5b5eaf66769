package config

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// program loads one program's configuration from a file, the
// environment and the command line, the way its main does, and returns
// one of its settings and that setting's source.
type program struct {
	name string
	// load loads with the config file at path ("" for none), env and
	// args (the program's flags), from the working directory /wd.
	load func(t *testing.T, path string, env map[string]string, args []string) (any, error)
}

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func parseFlags(t *testing.T, register func(*pflag.FlagSet), args []string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return fs
}

var programs = []program{
	{"gserverd", func(t *testing.T, path string, env map[string]string, args []string) (any, error) {
		if path != "" {
			args = append([]string{"--config-file", path}, args...)
		}
		in := Inputs{Flags: parseFlags(t, ServerFlags, args), LookupEnv: mapEnv(env), WorkDir: "/wd"}
		return loadServerWith(in, 1000, "/nonexistent/gearmand.conf")
	}},
	{"gworkerd", func(t *testing.T, path string, env map[string]string, args []string) (any, error) {
		if path != "" {
			args = append([]string{"--config", path}, args...)
		}
		return LoadWorker(Inputs{Flags: parseFlags(t, WorkerFlags, args), LookupEnv: mapEnv(env), WorkDir: "/wd"})
	}},
	{"gclient", func(t *testing.T, path string, env map[string]string, args []string) (any, error) {
		if path != "" {
			args = append([]string{"--config", path}, args...)
		}
		return LoadClient(Inputs{Flags: parseFlags(t, ClientFlags, args), LookupEnv: mapEnv(env), WorkDir: "/wd"})
	}},
}

func programNamed(name string) program {
	for _, p := range programs {
		if p.name == name {
			return p
		}
	}
	panic(name)
}

// TestUnknownKeyIsAnError: in every program, a key the file does not
// know is an error naming the file, the line and the key, whatever
// spelling and however deep (gclient's `timeot: 3s` is the typo that
// used to pass).
func TestUnknownKeyIsAnError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prog, file, want string // want: $FILE is the file's path
	}{
		{"gserverd", "port: 4730\njob_retires: 3\n", "$FILE:2: job_retires: unknown key"},
		{"gserverd", "# c\n\nQueue-Tipe: builtin\n", "$FILE:3: queue_tipe: unknown key"},
		{"gworkerd", "servers: [a:1]\nstop_timout: 5s\n", "$FILE:2: stop_timout: unknown key"},
		{"gworkerd", "resize:\n  max_pixels: 10\n  jpeg_qality: 5\n", "$FILE:3: resize.jpeg_qality: unknown key"},
		{"gworkerd", "functions:\n  F:\n    cuont: 2\n", "$FILE:3: functions.F.cuont: unknown key"},
		{"gclient", "servers: [127.0.0.1:4730]\ntimeot: 3s\n", "$FILE:2: timeot: unknown key"},
		{"gclient", "timeout: 3s\nserver: a:1\n", "$FILE:2: server: unknown key"},
		{"gclient", "dial-timeout: 1s\nconfig: other.yaml\n", "$FILE:2: config: cannot be set inside the config file"},
		{"gclient", "servers = [\"a:1\"]\n", "$FILE:1: the top level must be a mapping of option: value"},
		{"gclient", "servers: [a:1]\nservers: [b:1]\n", "$FILE:2: servers: duplicate key"},
	} {
		t.Run(tc.prog+" "+strings.SplitN(tc.want, " ", 2)[1], func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "config.yaml", tc.file)
			_, err := programNamed(tc.prog).load(t, path, nil, nil)
			want := strings.ReplaceAll(tc.want, "$FILE", path)
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q", err, want)
			}
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) || ce.Source.Kind != SourceFile || ce.Source.Name != path {
				t.Errorf("error %#v is not an *Error of the file", err)
			}
		})
	}
}

// TestLayersRecordTheirSource: in every program the environment wins
// over the file and a flag over both, and the configuration says which
// one gave the value.
func TestLayersRecordTheirSource(t *testing.T) {
	t.Parallel()
	type got struct {
		val string
		src Source
	}
	for _, tc := range []struct {
		prog, key, file, env, flag string
		line                       int       // of the key in the file
		vals                       [3]string // from the file, the environment, the flag
		get                        func(c any) got
	}{
		{prog: "gserverd", key: "job_retries", file: "port: 4730\njob_retries: 1\n", env: "GSERVERD_JOB_RETRIES", flag: "--job-retries", line: 2,
			vals: [3]string{"1", "2", "3"},
			get: func(c any) got {
				s := c.(*Server)
				return got{itoa(s.JobRetries), s.Source("job_retries")}
			}},
		{prog: "gworkerd", key: "stop_timeout", file: "servers: [a:1]\nstop_timeout: 1s\n", env: "GWORKERD_STOP_TIMEOUT", flag: "--stop-timeout", line: 2,
			vals: [3]string{"1s", "2s", "3s"},
			get: func(c any) got {
				w := c.(*Worker)
				return got{w.StopTimeout.String(), w.Source("stop_timeout")}
			}},
		{prog: "gworkerd", key: "resize.max_pixels", file: "servers: [a:1]\nresize:\n  max_pixels: 1\n", env: "GWORKERD_RESIZE_MAX_PIXELS", flag: "--resize-max-pixels", line: 3,
			vals: [3]string{"1", "2", "3"},
			get: func(c any) got {
				w := c.(*Worker)
				return got{itoa(int(w.Resize.MaxPixels)), w.Source("resize.max_pixels")}
			}},
		{prog: "gclient", key: "timeout", file: "servers: [a:1]\ntimeout: 1s\n", env: "GCLIENT_TIMEOUT", flag: "--timeout", line: 2,
			vals: [3]string{"1s", "2s", "3s"},
			get: func(c any) got {
				cl := c.(*Client)
				return got{cl.Timeout.String(), cl.Source("timeout")}
			}},
		{prog: "gclient", key: "servers", file: "servers:\n  - a:1\n", env: "GCLIENT_SERVERS", flag: "--servers", line: 1,
			vals: [3]string{"a:1", "b:2", "c:3"},
			get: func(c any) got {
				cl := c.(*Client)
				return got{strings.Join(cl.Servers, ","), cl.Source("servers")}
			}},
	} {
		t.Run(tc.prog+" "+tc.key, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "config.yaml", tc.file)
			line, p := tc.line, programNamed(tc.prog)
			for i, layer := range []struct {
				env  map[string]string
				args []string
				want got
			}{
				{nil, nil, got{tc.vals[0], Source{Kind: SourceFile, Name: path, Line: line}}},
				{map[string]string{tc.env: tc.vals[1]}, nil, got{tc.vals[1], Source{Kind: SourceEnv, Name: tc.env}}},
				{map[string]string{tc.env: tc.vals[1]}, []string{tc.flag + "=" + tc.vals[2]}, got{tc.vals[2], Source{Kind: SourceFlag, Name: tc.flag}}},
			} {
				c, err := p.load(t, path, layer.env, layer.args)
				if err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
				if g := tc.get(c); g != layer.want {
					t.Errorf("layer %d (env %v, args %q): %s = %q from %+v, want %q from %+v", i, layer.env, layer.args, tc.key, g.val, g.src, layer.want.val, layer.want.src)
				}
			}
		})
	}
}

// TestBadValueNamesItsSource: a bad value is an error naming the key
// and where it came from, in the same words in every program.
func TestBadValueNamesItsSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prog, file string
		env        map[string]string
		args       []string
		want       string
	}{
		{"gserverd", "job_retries: lots\n", nil, nil, `$FILE:1: job_retries: want an integer, got "lots"`},
		{"gworkerd", "stop_timeout: soon\n", nil, nil, `$FILE:1: stop_timeout: want a duration such as 30s or 2m, got "soon"`},
		{"gclient", "\ntimeout: soon\n", nil, nil, `$FILE:2: timeout: want a duration such as 30s or 2m, got "soon"`},
		{"gserverd", "", map[string]string{"GSERVERD_PACKET_TIMEOUT": "soon"}, nil, `GSERVERD_PACKET_TIMEOUT (environment): packet_timeout: want a duration such as 30s or 2m, got "soon"`},
		{"gworkerd", "", map[string]string{"GWORKERD_STOP_TIMEOUT": "soon"}, nil, `GWORKERD_STOP_TIMEOUT (environment): stop_timeout: want a duration such as 30s or 2m, got "soon"`},
		{"gclient", "", map[string]string{"GCLIENT_DIAL_TIMEOUT": "soon"}, nil, `GCLIENT_DIAL_TIMEOUT (environment): dial_timeout: want a duration such as 30s or 2m, got "soon"`},
		{"gserverd", "", nil, []string{"--store-timeout", "soon"}, `--store-timeout: want a duration such as 30s or 2m, got "soon"`},
		{"gworkerd", "", nil, []string{"--scale-interval", "soon"}, `--scale-interval: want a duration such as 30s or 2m, got "soon"`},
		{"gclient", "", nil, []string{"--timeout", "soon"}, `--timeout: want a duration such as 30s or 2m, got "soon"`},
	} {
		t.Run(tc.prog+" "+tc.want, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "config.yaml", tc.file)
			_, err := programNamed(tc.prog).load(t, path, tc.env, tc.args)
			if want := strings.ReplaceAll(tc.want, "$FILE", path); err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
		})
	}
}

// TestRelativePaths: in every program a relative path in the file is
// relative to the file's directory, one from a flag or the environment
// to the working directory, so that nothing depends on where a daemon
// works once it has detached.
func TestRelativePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := func(p string) string { return filepath.Join(dir, p) }
	path := j("c.yaml")

	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("pid_file: run/g.pid\ndata_dir: data\nlibsqlite3_db: q.db\nlog_file: stderr\nssl_ca_file: /abs/ca.pem\n")
	c, err := programNamed("gserverd").load(t, path, map[string]string{"GSERVERD_SSL_KEY": "k.pem"}, []string{"--ssl-certificate", "s.pem"})
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*Server)
	got := []string{s.PidFile, s.Store.DataDir, s.Store.SQLiteDB, s.LogFile, s.SSLCAFile, s.SSLKey, s.SSLCertificate}
	want := []string{j("run/g.pid"), j("data"), j("q.db"), "stderr", "/abs/ca.pem", "/wd/k.pem", "/wd/s.pem"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gserverd paths\n got %q\nwant %q", got, want)
	}

	write("servers: [a:1]\npid_file: run/g.pid\njob_dirs: [jobs, /abs]\nphp: bin/php\npython: python3\n")
	c, err = programNamed("gworkerd").load(t, path, map[string]string{"GWORKERD_LOG_FILE": "g.log"}, []string{"--control-socket", "run/g.sock"})
	if err != nil {
		t.Fatal(err)
	}
	w := c.(*Worker)
	got = []string{w.Path, w.PidFile, w.JobDirs[0], w.JobDirs[1], w.PHP, w.Python, w.LogFile, w.ControlSocket}
	want = []string{path, j("run/g.pid"), j("jobs"), "/abs", j("bin/php"), "python3", "/wd/g.log", "/wd/run/g.sock"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gworkerd paths\n got %q\nwant %q", got, want)
	}

	// The config file named relatively is from the working directory.
	if _, err := programNamed("gclient").load(t, "rel.yaml", nil, nil); err == nil || err.Error() != "/wd/rel.yaml: cannot read the config file: no such file or directory" {
		t.Errorf("gclient, relative --config: %v", err)
	}
}

// TestClientConfig: gclient reads YAML (and so JSON), not TOML, and
// fills the defaults.
func TestClientConfig(t *testing.T) {
	t.Parallel()
	load := programNamed("gclient").load
	c, err := load(t, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.(*Client)
	if !reflect.DeepEqual(cl.Servers, []string{"127.0.0.1:4730"}) || cl.Timeout != 0 || cl.DialTimeout != client.DefaultDialTimeout || cl.ConfigFile != "" {
		t.Errorf("defaults: %+v", cl)
	}
	path := writeFile(t, "c.json", `{"servers": ["a:1", "b:2"], "dial_timeout": "500ms", "timeout": 3}`)
	c, err = load(t, path, map[string]string{"GCLIENT_SERVERS": " , "}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl = c.(*Client)
	if !reflect.DeepEqual(cl.Servers, []string{"127.0.0.1:4730"}) || cl.Timeout != 3*time.Second || cl.DialTimeout != 500*time.Millisecond || cl.ConfigFile != path {
		t.Errorf("JSON file, blank GCLIENT_SERVERS: %+v", cl)
	}
	c, err = load(t, path, nil, []string{"--servers", "x:1,y:2", "--servers", "z:3"})
	if err != nil || !reflect.DeepEqual(c.(*Client).Servers, []string{"x:1", "y:2", "z:3"}) {
		t.Errorf("--servers twice: %v, %v", c, err)
	}
}

// TestQueueTypeAliases: gserverd's -q flag, its queue_type file key and
// storeconf.ParseQueueType (which open.Store uses: TestStoreAliases)
// accept the same names, each as the same store, and warn alike for the
// gearmand modules the embedded store stands in for.
func TestQueueTypeAliases(t *testing.T) {
	t.Parallel()
	names := storeconf.Aliases()
	for _, n := range storeconf.QueueTypes() {
		names[n] = n
		names[strings.ToUpper(n)] = n
	}
	if len(names) < 2*len(storeconf.QueueTypes())+7 {
		t.Fatalf("only %d names: %v", len(names), names)
	}
	standIn := map[string]bool{}
	for _, n := range storeconf.StandIns() {
		standIn[n] = true
	}
	for name, canonical := range names {
		parsed, isStandIn, err := storeconf.ParseQueueType(name)
		if err != nil || parsed != canonical || isStandIn != standIn[name] {
			t.Errorf("ParseQueueType(%q) = %q, %v, %v; want %q, %v", name, parsed, isStandIn, err, canonical, standIn[name])
		}
		for _, how := range []struct {
			args []string
			file string
		}{
			{args: []string{"-q", name}},
			{args: []string{"--queue-type=" + name}},
			{file: "queue_type: " + name + "\n"},
			{file: "--queue-type=" + name + "\n"}, // gearmand's format
		} {
			path := ""
			if how.file != "" {
				path = writeFile(t, "c.conf", how.file)
			}
			c, err := programNamed("gserverd").load(t, path, nil, how.args)
			if err != nil {
				t.Errorf("%q %q: %v", how.args, how.file, err)
				continue
			}
			s := c.(*Server)
			if s.Store.QueueType != canonical || (len(s.Warnings) == 1) != standIn[name] {
				t.Errorf("%q %q: queue type %q, warnings %q; want %q, a warning: %v", how.args, how.file, s.Store.QueueType, s.Warnings, canonical, standIn[name])
			}
		}
	}
	for _, bad := range []string{"", "nosql", "libdrizzle", "sqlite4"} {
		_, _, perr := storeconf.ParseQueueType(bad)
		_, err := programNamed("gserverd").load(t, "", nil, []string{"-q", bad})
		if perr == nil || err == nil || err.Error() != "--queue-type: "+perr.Error() {
			t.Errorf("-q %q: %v; ParseQueueType: %v", bad, err, perr)
		}
	}
}

// TestOneDefinitionEach: each default and table the three loaders share
// is declared once in the module; a second copy is how they drifted
// (DefaultDataDir twice with different fallbacks, the queue-type aliases
// twice with different sets).
func TestOneDefinitionEach(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string][]string{}
	watch := map[string]bool{"DefaultDataDir": true, "ParseQueueType": true, "queueNames": true, "Aliases": true,
		"DefaultHTTPListenFor": true, "DefaultMemberID": true, "DefaultServer": true}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && watch[d.Name.Name] {
					count[d.Name.Name] = append(count[d.Name.Name], rel)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					if v, ok := spec.(*ast.ValueSpec); ok {
						for _, n := range v.Names {
							if watch[n.Name] {
								count[n.Name] = append(count[n.Name], rel)
							}
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range watch {
		if len(count[name]) != 1 {
			t.Errorf("%s is declared %d times: %q; want once", name, len(count[name]), count[name])
		}
	}
}

// TestWorkerFlagsHandedOn: FlagArgs gives the settings of a command
// line as flags that load the same configuration in another process
// (gworkerd's daemon), and only those.
func TestWorkerFlagsHandedOn(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "w.yaml", "servers: [a:1]\n")
	args := []string{"--config", path, "--servers", "b:2,c:3", "--pid-file", "run/g.pid", "--stop-timeout", "7s", "--http-listen", ""}
	fs := parseFlags(t, WorkerFlags, args)
	fs.Bool("foreground", false, "not a setting")
	if err := fs.Parse([]string{"--foreground"}); err != nil {
		t.Fatal(err)
	}
	handed := FlagArgs(fs)
	for _, a := range handed {
		if strings.HasPrefix(a, "--foreground") {
			t.Errorf("FlagArgs %q hands on --foreground", handed)
		}
	}
	in := func(fs *pflag.FlagSet) Inputs { return Inputs{Flags: fs, WorkDir: "/wd"} }
	w1, err := LoadWorker(in(fs))
	if err != nil {
		t.Fatal(err)
	}
	w2, err := LoadWorker(in(parseFlags(t, WorkerFlags, handed)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w1, w2) || w2.PidFile != "/wd/run/g.pid" || w2.StopTimeout != 7*time.Second || w2.HTTPListen != "" ||
		!reflect.DeepEqual(w2.Servers, []string{"b:2", "c:3"}) || w2.Source("pid_file") != (Source{Kind: SourceFlag, Name: "--pid-file"}) {
		t.Errorf("handed on %q:\n got %+v\nwant %+v", handed, w2, w1)
	}
}

// TestWorkerControlFromFlags: stop, status and ctl reach a daemon by the
// flags alone, with no readable config file.
func TestWorkerControlFromFlags(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "none.yaml")
	fs := parseFlags(t, WorkerFlags, []string{"--config", missing, "--pid-file", "/run/x.pid", "--control-socket", "x.sock"})
	c, err := LoadWorkerControl(Inputs{Flags: fs, LookupEnv: mapEnv(map[string]string{"GWORKERD_STOP_TIMEOUT": "9s"}), WorkDir: "/wd"})
	want := WorkerControl{PidFile: "/run/x.pid", ControlSocket: "/wd/x.sock", StopTimeout: 9 * time.Second}
	if c != want || err == nil || !strings.Contains(err.Error(), "cannot read the config file") {
		t.Errorf("LoadWorkerControl = %+v, %v; want %+v and the file's error", c, err, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
