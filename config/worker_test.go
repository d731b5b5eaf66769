package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

// parseWorker loads the config data as read from path, with lookupEnv,
// no flags, and /wd as the working directory.
func parseWorker(path string, data []byte, lookupEnv func(string) (string, bool)) (*Worker, error) {
	return loadWorker(Inputs{LookupEnv: lookupEnv, WorkDir: "/wd"}, path, data)
}

// configEnv is an environment that names the config file path.
func configEnv(path string) func(string) (string, bool) {
	return func(k string) (string, bool) { return path, k == "GWORKERD_CONFIG" }
}

func TestParseWorker(t *testing.T) {
	t.Parallel()
	const file = `servers: [127.0.0.1:4730, 127.0.0.1:4731]
job_dirs:
  - /srv/jobs
pid_file: /tmp/g.pid
stop_timeout: 10s
defaults:
  max_jobs: 100
  env: {A: "1"}
functions:
  Resize:
    count: 3
    memory_limit: 256MB
    env: {B: "2"}
  resize:
    min: 1
    max: 4
    max_idle: 30
    timeout: 2m
    retries: 2
    max_lifetime: 1h
    concurrency: 3
    user: nobody
  plain:
`
	w, err := parseWorker("w.yaml", []byte(file), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.Servers, []string{"127.0.0.1:4730", "127.0.0.1:4731"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if w.StopTimeout != 10*time.Second || w.PidFile != "/tmp/g.pid" || w.ControlSocket != DefaultWorkerControlSocket {
		t.Errorf("top level = %+v", w)
	}
	if len(w.Functions) != 3 {
		t.Fatalf("functions = %d, want 3 (names are case-sensitive)", len(w.Functions))
	}
	R := w.Function("Resize")
	if R.MemoryHardLimit != 512<<20 {
		t.Errorf("Resize memory_hard_limit = %d, want twice memory_limit", R.MemoryHardLimit)
	}
	if w.Function("plain").MemoryHardLimit != 0 {
		t.Errorf("plain memory_hard_limit = %d without memory_limit, want 0", w.Function("plain").MemoryHardLimit)
	}
	if R.Count != 3 || R.MemoryLimit != 256<<20 || R.MaxJobs != 100 || R.Line != 10 || !reflect.DeepEqual(R.Env, map[string]string{"A": "1", "B": "2"}) {
		t.Errorf("Resize = %+v", R)
	}
	r := w.Function("resize")
	if r.Min != 1 || r.Max != 4 || !r.Autoscaled() || r.MaxIdle != 30*time.Second || r.Count != 1 {
		t.Errorf("resize = %+v", r)
	}
	if r.Timeout != 2*time.Minute || r.Retries != 2 || r.MaxLifetime != time.Hour || r.Concurrency != 3 || r.User != "nobody" {
		t.Errorf("resize: timeout %v retries %d max_lifetime %v concurrency %d user %q; want 2m0s 2 1h0m0s 3 \"nobody\"",
			r.Timeout, r.Retries, r.MaxLifetime, r.Concurrency, r.User)
	}
	// Settings of one function do not leak into another.
	if R.Timeout != 0 || R.Retries != 0 || R.MaxLifetime != 0 || R.Concurrency != 1 || R.User != "" {
		t.Errorf("Resize: timeout %v retries %d max_lifetime %v concurrency %d user %q; want the defaults 0s 0 0s 1 \"\"",
			R.Timeout, R.Retries, R.MaxLifetime, R.Concurrency, R.User)
	}
	other := w.Function("discovered")
	if other.Count != 1 || other.Concurrency != 1 || other.MaxJobs != 100 {
		t.Errorf("discovered = %+v", other)
	}
	if !reflect.DeepEqual(w.Resize, WorkerResize{}) {
		t.Errorf("no resize section: Resize = %+v, want zero (the job's defaults)", w.Resize)
	}
}

func TestParseWorkerResize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		env        map[string]string
		want       WorkerResize
	}{
		{"absent", "servers: [a:1]\n", nil, WorkerResize{}},
		{"empty section", "resize:\n", nil, WorkerResize{}},
		{"both keys", "resize:\n  max_pixels: 1000\n  jpeg_quality: 40\n", nil, WorkerResize{MaxPixels: 1000, JPEGQuality: 40}},
		{"one key", "resize: {jpeg_quality: 100}\n", nil, WorkerResize{JPEGQuality: 100}},
		{"roots", "resize:\n  roots: [/srv/images, /srv/thumbs/]\n", nil, WorkerResize{Roots: []string{"/srv/images", "/srv/thumbs"}}},
		{"roots from the environment", "resize:\n  roots: [/srv/images]\n",
			map[string]string{"GWORKERD_RESIZE_ROOTS": "/a,/b"}, WorkerResize{Roots: []string{"/a", "/b"}}},
		{"large limit", "resize: {max_pixels: 5000000000}\n", nil, WorkerResize{MaxPixels: 5_000_000_000}},
		{"environment over file", "resize:\n  max_pixels: 1000\n  jpeg_quality: 40\n",
			map[string]string{"GWORKERD_RESIZE_MAX_PIXELS": "2000"}, WorkerResize{MaxPixels: 2000, JPEGQuality: 40}},
		{"environment only", "servers: [a:1]\n",
			map[string]string{"GWORKERD_RESIZE_MAX_PIXELS": "7", "GWORKERD_RESIZE_JPEG_QUALITY": "1"}, WorkerResize{MaxPixels: 7, JPEGQuality: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := parseWorker("w.yaml", []byte(tt.file), func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(w.Resize, tt.want) {
				t.Errorf("Resize = %+v, want %+v", w.Resize, tt.want)
			}
		})
	}
}

func TestParseWorkerResizeEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, file, env, val, key string }{
		{"not an integer", "servers: [a:1]\n", "GWORKERD_RESIZE_MAX_PIXELS", "lots", "resize.max_pixels"},
		{"zero limit over a valid file", "resize: {max_pixels: 10}\n", "GWORKERD_RESIZE_MAX_PIXELS", "0", "resize.max_pixels"},
		{"quality too high", "servers: [a:1]\n", "GWORKERD_RESIZE_JPEG_QUALITY", "101", "resize.jpeg_quality"},
		{"relative root", "servers: [a:1]\n", "GWORKERD_RESIZE_ROOTS", "/a,images", "resize.roots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseWorker("w.yaml", []byte(tt.file), func(k string) (string, bool) { return tt.val, k == tt.env })
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if want := (Source{Kind: SourceEnv, Name: tt.env}); ce.Source != want || ce.Key != tt.key {
				t.Errorf("error %q: key %q source %+v, want key %q source %+v", err, ce.Key, ce.Source, tt.key, want)
			}
		})
	}
}

