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
	if R.Count != 3 || R.MemoryLimit != 256<<20 || R.MaxJobs != 100 || R.Line != 10 || !reflect.DeepEqual(R.Env, map[string]string{"A": "1", "B": "2"}) {
		t.Errorf("Resize = %+v", R)
	}
	r := w.Function("resize")
	if r.Min != 1 || r.Max != 4 || !r.Autoscaled() || r.MaxIdle != 30*time.Second || r.Count != 1 {
		t.Errorf("resize = %+v", r)
	}
	other := w.Function("discovered")
	if other.Count != 1 || other.Concurrency != 1 || other.MaxJobs != 100 {
		t.Errorf("discovered = %+v", other)
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseWorker("w.yaml", []byte(tt.file), noEnv)
			var ce *WorkerConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *WorkerConfigError", err)
			}
			if !errors.Is(err, ErrWorkerConfig) {
				t.Errorf("errors.Is(err, ErrWorkerConfig) = false")
			}
			if ce.Key != tt.key || ce.Line != tt.line {
				t.Errorf("error %q: key %q line %d, want key %q line %d", err, ce.Key, ce.Line, tt.key, tt.line)
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
	w, err := LoadWorker(p)
	if err != nil {
		t.Fatal(err)
	}
	if w.Function("F").Count != 2 {
		t.Errorf("count = %d", w.Function("F").Count)
	}
	if _, err := LoadWorker(p + ".missing"); err == nil {
		t.Error("missing file: no error")
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "10": 10, "1K": 1024, "2MB": 2 << 20, "1GiB": 1 << 30, "3 mb": 3 << 20} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "1TB", "-1", "99999999999999999999"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q): no error", in)
		}
	}
}

func FuzzParseWorker(f *testing.F) {
	f.Add([]byte("servers: [a:1]\nfunctions:\n  F:\n    count: 2\n    memory_limit: 1MB\n"))
	f.Add([]byte("defaults: {max_idle: 5s}\nfunctions: {G: null}\n"))
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
