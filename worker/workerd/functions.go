package workerd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

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
	Function string   `json:"function"`
	Servers  []string `json:"servers"`
	Exec     string   `json:"exec,omitempty"` // job_<name> executable; empty for a built-in
	// Resident: Exec speaks the resident protocol instead of running once
	// per job.
	Resident bool `json:"resident,omitempty"`
	// Runtime ("php", "python") loads File with the shipped runtime run
	// by Interpreter, calling Callable.
	Runtime      string        `json:"runtime,omitempty"`
	Interpreter  string        `json:"interpreter,omitempty"`
	File         string        `json:"file,omitempty"`
	Callable     string        `json:"callable,omitempty"`
	Dir          string        `json:"dir,omitempty"`
	StartTimeout time.Duration `json:"start_timeout,omitempty"`
	TimeoutFails bool          `json:"timeout_fails,omitempty"`
	Timeout      time.Duration `json:"timeout,omitempty"`
	Retries      int           `json:"retries,omitempty"`
	Concurrency  int           `json:"concurrency"`
	Prefetch     int           `json:"prefetch,omitempty"`
	MaxJobs      int           `json:"max_jobs,omitempty"`
	Env          []string      `json:"env,omitempty"`
	// MemoryHardLimit fails the jobs running when the child's process
	// tree grows over it (bytes; 0: none).
	MemoryHardLimit int64 `json:"memory_hard_limit,omitempty"`
	// Resize is the resize section, given to the built-in resize only
	// (a change to it replaces no other child on reload).
	Resize *childResize `json:"resize,omitempty"`
}

// childResize carries config.WorkerResize; zero fields take the job's
// defaults.
type childResize struct {
	MaxPixels   int64    `json:"max_pixels,omitempty"`
	JPEGQuality int      `json:"jpeg_quality,omitempty"`
	Roots       []string `json:"roots,omitempty"`
}

// resizeFunction is the built-in function the resize section configures.
const resizeFunction = "resize"