func TestValidateResize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		resize WorkerResize
		key    string // "" for valid
	}{
		{"zero is the job's default", WorkerResize{}, ""},
		{"valid", WorkerResize{MaxPixels: 1, JPEGQuality: 100}, ""},
		{"negative limit", WorkerResize{MaxPixels: -1}, "resize.max_pixels"},
		{"quality too high", WorkerResize{JPEGQuality: 101}, "resize.jpeg_quality"},
		{"negative quality", WorkerResize{JPEGQuality: -5}, "resize.jpeg_quality"},
		{"relative root", WorkerResize{Roots: []string{"images"}}, "resize.roots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := &Worker{Path: "w.yaml", Servers: []string{"a:1"}, Resize: tt.resize}
			err := w.Validate()
			var ce *Error
			switch {
			case tt.key == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.key != "" && !errors.As(err, &ce):
				t.Errorf("Validate() = %v, want an *Error", err)
			case tt.key != "" && ce.Key != tt.key:
				t.Errorf("Validate() = %q: key %q, want %q", err, ce.Key, tt.key)
			}
		})
	}
}

// Every server address is checked as the worker will read it.
func TestValidateServers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		servers []string
		ok      bool
	}{
		{"host, host:port, v6 forms", []string{"a", "a:1", "[::1]", "[::1]:2", "::1"}, true},
		{"none", nil, false},
		{"empty", []string{"a:1", ""}, false},
		{"blank", []string{"  "}, false},
		{"bad port", []string{"a:http"}, false},
		{"port out of range", []string{"a:65536"}, false},
		{"doubled brackets", []string{"[[::1]]"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := (&Worker{Path: "w.yaml", Servers: tt.servers}).Validate()
			var ce *Error
			switch {
			case tt.ok && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case !tt.ok && (!errors.As(err, &ce) || ce.Key != "servers"):
				t.Errorf("Validate() = %v, want a *config.Error for servers", err)
			}
		})
	}
}

func TestParseWorkerEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GWORKERD_SERVERS": "a:1,b:2", "GWORKERD_STOP_TIMEOUT": "5s", "GWORKERD_PID_FILE": "/x.pid"}
	w, err := parseWorker("w.yaml", []byte("servers: [c:3]\nstop_timeout: 1s\n"), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.Servers, []string{"a:1", "b:2"}) || w.StopTimeout != 5*time.Second || w.PidFile != "/x.pid" {
		t.Errorf("got %+v", w)
	}
	env["GWORKERD_STOP_TIMEOUT"] = "soon"
	_, err = parseWorker("w.yaml", []byte("stop_timeout: 1s\n"), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "GWORKERD_STOP_TIMEOUT") {
		t.Errorf("bad env value: err = %v, want it to name GWORKERD_STOP_TIMEOUT", err)
	}
}

func TestParseWorkerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, key string
		line            int
	}{
		{"unknown top key", "servers: [a:1]\nbogus: 1\n", "bogus", 2},
		{"unknown function key", "functions:\n  F:\n    count: 1\n    cuont: 2\n", "functions.F.cuont", 4},
		{"not an integer", "functions:\n  F:\n    max_jobs: many\n", "functions.F.max_jobs", 3},
		{"bad duration", "functions:\n  F:\n    max_idle: later\n", "functions.F.max_idle", 3},
		{"bad size", "functions:\n  F:\n    memory_limit: 3 parsecs\n", "functions.F.memory_limit", 3},
		{"max below min", "functions:\n  F:\n    min: 3\n    max: 2\n", "functions.F.max", 2},
		{"duplicate function", "functions:\n  F: {}\n  F: {}\n", "functions.F", 3},
		{"bad top duration", "stop_timeout: never\n", "stop_timeout", 1},
		{"functions not a map", "functions: [a]\n", "functions", 1},
		{"zero concurrency", "functions:\n  F:\n    concurrency: 0\n", "functions.F.concurrency", 2},
		{"hard limit below the limit", "functions:\n  F:\n    memory_limit: 1GB\n    memory_hard_limit: 512MB\n", "functions.F.memory_hard_limit", 2},
		{"hard limit of a command", "functions:\n  F:\n    command: [w]\n    memory_hard_limit: 1GB\n", "functions.F.memory_hard_limit", 2},
		{"bad hard limit", "functions:\n  F:\n    memory_hard_limit: lots\n", "functions.F.memory_hard_limit", 3},
		{"resize not a map", "resize: 5\n", "resize", 1},
		{"unknown resize key", "resize:\n  max_pixels: 10\n  max_pixel: 10\n", "resize.max_pixel", 3},
		{"duplicate resize key", "resize:\n  jpeg_quality: 10\n  jpeg_quality: 20\n", "resize.jpeg_quality", 3},
		{"resize limit not an integer", "servers: [a:1]\nresize:\n  max_pixels: 40M\n", "resize.max_pixels", 3},
		{"resize limit zero", "resize:\n  jpeg_quality: 80\n  max_pixels: 0\n", "resize.max_pixels", 3},
		{"resize limit negative", "resize:\n  max_pixels: -1\n", "resize.max_pixels", 2},
		{"resize limit empty", "resize:\n  max_pixels:\n", "resize.max_pixels", 2},
		{"jpeg quality zero", "resize:\n  jpeg_quality: 0\n", "resize.jpeg_quality", 2},
		{"jpeg quality above 100", "resize:\n  max_pixels: 10\n  jpeg_quality: 101\n", "resize.jpeg_quality", 3},
		{"jpeg quality not an integer", "resize:\n  jpeg_quality: high\n", "resize.jpeg_quality", 2},
		{"relative root", "resize:\n  roots:\n    - /srv/images\n    - ./thumbs\n", "resize.roots", 2},
		{"roots not a list", "resize:\n  roots: {a: 1}\n", "resize.roots", 2},
		{"duplicate roots", "resize:\n  roots: [/a]\n  roots: [/b]\n", "resize.roots", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseWorker("w.yaml", []byte(tt.file), noEnv)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if ce.Key != tt.key || ce.Source.Line != tt.line || ce.Source.Name != "w.yaml" {
				t.Errorf("error %q: key %q source %v, want key %q line %d of w.yaml", err, ce.Key, ce.Source, tt.key, tt.line)
			}
		})
	}
}

func TestLoadWorkerFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(p, []byte("functions:\n  F:\n    count: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := LoadWorker(Inputs{LookupEnv: configEnv(p)})
	if err != nil {
		t.Fatal(err)
	}
	if w.Function("F").Count != 2 || w.Path != p {
		t.Errorf("count = %d, path %q", w.Function("F").Count, w.Path)
	}
	if _, err := LoadWorker(Inputs{LookupEnv: configEnv(p + ".missing")}); err == nil || err.Error() != p+".missing: cannot read the config file: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "10": 10, "1K": 1024, "2MB": 2 << 20, "1GiB": 1 << 30, "3 mb": 3 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "1TB", "-1", "99999999999999999999"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func FuzzParseWorker(f *testing.F) {
	f.Add([]byte("servers: [a:1]\nfunctions:\n  F:\n    count: 2\n    memory_limit: 1MB\n"))
	f.Add([]byte("defaults: {max_idle: 5s}\nfunctions: {G: null}\n"))
	f.Add([]byte("resize: {max_pixels: 1000, jpeg_quality: 90}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := parseWorker("f.yaml", data, noEnv)
		if err == nil && w.Validate() != nil {
			t.Fatalf("parse accepted what Validate rejects")
		}
	})
}

func TestWorkerHTTPSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file  string
		env         map[string]string
		listen, tok string
		isDefault   bool
	}{
		{"default", "servers: [a:1]\n", nil, DefaultWorkerHTTPListen, "", true},
		{"off", "http_listen: \"\"\n", nil, "", "", false},
		{"file", "http_listen: 127.0.0.1:9\nhttp_token: t1\n", nil, "127.0.0.1:9", "t1", false},
		{"env", "servers: [a:1]\n", map[string]string{"GWORKERD_HTTP_LISTEN": "127.0.0.1:8", "GWORKERD_HTTP_TOKEN": "t2"}, "127.0.0.1:8", "t2", false},
	} {
		w, err := parseWorker("w.yaml", []byte(tc.file), func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if w.HTTPListen != tc.listen || w.HTTPToken != tc.tok || w.HTTPListenIsDefault() != tc.isDefault {
			t.Errorf("%s: listen %q token %q default %v, want %q %q %v", tc.name, w.HTTPListen, w.HTTPToken, w.HTTPListenIsDefault(), tc.listen, tc.tok, tc.isDefault)
		}
	}
}

