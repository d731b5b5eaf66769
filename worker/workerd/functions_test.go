package workerd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// resolve gives the resize section to the built-in resize only, so that
// a change to it replaces the resize children on reload and no others.
func TestResolveResize(t *testing.T) {
	t.Parallel()
	load := func(section string) map[string]supervise.FunctionSpec {
		t.Helper()
		p := filepath.Join(t.TempDir(), "g.yaml")
		if err := os.WriteFile(p, []byte("servers: [127.0.0.1:1]\nfunctions:\n  resize: {}\n  reverse: {}\n"+section), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfigFile(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := resolve(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]supervise.FunctionSpec{}
		for _, s := range res.specs {
			out[s.Name] = s
		}
		return out
	}
	child := func(s supervise.FunctionSpec) childConfig {
		t.Helper()
		for _, kv := range s.Env {
			if v, ok := strings.CutPrefix(kv, envChildConfig+"="); ok {
				var cc childConfig
				if err := json.Unmarshal([]byte(v), &cc); err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				return cc
			}
		}
		t.Fatalf("%s: no %s in %q", s.Name, envChildConfig, s.Env)
		return childConfig{}
	}
	plain := load("")
	set := load("resize:\n  max_pixels: 1000\n  jpeg_quality: 7\n")
	if got := child(plain["resize"]).Resize; got == nil || !reflect.DeepEqual(*got, childResize{}) {
		t.Errorf("resize without a section: child resize %+v, want zero (the job's defaults)", got)
	}
	if got := child(set["resize"]).Resize; got == nil || !reflect.DeepEqual(*got, childResize{MaxPixels: 1000, JPEGQuality: 7}) {
		t.Errorf("resize: child resize %+v, want max_pixels 1000 jpeg_quality 7", got)
	}
	if got := child(set["reverse"]).Resize; got != nil {
		t.Errorf("reverse: child resize %+v, want none", got)
	}
	if plain["resize"].Version == set["resize"].Version {
		t.Errorf("resize version unchanged by the resize section; a reload would not apply it")
	}
	if plain["reverse"].Version != set["reverse"].Version {
		t.Errorf("reverse version changed by the resize section; a reload would replace it needlessly")
	}
}

// loadConfigFile loads the config file at path as gworkerd --config
// path does, without the environment of the test.
func loadConfigFile(path string) (*config.Worker, error) {
	return config.LoadWorker(config.Inputs{LookupEnv: func(k string) (string, bool) { return path, k == "GWORKERD_CONFIG" }})
}

// resolve turns a command function's keys into its FunctionSpec; its
// version changes with the command and the files it names, not with the
// count.
func TestResolveCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "worker.php")
	if err := os.WriteFile(script, []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(entry string) supervise.FunctionSpec {
		t.Helper()
		p := filepath.Join(dir, "g.yaml")
		if err := os.WriteFile(p, []byte("servers: [127.0.0.1:1, 127.0.0.1:2]\nfunctions:\n"+entry), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfigFile(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := resolve(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.specs) != 1 {
			t.Fatalf("specs %+v, want one", res.specs)
		}
		return res.specs[0]
	}
	const keys = "    count: 3\n    dir: %s\n    env: {A: b}\n    stop_timeout: 7s\n    lifetime_splay: 5s\n" +
		"    ready_after: 2s\n    max_lifetime: 1h\n    memory_limit: 1000\n    user: nobody\n"
	entry := "  w:\n    command: [php, worker.php, \"--servers={servers}\", x]\n" + fmt.Sprintf(keys, dir)
	got := load(entry)
	const servers = "127.0.0.1:1,127.0.0.1:2"
	want := supervise.FunctionSpec{
		Name: "w", Count: 3, Command: true, Path: "php", Args: []string{"worker.php", "--servers=" + servers, "x"},
		Env: []string{"GEARMAN_SERVERS=" + servers, "A=b"}, Dir: dir, Grace: 7 * time.Second, LifetimeSplay: 5 * time.Second,
		ReadyAfter: 2 * time.Second, MaxLifetime: time.Hour, MemoryLimit: 1000, User: "nobody", Version: got.Version, ScaleThreshold: 1,
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("spec\n%+v\nwant\n%+v", got, want)
	}
	if s := load(strings.Replace(entry, "[php, worker.php, \"--servers={servers}\", x]", "php worker.php --servers={servers} x", 1)); fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", got) {
		t.Errorf("command as a string: spec %+v, want %+v", s, got)
	}
	if s := load(strings.Replace(entry, "count: 3", "count: 4", 1)); s.Version != got.Version {
		t.Errorf("version changed with the count: a reload would replace the workers needlessly")
	}
	if s := load(strings.Replace(entry, " x]", " y]", 1)); s.Version == got.Version {
		t.Errorf("version unchanged by another argument: a reload would not apply it")
	}
	// A deploy: the script named (relative to dir) changed.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(script, later, later); err != nil {
		t.Fatal(err)
	}
	if s := load(entry); s.Version == got.Version {
		t.Errorf("version unchanged by a new worker.php: a reload after a deploy would not replace the workers")
	}
}