// resolved is the set of functions a config serves.
type resolved struct {
	specs []supervise.FunctionSpec
	names []string
	// skipped are the handler files found but not served, with the
	// reason: check, start and reload report each.
	skipped []jobs.Skipped
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

// resolve turns the config into supervised functions: every handler
// file of the job directories (executables job_<name>, and .php and .py
// files for the runtimes) and of the GearmanManager worker directories,
// filtered by include and exclude; plus the functions section's built-in
// functions and commands; minus the disabled ones. A function the section
// names that is none of these is an error naming its line.
func resolve(cfg *config.Worker) (resolved, error) {
	found, skipped, err := jobs.Discover(cfg.JobDirs...)
	if err != nil {
		return resolved{}, err
	}
	gm, gmSkipped, err := jobs.DiscoverWorkerDirs(cfg.FunctionPrefix, cfg.WorkerDirs...)
	if err != nil {
		return resolved{}, err
	}
	skipped = append(skipped, gmSkipped...)
	builtin, err := builtinNames()
	if err != nil {
		return resolved{}, err
	}
	include := map[string]bool{}
	for _, n := range cfg.Include {
		include[n] = true
	}
	exclude := map[string]bool{}
	for _, n := range cfg.Exclude {
		exclude[n] = true
	}
	files := map[string]jobs.Found{}
	for _, f := range append(found, gm...) {
		if builtin[f.Function] {
			return resolved{}, fmt.Errorf("%s: it shadows the built-in function %q", f.Path, f.Function)
		}
		if prev, dup := files[f.Function]; dup {
			return resolved{}, fmt.Errorf("%s and %s both serve function %q", prev.Path, f.Path, f.Function)
		}
		if (len(include) > 0 && !include[f.Function]) || exclude[f.Function] {
			continue
		}
		if abs, err := filepath.Abs(f.Path); err == nil {
			f.Path = abs
		}
		files[f.Function] = f
	}
	names := map[string]bool{}
	for n := range files {
		names[n] = true
	}
	for _, f := range cfg.Functions {
		_, isFile := files[f.Name]
		switch {
		case len(f.Command) > 0 && isFile:
			return resolved{}, cfg.FunctionError(f.Name, f.Line, "command",
				"function "+f.Name+" also has a handler file, "+files[f.Name].Path)
		case len(f.Command) == 0 && !isFile && !builtin[f.Name]:
			if f.Disabled {
				continue
			}
			return resolved{}, cfg.FunctionError(f.Name, f.Line, "",
				"no built-in handler, no command and no handler file job_"+f.Name+" in job_dirs or "+f.Name+".php in worker_dirs")
		}
		names[f.Name] = true
	}
	// The total of children counts the functions found in the
	// directories too, which config.Validate does not know.
	served := make([]config.WorkerFunction, 0, len(names))
	for n := range names {
		served = append(served, cfg.Function(n))
	}
	if err := cfg.CheckChildren(served); err != nil {
		return resolved{}, err
	}
	exe, _ := os.Executable()
	exeStamp := fileStamp(exe)
	out := resolved{skipped: skipped}
	for n := range names {
		f := cfg.Function(n)
		if f.Disabled {
			continue
		}
		grace := cfg.StopTimeout
		if f.Timeout > grace {
			grace = f.Timeout
		}
		if f.StopTimeout > 0 {
			grace = f.StopTimeout
		}
		spec := supervise.FunctionSpec{
			Name: n, Count: f.Count, Min: f.Min, Max: f.Max, ScaleThreshold: f.ScaleThreshold,
			MaxJobs: f.MaxJobs, MaxLifetime: f.MaxLifetime, LifetimeSplay: f.LifetimeSplay, MaxIdle: f.MaxIdle,
			MemoryLimit: f.MemoryLimit, FatalAfter: f.FatalAfter, Grace: grace, User: f.User,
		}
		var env []string
		for k, v := range f.Env {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
		if len(f.Command) > 0 {
			commandSpec(&spec, cfg, f, env)
			out.specs = append(out.specs, spec)
			out.names = append(out.names, n)
			continue
		}
		file := files[n]
		cc := childConfig{
			Function: n, Servers: cfg.Servers, Timeout: f.Timeout, Retries: f.Retries,
			Concurrency: f.Concurrency, Prefetch: f.Prefetch, MaxJobs: f.MaxJobs, Env: env, Dir: f.Dir,
			StartTimeout: f.StartTimeout, TimeoutFails: f.OnTimeout == config.OnTimeoutFail,
			MemoryHardLimit: f.MemoryHardLimit,
		}
		switch file.Kind {
		case jobs.KindExec:
			cc.Exec, cc.Resident = file.Path, f.Resident
		case jobs.KindPHP:
			cc.Runtime, cc.Interpreter, cc.File, cc.Callable = string(jobs.RuntimePHP), cfg.PHP, file.Path, file.Callable
		case jobs.KindPython:
			cc.Runtime, cc.Interpreter, cc.File, cc.Callable = string(jobs.RuntimePython), cfg.Python, file.Path, file.Callable
		}
		if f.Resident && file.Path == "" {
			return resolved{}, cfg.FunctionError(n, f.Line, "resident",
				"resident applies to a handler file; "+n+" is built in")
		}
		if f.Prefetch > 0 && cc.Runtime == "" && !cc.Resident {
			return resolved{}, cfg.FunctionError(n, f.Line, "prefetch",
				"prefetch applies to resident handlers; "+n+" runs a program per job or is built in")
		}
		if n == resizeFunction && file.Path == "" {
			cc.Resize = &childResize{MaxPixels: cfg.Resize.MaxPixels, JPEGQuality: cfg.Resize.JPEGQuality, Roots: cfg.Resize.Roots}
		}
		b, err := json.Marshal(cc)
		if err != nil {
			return resolved{}, err
		}
		sum := sha256.Sum256([]byte(string(b) + "\x00" + fileStamp(file.Path) + "\x00" + exeStamp))
		spec.Args = []string{"child", "--function", n}
		spec.Env = append([]string{envChildConfig + "=" + string(b)}, env...)
		spec.Version = hex.EncodeToString(sum[:8])
		out.specs = append(out.specs, spec)
		out.names = append(out.names, n)
	}
	sort.Slice(out.specs, func(i, j int) bool { return out.specs[i].Name < out.specs[j].Name })
	sort.Strings(out.names)
	return out, nil
}

// warnSkipped logs each skipped handler file at warning level: a job
// for it would wait forever.
func warnSkipped(log logrus.FieldLogger, skipped []jobs.Skipped) {
	for _, s := range skipped {
		log.WithFields(logrus.Fields{"path": s.Path, "reason": s.Reason}).Warn("job file skipped")
	}
}

// skippedWarnings are the skipped handler files as lines for a terminal.
func skippedWarnings(skipped []jobs.Skipped) []string {
	out := make([]string, len(skipped))
	for i, s := range skipped {
		out[i] = "warning: " + s.String()
	}
	return out
}

// serversPlaceholder in a command's argument is replaced by the servers,
// comma-separated.
const serversPlaceholder = "{servers}"

// commandSpec fills spec for an existing worker program: gworkerd starts
// f.Command itself (no gworkerd child in between), with the servers in
// GEARMAN_SERVERS and in {servers}. Its version covers the files named
// in its arguments, so that a reload after a deploy replaces it.
func commandSpec(spec *supervise.FunctionSpec, cfg *config.Worker, f config.WorkerFunction, env []string) {
	servers := strings.Join(cfg.Servers, ",")
	argv := make([]string, len(f.Command))
	stamps := ""
	for i, a := range f.Command {
		argv[i] = strings.ReplaceAll(a, serversPlaceholder, servers)
		p := argv[i]
		if f.Dir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(f.Dir, p)
		}
		stamps += "\x00" + fileStamp(p)
	}
	spec.Command = true
	spec.Path, spec.Args = argv[0], argv[1:]
	spec.Dir = f.Dir
	spec.ReadyAfter = f.ReadyAfter
	spec.Env = append([]string{"GEARMAN_SERVERS=" + servers}, env...)
	sum := sha256.Sum256([]byte(strings.Join(argv, "\x00") + "\x01" + strings.Join(spec.Env, "\x00") + "\x01" + f.Dir + stamps))
	spec.Version = hex.EncodeToString(sum[:8])
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