func TestWorkerHTTPTokenFileAndHosts(t *testing.T) {
	t.Parallel()
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := parseWorker("w.yaml", []byte("http_token_file: "+tok+"\nhttp_allowed_hosts: [a.example, b.example]\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if w.HTTPToken != "s3cret" || strings.Join(w.HTTPAllowedHosts, " ") != "a.example b.example" {
		t.Errorf("token %q hosts %q, want s3cret (newline trimmed) and [a.example b.example]", w.HTTPToken, w.HTTPAllowedHosts)
	}
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"unreadable", "servers: [a:1]\nhttp_token_file: /nonexistent/tok\n", nil, "w.yaml:2: http_token_file: cannot read the token file: open /nonexistent/tok: no such file or directory"},
		{"both", "http_token: t\nhttp_token_file: " + tok + "\n", nil, "w.yaml:2: http_token_file: give the token once: http_token_file or http_token, not both"},
		{"env", "servers: [a:1]\n", map[string]string{"GWORKERD_HTTP_TOKEN_FILE": "/nonexistent/tok"}, "GWORKERD_HTTP_TOKEN_FILE (environment): http_token_file: cannot read the token file: open /nonexistent/tok: no such file or directory"},
		{"host with a port", "http_allowed_hosts: [a.example:80]\n", nil, `w.yaml:1: http_allowed_hosts: want a host name without port, got "a.example:80"`},
	} {
		_, err := parseWorker("w.yaml", []byte(tc.file), func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestParseWorkerHostingKeys(t *testing.T) {
	t.Parallel()
	const file = `servers: [127.0.0.1:4730]
worker_dirs: [/srv/gm/workers, /srv/gm/more]
function_prefix: app_
include: [a, b]
exclude: c
php: /usr/bin/php8.2
defaults:
  lifetime_splay: 5m
  on_timeout: fail
functions:
  legacy:
    command: php /srv/app/worker.php --servers {servers} "two words" 'it''s'
    count: 4
    dir: /srv/app
    stop_timeout: 45s
    ready_after: 3s
    max_lifetime: 1h
  argv:
    command: [perl, /srv/w.pl]
  shout:
    resident: true
    start_timeout: 10s
    on_timeout: requeue
`
	w, err := parseWorker("w.yaml", []byte(file), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.WorkerDirs, []string{"/srv/gm/workers", "/srv/gm/more"}) || w.FunctionPrefix != "app_" ||
		!reflect.DeepEqual(w.Include, []string{"a", "b"}) || !reflect.DeepEqual(w.Exclude, []string{"c"}) ||
		w.PHP != "/usr/bin/php8.2" || w.Python != "python3" {
		t.Errorf("top level = %+v", w)
	}
	l := w.Function("legacy")
	wantArgv := []string{"php", "/srv/app/worker.php", "--servers", "{servers}", "two words", "its"}
	if !reflect.DeepEqual(l.Command, wantArgv) || l.Count != 4 || l.Dir != "/srv/app" || l.StopTimeout != 45*time.Second ||
		l.ReadyAfter != 3*time.Second || l.LifetimeSplay != 5*time.Minute || l.OnTimeout != OnTimeoutFail {
		t.Errorf("legacy = %+v", l)
	}
	if a := w.Function("argv"); !reflect.DeepEqual(a.Command, []string{"perl", "/srv/w.pl"}) {
		t.Errorf("argv command = %q", a.Command)
	}
	s := w.Function("shout")
	if !s.Resident || s.StartTimeout != 10*time.Second || s.OnTimeout != OnTimeoutRequeue {
		t.Errorf("shout = %+v", s)
	}
	if o := w.Function("other"); o.OnTimeout != OnTimeoutFail || o.Resident || o.Command != nil {
		t.Errorf("other = %+v", o)
	}
}

func TestParseWorkerHostingErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file, key, msg string }{
		{"on_timeout", "functions:\n  f:\n    on_timeout: drop\n", "functions.f.on_timeout", "want requeue or fail"},
		{"command max_jobs", "functions:\n  f:\n    command: [php, w.php]\n    max_jobs: 3\n", "functions.f.max_jobs", "max_jobs cannot apply"},
		{"command resident", "functions:\n  f:\n    command: [php, w.php]\n    resident: true\n", "functions.f.resident", "one of command and resident"},
		{"command concurrency", "functions:\n  f:\n    command: [php]\n    concurrency: 2\n", "functions.f.concurrency", "use count"},
		{"empty command", "functions:\n  f:\n    command: []\n", "functions.f.command", "empty command"},
		{"unterminated", "functions:\n  f:\n    command: php 'x\n", "functions.f.command", "unterminated"},
		{"command in defaults", "defaults:\n  command: [php]\n", "defaults.command", "belongs to one function"},
		{"resident not bool", "functions:\n  f:\n    resident: maybe\n", "functions.f.resident", "want true or false"},
		{"ready_after", "functions:\n  f:\n    ready_after: soon\n", "functions.f.ready_after", "want a duration"},
		{"prefetch with timeout", "functions:\n  f:\n    timeout: 5s\n    prefetch: 2\n", "functions.f.prefetch", "one of prefetch and timeout"},
		{"prefetch of a command", "functions:\n  f:\n    command: [php]\n    prefetch: 2\n", "functions.f.prefetch", "resident handlers"},
		{"negative prefetch", "functions:\n  f:\n    prefetch: -1\n", "functions.f.prefetch", "must not be negative"},
		{"prefetch too deep", "functions:\n  f:\n    prefetch: 17\n", "functions.f.prefetch", "beyond 16"},
		{"prefetch not an integer", "functions:\n  f:\n    prefetch: some\n", "functions.f.prefetch", "integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseWorker("w.yaml", []byte(tc.file), noEnv)
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Msg, tc.msg) || ce.Source.Name != "w.yaml" {
				t.Fatalf("err = %v, want key %s and %q", err, tc.key, tc.msg)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "php  /srv/w.php", want: []string{"php", "/srv/w.php"}},
		{in: `a "b c" 'd e' f\ g`, want: []string{"a", "b c", "d e", "f g"}},
		{in: `"a\"b" 'a\b'`, want: []string{`a"b`, `a\b`}},
		{in: `x""`, want: []string{"x"}},
		{in: `''`, want: []string{""}},
		{in: "", want: nil},
		{in: `"open`, bad: true},
		{in: `'open`, bad: true},
		{in: `end\`, bad: true},
	} {
		got, err := SplitCommand(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// The numbers of children are bounded per function and in total
// (issue 10, item 14); errors name the key, the bound and the file.
func TestParseWorkerChildLimits(t *testing.T) {
	t.Parallel()
	w, err := parseWorker("w.yaml", []byte("servers: [a:1]\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if w.MaxChildrenPerFunction != DefaultWorkerMaxChildrenPerFunction || w.MaxChildren != DefaultWorkerMaxChildren {
		t.Errorf("defaults: max_children_per_function %d max_children %d, want %d %d",
			w.MaxChildrenPerFunction, w.MaxChildren, DefaultWorkerMaxChildrenPerFunction, DefaultWorkerMaxChildren)
	}
	w, err = parseWorker("w.yaml", []byte("max_children_per_function: 8\nmax_children: 20\nfunctions:\n  a: {count: 8}\n  b: {min: 2, max: 8}\n"), noEnv)
	if err != nil || w.MaxChildrenPerFunction != 8 || w.MaxChildren != 20 {
		t.Fatalf("set: %v %+v", err, w)
	}
	// A per-function bound above the default total raises the total.
	if w, err = parseWorker("w.yaml", []byte("max_children_per_function: 300\n"), noEnv); err != nil || w.MaxChildren != 300 {
		t.Errorf("max_children_per_function 300: %v, max_children %d, want 300", err, w.MaxChildren)
	}
	for _, tc := range []struct {
		name, file, key, msg string
		line                 int
	}{
		{"count", "functions:\n  echo:\n    count: 65\n", "functions.echo.count", "beyond max_children_per_function 64", 2},
		{"max", "functions:\n  echo:\n    min: 1\n    max: 1000\n", "functions.echo.max", "beyond max_children_per_function 64", 2},
		{"defaults", "defaults:\n  count: 100\n", "defaults.count", "beyond max_children_per_function 64", 0},
		{"own bound", "max_children_per_function: 4\nfunctions:\n  echo: {count: 5}\n", "functions.echo.count", "beyond max_children_per_function 4", 3},
		{"total", "max_children: 100\nfunctions:\n  a: {count: 60}\n  b: {min: 1, max: 41}\n", "max_children", "add up to 101, beyond max_children 100", 1},
		{"total below per function", "max_children: 10\n", "max_children", "10 is below max_children_per_function 64", 1},
		{"zero", "max_children_per_function: 0\n", "max_children_per_function", "at least 1", 1},
		{"not a number", "max_children: lots\n", "max_children", "at least 1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseWorker("w.yaml", []byte(tc.file), noEnv)
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tc.key || ce.Source.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) || ce.Source.Name != "w.yaml" {
				t.Fatalf("err = %v, want w.yaml, key %s, line %d and %q", err, tc.key, tc.line, tc.msg)
			}
		})
	}
	_, err = parseWorker("w.yaml", nil, func(k string) (string, bool) { return "0", k == "GWORKERD_MAX_CHILDREN" })
	if err == nil || !strings.Contains(err.Error(), "GWORKERD_MAX_CHILDREN (environment)") {
		t.Errorf("GWORKERD_MAX_CHILDREN=0: %v", err)
	}
}

// memory_cgroup: auto by default; off; an absolute cgroup directory;
// nothing else (a relative path would resolve against the config file's
// directory, which is no cgroup).
func TestParseWorkerMemoryCgroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, env, want string
		line            int // of the error; 0: no error
	}{
		{"servers: [a:1]\n", "", MemoryCgroupAuto, 0},
		{"memory_cgroup: auto\n", "", MemoryCgroupAuto, 0},
		{"memory_cgroup: off\n", "", MemoryCgroupOff, 0},
		{"memory_cgroup: /sys/fs/cgroup/memory/gw\n", "", "/sys/fs/cgroup/memory/gw", 0},
		{"memory_cgroup: off\n", "/sys/fs/cgroup/x", "/sys/fs/cgroup/x", 0},
		{"servers: [a:1]\nmemory_cgroup: gw\n", "", "", 2},
		{"memory_cgroup: yes\n", "", "", 1},
	} {
		env := func(k string) (string, bool) { return tc.env, tc.env != "" && k == "GWORKERD_MEMORY_CGROUP" }
		w, err := parseWorker("w.yaml", []byte(tc.file), env)
		if tc.line == 0 {
			if err != nil || w.MemoryCgroup != tc.want {
				t.Errorf("%q (env %q): %v, memory_cgroup %q; want %q", tc.file, tc.env, err, w.MemoryCgroup, tc.want)
			}
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "memory_cgroup" || ce.Source.Line != tc.line || !strings.Contains(ce.Msg, "absolute path of a cgroup directory") {
			t.Errorf("%q: %v, want an error of memory_cgroup at line %d", tc.file, err, tc.line)
		}
	}
}

// TestWorkerRelativePaths: relative paths in the file resolve against
// the config file's directory, those of the environment against the
// working directory; absolute ones and bare program names stay; a
// command without a dir runs in the config file's directory.
func TestWorkerRelativePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := "job_dirs: [jobs, /abs/jobs]\nworker_dirs: [wd]\npid_file: run/g.pid\nlog_file: g.log\nhttp_token_file: tok\nphp: ./bin/php\npython: python3\n" +
		"functions:\n  cmd:\n    command: [bin/worker, x]\n  dirfn:\n    command: [w]\n    dir: work\n"
	w, err := parseWorker(filepath.Join(dir, "g.yaml"), []byte(file), func(k string) (string, bool) {
		if k == "GWORKERD_CONTROL_SOCKET" {
			return "run/g.sock", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	j := func(p string) string { return filepath.Join(dir, p) }
	got := []string{w.JobDirs[0], w.JobDirs[1], w.WorkerDirs[0], w.PidFile, w.LogFile, w.ControlSocket, w.HTTPTokenFile, w.PHP, w.Python,
		w.Function("cmd").Dir, w.Function("dirfn").Dir}
	want := []string{j("jobs"), "/abs/jobs", j("wd"), j("run/g.pid"), j("g.log"), "/wd/run/g.sock", j("tok"), j("bin/php"), "python3",
		dir, j("work")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths\n got %q\nwant %q", got, want)
	}
	if w.HTTPToken != "secret" {
		t.Errorf("token %q read from the relative http_token_file", w.HTTPToken)
	}
}

// TestLoadWorkerControl: a config LoadWorker rejects still gives the pid
// file and the control socket stop, status and ctl need, with the error.
func TestLoadWorkerControl(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		want       WorkerControl
		broken     bool
	}{
		{"typo", "pid_file: run/g.pid\ncontrol_socket: /s/g.sock\nstop_timout: 5s\nstop_timeout: 7s\n",
			WorkerControl{PidFile: filepath.Join(dir, "run/g.pid"), ControlSocket: "/s/g.sock", StopTimeout: 7 * time.Second}, true},
		{"not yaml", "pid_file: [\n",
			WorkerControl{PidFile: DefaultWorkerPidFile, ControlSocket: DefaultWorkerControlSocket, StopTimeout: DefaultWorkerStopTimeout}, true},
		{"good", "pid_file: g.pid\n",
			WorkerControl{PidFile: filepath.Join(dir, "g.pid"), ControlSocket: DefaultWorkerControlSocket, StopTimeout: DefaultWorkerStopTimeout}, false},
	} {
		path := filepath.Join(dir, tc.name+".yaml")
		if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := LoadWorkerControl(Inputs{LookupEnv: configEnv(path)})
		if got != tc.want || (err != nil) != tc.broken {
			t.Errorf("%s: %+v, %v; want %+v, broken %v", tc.name, got, err, tc.want, tc.broken)
		}
	}
}
