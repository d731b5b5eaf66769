package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// envChildConfig carries a child's settings (JSON) from the master.
const envChildConfig = "GWORKERD_CHILD"

// childConfig is everything a child needs; the master passes it in the
// environment so that a child never reads a config file that was edited
// but not reloaded.
type childConfig struct {
	Function    string        `json:"function"`
	Servers     []string      `json:"servers"`
	Exec        string        `json:"exec,omitempty"` // job_<name> executable; empty for a built-in
	Timeout     time.Duration `json:"timeout,omitempty"`
	Retries     int           `json:"retries,omitempty"`
	Concurrency int           `json:"concurrency"`
	MaxJobs     int           `json:"max_jobs,omitempty"`
	Env         []string      `json:"env,omitempty"`
	// Resize is the resize section, given to the built-in resize only
	// (a change to it replaces no other child on reload).
	Resize *childResize `json:"resize,omitempty"`
}

// childResize carries config.WorkerResize; zero fields take the job's
// defaults.
type childResize struct {
	MaxPixels   int64 `json:"max_pixels,omitempty"`
	JPEGQuality int   `json:"jpeg_quality,omitempty"`
}

// resizeFunction is the built-in function the resize section configures.
const resizeFunction = "resize"

// resolved is the set of functions a config serves.
type resolved struct {
	specs []supervise.FunctionSpec
	names []string
}

// builtinNames lists the functions built into gworkerd.
func builtinNames() (map[string]bool, error) {
	reg, err := jobs.Default(jobs.Options{})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, n := range reg.Names() {
		out[n] = true
	}
	return out, nil
}

// resolve turns the config into supervised functions: every executable
// job_<name> of the job directories, plus the built-in functions the
// functions section names; minus the disabled ones. A function the
// section names that is neither is an error naming its line.
func resolve(cfg *config.Worker) (resolved, error) {
	found, _, err := jobs.Discover(cfg.JobDirs...)
	if err != nil {
		return resolved{}, err
	}
	builtin, err := builtinNames()
	if err != nil {
		return resolved{}, err
	}
	execs := map[string]string{}
	for _, f := range found {
		if builtin[f.Function] {
			return resolved{}, fmt.Errorf("%s: job_%s shadows the built-in function %q", f.Path, f.Function, f.Function)
		}
		execs[f.Function] = f.Path
	}
	names := map[string]bool{}
	for n := range execs {
		names[n] = true
	}
	for _, f := range cfg.Functions {
		if execs[f.Name] == "" && !builtin[f.Name] {
			if f.Disabled {
				continue
			}
			return resolved{}, &config.WorkerConfigError{Path: cfg.Path, Key: "functions." + f.Name, Line: f.Line,
				Msg: "no built-in handler and no executable job_" + f.Name + " in job_dirs"}
		}
		names[f.Name] = true
	}
	exe, _ := os.Executable()
	exeStamp := fileStamp(exe)
	var out resolved
	for n := range names {
		f := cfg.Function(n)
		if f.Disabled {
			continue
		}
		cc := childConfig{
			Function: n, Servers: cfg.Servers, Exec: execs[n], Timeout: f.Timeout, Retries: f.Retries,
			Concurrency: f.Concurrency, MaxJobs: f.MaxJobs,
		}
		if n == resizeFunction && cc.Exec == "" {
			cc.Resize = &childResize{MaxPixels: cfg.Resize.MaxPixels, JPEGQuality: cfg.Resize.JPEGQuality}
		}
		for k, v := range f.Env {
			cc.Env = append(cc.Env, k+"="+v)
		}
		sort.Strings(cc.Env)
		b, err := json.Marshal(cc)
		if err != nil {
			return resolved{}, err
		}
		grace := cfg.StopTimeout
		if f.Timeout > grace {
			grace = f.Timeout
		}
		sum := sha256.Sum256([]byte(string(b) + "\x00" + fileStamp(cc.Exec) + "\x00" + exeStamp))
		out.specs = append(out.specs, supervise.FunctionSpec{
			Name: n, Count: f.Count, Min: f.Min, Max: f.Max, ScaleThreshold: f.ScaleThreshold,
			MaxJobs: f.MaxJobs, MaxLifetime: f.MaxLifetime, MaxIdle: f.MaxIdle, MemoryLimit: f.MemoryLimit,
			FatalAfter: f.FatalAfter, Grace: grace, User: f.User,
			Args:    []string{"child", "--function", n},
			Env:     append([]string{envChildConfig + "=" + string(b)}, cc.Env...),
			Version: hex.EncodeToString(sum[:8]),
		})
		out.names = append(out.names, n)
	}
	sort.Slice(out.specs, func(i, j int) bool { return out.specs[i].Name < out.specs[j].Name })
	sort.Strings(out.names)
	return out, nil
}

// fileStamp identifies a version of a file: size and modification time.
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Size(), st.ModTime().UnixNano())
}
