package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/worker"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// Worker is gworkerd's configuration: one YAML file (--config, else
// GWORKERD_CONFIG, else DefaultWorkerConfigFile), each setting outside
// the defaults and functions sections overridden by its GWORKERD_*
// environment variable (GWORKERD_PID_FILE, GWORKERD_RESIZE_MAX_PIXELS)
// and, over that, by its flag (--pid-file, --resize-max-pixels).
//
// Relative paths (job_dirs, worker_dirs, pid_file, log_file,
// control_socket, http_token_file, php and python when they contain a
// slash, a function's dir) are made absolute when loaded: in the file
// against the directory of the config file, from a flag or the
// environment against the working directory, so that the daemon, which
// works from "/", finds them. A command function without a dir runs in
// the config file's directory.
type Worker struct {
	// Path is the file the configuration was read from, absolute when
	// loaded by LoadWorker.
	Path string
	// Servers are the job servers, "host:port". Default ["127.0.0.1:4730"].
	Servers []string
	// JobDirs are scanned for job handlers named job_<name>: executables,
	// and job_<name>.php / job_<name>.py files served by the resident
	// runtimes (the GearmanDaemon layout).
	JobDirs []string
	// WorkerDirs are GearmanManager worker directories: each
	// <Function>.php file (a function FunctionPrefix<Function>($job,
	// &$log) or a class FunctionPrefix<Function> with run($job, &$log))
	// serves the Gearman function <Function>.
	WorkerDirs []string
	// FunctionPrefix is GearmanManager's prefix: it begins the PHP
	// function and class names in WorkerDirs files, not the Gearman
	// names. Default "".
	FunctionPrefix string
	// Include, when not empty, serves only these of the functions found
	// in JobDirs and WorkerDirs (GearmanManager's include); Exclude never
	// serves these. Names are the Gearman names.
	Include, Exclude []string
	// PHP and Python are the interpreters of the resident runtimes.
	// Defaults DefaultWorkerPHP and DefaultWorkerPython (looked up in
	// PATH).
	PHP, Python string
	// PidFile is the locked pid file. Default "/run/gworkerd/gworkerd.pid".
	PidFile string
	// LogFile receives the logs; empty means standard error.
	LogFile string
	// ControlSocket is the unix socket of `gworkerd ctl`. Default
	// "/run/gworkerd/gworkerd.sock".
	ControlSocket string
	// StopTimeout is how long children may finish their jobs at stop
	// before their process group is killed. Default 30s.
	StopTimeout time.Duration
	// HTTPListen is the host:port of the HTTP endpoint (metrics, API).
	// Default DefaultWorkerHTTPListen; "" turns it off.
	HTTPListen string
	// HTTPToken, when set, is the bearer token the HTTP API and its
	// actions require. Default "" (no auth).
	HTTPToken string
	// HTTPTokenFile, when set, is a file whose text (without its trailing
	// newline) is HTTPToken. Exclusive with http_token. Default "".
	HTTPTokenFile string
	// HTTPAllowedHosts are the names of the Host header the HTTP endpoint
	// serves besides IP addresses, localhost and the host of HTTPListen
	// (DNS rebinding protection). Default none.
	HTTPAllowedHosts []string
	// ScaleInterval is how often the backlog of autoscaled functions is
	// polled. Default 2s.
	ScaleInterval time.Duration
	// MaxChildrenPerFunction bounds the children of one function: its
	// count, its max and a scale request (ctl scale, the HTTP API).
	// Key max_children_per_function. Default
	// DefaultWorkerMaxChildrenPerFunction (64).
	MaxChildrenPerFunction int
	// MaxChildren bounds the children of all functions together, each
	// counted at its count or, autoscaled, its max. Key max_children, at
	// least MaxChildrenPerFunction. Default DefaultWorkerMaxChildren
	// (256).
	MaxChildren int
	// MemoryCgroup is where the memory cgroups of the children go, key
	// memory_cgroup: MemoryCgroupAuto (the default) makes them under the
	// master's own cgroup, in cgroup v2 when its memory controller is
	// available and writable there, else in cgroup v1's memory
	// hierarchy, and measures process trees when neither is;
	// MemoryCgroupOff always measures process trees; an absolute path is
	// a cgroup directory (in a cgroup2 mount, or a cgroup v1 mount with
	// the memory controller) to make them under instead.
	MemoryCgroup string
	// Resize configures the built-in resize function (the resize
	// section).
	Resize WorkerResize
	// Defaults apply to every function, including discovered ones that
	// the functions section does not name.
	Defaults WorkerFunction
	// Functions are the entries of the functions section, sorted by name.
	// Names are case-sensitive.
	Functions []WorkerFunction

	origins
}

// WorkerResize is the resize section: settings of the built-in resize
// function, each overridable by GWORKERD_RESIZE_<KEY>
// (GWORKERD_RESIZE_MAX_PIXELS ...). A zero field, which only a key left
// out gives, takes the resize job's own default.
type WorkerResize struct {
	// MaxPixels is the image bomb limit: a source or an output image of
	// more pixels (width × height) fails the job. Key max_pixels, at
	// least 1. Default 0: the job's default, 40 million.
	MaxPixels int64
	// JPEGQuality is the quality, 1..100, of JPEG outputs whose job does
	// not give one. Key jpeg_quality. Default 0: the job's default, 85.
	JPEGQuality int
	// Roots are the absolute directories a resize job may read its source
	// from and write its outputs into (symbolic links resolved); key
	// roots, a list (GWORKERD_RESIZE_ROOTS: comma-separated). Default
	// none: every resize job is refused as "not allowed".
	Roots []string
}

// WorkerFunction is the configuration of one function.
type WorkerFunction struct {
	// Name is the Gearman function name (case-sensitive).
	Name string
	// Line is the line of the entry in the file (0 for defaults).
	Line int
	// Disabled keeps a discovered job_<name> from being served.
	Disabled bool
	// Count is the number of children when Min/Max are not set. Default 1.
	Count int
	// Min and Max enable autoscaling by backlog when Max > Min.
	Min, Max int
	// ScaleThreshold is the backlog per child above which one more child
	// starts. Default 1.
	ScaleThreshold int
	// Timeout is registered with CAN_DO_TIMEOUT; 0 means none.
	Timeout time.Duration
	// Retries re-runs a failed job inside the child. Default 0.
	Retries int
	// MaxJobs recycles a child after this many jobs; 0 means never.
	MaxJobs int
	// MaxLifetime recycles a child after this long (plus a random splay
	// of up to 10%); 0 means never.
	MaxLifetime time.Duration
	// MaxIdle stops extra (autoscaled) children, and recycles others,
	// after this long without a job; 0 means never.
	MaxIdle time.Duration
	// MemoryLimit recycles a child whose RSS exceeds it (bytes); 0 means
	// no limit. The file accepts 512MB, 1GiB, ...
	MemoryLimit int64
	// MemoryHardLimit fails the jobs a child runs when its process tree
	// (job programs and resident handlers included) grows over it during
	// a job: WORK_EXCEPTION naming the limit, not a requeue, and the
	// child is replaced. Default: twice MemoryLimit (none without one);
	// 0 set explicitly: none.
	MemoryHardLimit int64
	// Concurrency is the most jobs one child runs at once. Default 1.
	Concurrency int
	// Prefetch is how many jobs each resident handler takes ahead of the
	// one it runs (jobs/pipelined.go): they wait in its request pipe, so
	// that it starts the next one the moment it ends one. For short jobs
	// (milliseconds) this is most of the handler's speed; a job taken
	// behind a long one waits for it. Default 0. Resident handlers only,
	// and not with timeout (the server's timer would count the wait).
	Prefetch int
	// FatalAfter gives up (state fatal) after this many consecutive
	// failed starts; 0 (default) retries forever at the backoff cap.
	FatalAfter int
	// User runs the children as this user (needs root).
	User string
	// Env is added to the children's environment.
	Env map[string]string
	// Command, when set, is the argv of an existing worker program that
	// connects to the servers itself (a pecl GearmanWorker loop, say):
	// gworkerd runs it Count times and supervises it. The servers reach
	// it in GEARMAN_SERVERS and in "{servers}" inside an argument.
	Command []string
	// Dir is the working directory of the children. Default: the
	// handler's directory (command: gworkerd's).
	Dir string
	// StopTimeout is how long a child asked to exit may finish its job
	// before its process group is killed (at a full stop, at most the
	// top-level stop_timeout). Default: the top-level stop_timeout, or
	// Timeout when that is longer.
	StopTimeout time.Duration
	// LifetimeSplay: a random 0..LifetimeSplay is added to MaxLifetime
	// so that children started together are not recycled together.
	// Default 10% of MaxLifetime.
	LifetimeSplay time.Duration
	// ReadyAfter is how long a command child must stay up to count as
	// started (supervisord's startsecs). Default 1s.
	ReadyAfter time.Duration
	// Resident makes an executable job_<name> a resident handler that
	// speaks the resident protocol (jobs/README.md) instead of being run
	// once per job. Default false; .php and .py files without a #! line
	// are always resident.
	Resident bool
	// OnTimeout is what happens to a job that outlives Timeout: "requeue"
	// (the default: registered with CAN_DO_TIMEOUT, the server requeues
	// it) or "fail" (WORK_EXCEPTION "timeout").
	OnTimeout string
	// StartTimeout bounds how long a resident handler may take to load
	// its code (until its hello). Default 30s.
	StartTimeout time.Duration

	set map[string]bool // keys given explicitly, for merging over Defaults
}

// Worker defaults.
const (
	// DefaultWorkerConfigFile is the config file gworkerd reads when
	// neither --config nor GWORKERD_CONFIG names one.
	DefaultWorkerConfigFile    = "/etc/gworkerd/gworkerd.yaml"
	DefaultWorkerPidFile       = "/run/gworkerd/gworkerd.pid"
	DefaultWorkerControlSocket = "/run/gworkerd/gworkerd.sock"
	DefaultWorkerStopTimeout   = supervise.DefaultStopTimeout
	DefaultWorkerScaleInterval = supervise.DefaultScaleInterval
	DefaultWorkerHTTPListen    = "127.0.0.1:4732"
	DefaultWorkerPHP           = "php"
	DefaultWorkerPython        = "python3"
	// DefaultWorkerMaxChildrenPerFunction and DefaultWorkerMaxChildren
	// bound the number of children: a typo or a stray scale request
	// must not fork the host to death.
	DefaultWorkerMaxChildrenPerFunction = 64
	DefaultWorkerMaxChildren            = 256
	// MemoryCgroupAuto and MemoryCgroupOff are the words of
	// memory_cgroup.
	MemoryCgroupAuto = "auto"
	MemoryCgroupOff  = "off"
	// maxPrefetch bounds a function's prefetch: beyond a few jobs per
	// handler, prefetch only holds jobs other workers could run.
	maxPrefetch = 16
)

// HTTPListenIsDefault reports whether HTTPListen is the default, not
// given by a flag, the environment or the file.
func (w *Worker) HTTPListenIsDefault() bool { return w.Source("http_listen").Kind == SourceDefault }

// On-timeout policies of a function.
const (
	OnTimeoutRequeue = "requeue"
	OnTimeoutFail    = "fail"
)

// workerTable is gworkerd's keys: flags --pid-file ..., variables
// GWORKERD_PID_FILE ...; the defaults and functions sections are the
// file's only.
func workerTable() table[Worker] {
	return table[Worker]{envPrefix: "GWORKERD_", keys: []key[Worker]{
		{name: "config", short: "c", kind: kindString, noFile: true, path: pathFile, def: DefaultWorkerConfigFile,
			usage: "config `file` (GWORKERD_CONFIG)",
			set:   stringSetter(func(w *Worker) *string { return &w.Path }, nil)},
		{name: "servers", kind: kindList, def: DefaultServer(),
			usage: "job `servers`, host:port, comma-separated",
			set:   listSetter(func(w *Worker) *[]string { return &w.Servers })},
		{name: "job_dirs", kind: kindList, path: pathFile,
			usage: "`directories` of job_<name> handlers",
			set:   listSetter(func(w *Worker) *[]string { return &w.JobDirs })},
		{name: "worker_dirs", kind: kindList, path: pathFile,
			usage: "GearmanManager worker `directories`",
			set:   listSetter(func(w *Worker) *[]string { return &w.WorkerDirs })},
		{name: "function_prefix", kind: kindString,
			usage: "GearmanManager's function and class name `prefix`",
			set:   stringSetter(func(w *Worker) *string { return &w.FunctionPrefix }, nil)},
		{name: "include", kind: kindList,
			usage: "serve only these `functions` of those found",
			set:   listSetter(func(w *Worker) *[]string { return &w.Include })},
		{name: "exclude", kind: kindList,
			usage: "never serve these `functions`",
			set:   listSetter(func(w *Worker) *[]string { return &w.Exclude })},
		{name: "php", kind: kindString, path: pathProgram, def: DefaultWorkerPHP,
			usage: "`program` of the PHP runtime",
			set:   stringSetter(func(w *Worker) *string { return &w.PHP }, nil)},
		{name: "python", kind: kindString, path: pathProgram, def: DefaultWorkerPython,
			usage: "`program` of the Python runtime",
			set:   stringSetter(func(w *Worker) *string { return &w.Python }, nil)},
		{name: "pid_file", kind: kindString, path: pathFile, def: DefaultWorkerPidFile,
			usage: "locked pid `file`",
			set:   stringSetter(func(w *Worker) *string { return &w.PidFile }, nil)},
		{name: "log_file", kind: kindString, path: pathFile,
			usage: "log `file` (default standard error)",
			set:   stringSetter(func(w *Worker) *string { return &w.LogFile }, nil)},
		{name: "control_socket", kind: kindString, path: pathFile, def: DefaultWorkerControlSocket,
			usage: "unix `socket` of gworkerd ctl",
			set:   stringSetter(func(w *Worker) *string { return &w.ControlSocket }, nil)},
		{name: "stop_timeout", kind: kindDuration, def: DefaultWorkerStopTimeout.String(),
			usage: "how long children may finish their jobs at stop",
			set:   durationSetter(func(w *Worker) *time.Duration { return &w.StopTimeout })},
		{name: "http_listen", kind: kindString, def: DefaultWorkerHTTPListen,
			usage: "`host:port` of the HTTP endpoint; empty turns it off",
			set:   stringSetter(func(w *Worker) *string { return &w.HTTPListen }, nil)},
		{name: "http_token", kind: kindString,
			usage: "bearer `token` the HTTP API requires",
			set:   stringSetter(func(w *Worker) *string { return &w.HTTPToken }, nil)},
		{name: "http_token_file", kind: kindString, path: pathFile,
			usage: "read the bearer token from this `file`",
			set:   stringSetter(func(w *Worker) *string { return &w.HTTPTokenFile }, nil)},
		{name: "http_allowed_hosts", kind: kindList,
			usage: "Host header `names` the HTTP endpoint answers besides addresses and localhost",
			set: func(w *Worker, _ string, list []string) error {
				l, err := allowedHosts(list)
				w.HTTPAllowedHosts = l
				return err
			}},
		{name: "scale_interval", kind: kindDuration, def: DefaultWorkerScaleInterval.String(),
			usage: "how often the backlog of autoscaled functions is polled",
			set:   durationSetter(func(w *Worker) *time.Duration { return &w.ScaleInterval })},
		{name: "max_children_per_function", kind: kindInt, def: strconv.Itoa(DefaultWorkerMaxChildrenPerFunction),
			usage: "at most `N` children per function",
			set:   countSetter(func(w *Worker) *int { return &w.MaxChildrenPerFunction })},
		{name: "max_children", kind: kindInt,
			usage: "at most `N` children in all (default 256, at least --max-children-per-function)",
			set:   countSetter(func(w *Worker) *int { return &w.MaxChildren })},
		{name: "memory_cgroup", kind: kindString, def: MemoryCgroupAuto,
			usage: "where the children's memory cgroups go: auto, off or a cgroup `directory`",
			set: func(w *Worker, s string, _ []string) error {
				c := strings.TrimSpace(s)
				if c != "" && c != MemoryCgroupAuto && c != MemoryCgroupOff && !filepath.IsAbs(c) {
					return fmt.Errorf("want %s, %s or the absolute path of a cgroup directory, got %q", MemoryCgroupAuto, MemoryCgroupOff, c)
				}
				w.MemoryCgroup = c
				return nil
			}},
		{name: "resize.max_pixels", kind: kindInt,
			usage: "resize: refuse images of more than `N` pixels (default the job's, 40 million)",
			set:   resizeSetter("max_pixels", func(w *Worker, n int64) { w.Resize.MaxPixels = n })},
		{name: "resize.jpeg_quality", kind: kindInt,
			usage: "resize: the JPEG `quality`, 1..100, of outputs whose job gives none (default the job's, 85)",
			set:   resizeSetter("jpeg_quality", func(w *Worker, n int64) { w.Resize.JPEGQuality = int(n) })},
		{name: "resize.roots", kind: kindList,
			usage: "resize: the absolute `directories` jobs may read and write",
			set: func(w *Worker, _ string, list []string) error {
				if msg := checkRoots(list); msg != "" {
					return errors.New(msg)
				}
				for i, root := range list {
					list[i] = filepath.Clean(root)
				}
				w.Resize.Roots = list
				return nil
			}},
		{name: "defaults", kind: kindSection},
		{name: "functions", kind: kindSection},
	}}
}

// countSetter parses a bound on children: at least 1.
func countSetter(dst func(*Worker) *int) func(*Worker, string, []string) error {
	return func(w *Worker, s string, _ []string) error {
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || i < 1 {
			return fmt.Errorf("want a count of at least 1, got %q", s)
		}
		*dst(w) = i
		return nil
	}
}

// resizeSetter parses a setting of the resize section (checkResize).
func resizeSetter(key string, set func(*Worker, int64)) func(*Worker, string, []string) error {
	return func(w *Worker, s string, _ []string) error {
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		if msg := checkResize(key, i); msg != "" {
			return errors.New(msg)
		}
		set(w, i)
		return nil
	}
}

// WorkerFlags registers gworkerd's configuration flags on fs: --config
// and one for each setting outside the defaults and functions sections.
func WorkerFlags(fs *pflag.FlagSet) { workerTable().register(fs) }

// LoadWorker reads the config file that in names (--config,
// GWORKERD_CONFIG, DefaultWorkerConfigFile), applies the environment and
// the flags over it and the defaults under it, and validates the result.
// Errors are *Error.
func LoadWorker(in Inputs) (*Worker, error) {
	t := workerTable()
	path, _ := newLoader(t, in).configFile(t.keys[0])
	data, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	return loadWorker(in, path, data)
}

// loadWorker is LoadWorker of the file data, read from path.
func loadWorker(in Inputs, path string, data []byte) (*Worker, error) {
	t := workerTable()
	l := newLoader(t, in)
	file, err := t.parseYAML(path, data, false)
	if err != nil {
		return nil, err
	}
	l.file = file
	w := &Worker{Path: path, origins: origins{l.src}}
	l.src["config"] = fileSource(path, 0)
	if err := l.applyAll(w, "config"); err != nil {
		return nil, err
	}
	if w.HTTPTokenFile != "" {
		src := w.Source("http_token_file")
		if w.HTTPToken != "" {
			return nil, &Error{Key: "http_token_file", Source: src, Msg: "give the token once: http_token_file or http_token, not both"}
		}
		tok, err := readTokenFile(w.HTTPTokenFile)
		if err != nil {
			return nil, &Error{Key: "http_token_file", Source: src, Msg: err.Error()}
		}
		w.HTTPToken = tok
	}
	rel := func(p string) string { return resolvePath(key[Worker]{}, file.dir, p) }
	d := decoder{path: path}
	if n := file.sections["defaults"]; n != nil {
		fn, err := d.function("defaults", "", n)
		if err != nil {
			return nil, err
		}
		if fn.set["command"] {
			return nil, d.errf("defaults.command", n, "a command belongs to one function, not to the defaults")
		}
		fn.Dir = rel(fn.Dir)
		w.Defaults = fn
	}
	if n := file.sections["functions"]; n != nil && !isNull(n) {
		if n.Kind != yaml.MappingNode {
			return nil, d.errf("functions", n, "want a mapping of function name to settings")
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], deref(n.Content[i+1])
			name := k.Value
			if seen[name] {
				return nil, d.errf("functions."+name, k, "duplicate function")
			}
			seen[name] = true
			fn, err := d.function("functions."+name, name, val)
			if err != nil {
				return nil, err
			}
			fn.Line = k.Line
			fn.Dir = rel(fn.Dir)
			if fn.set["command"] && !fn.set["dir"] && !w.Defaults.set["dir"] {
				// Its relative program and arguments mean what they
				// mean next to the config file, in the daemon too.
				fn.Dir, fn.set["dir"] = file.dir, true
			}
			w.Functions = append(w.Functions, fn)
		}
		sort.Slice(w.Functions, func(i, j int) bool { return w.Functions[i].Name < w.Functions[j].Name })
	}
	w.withDefaults()
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return w, nil
}

// WorkerControl is what `gworkerd stop`, `status` and `ctl` need to
// reach a running daemon.
type WorkerControl struct {
	PidFile       string
	ControlSocket string
	StopTimeout   time.Duration
}

// LoadWorkerControl reads pid_file, control_socket and stop_timeout as
// LoadWorker does, so that a config that does not load (a typo, a bad
// value) never locks the operator out of the running daemon. It returns
// the settings always, and LoadWorker's error, if any, for a warning;
// each setting the broken file does not give readably is the default.
func LoadWorkerControl(in Inputs) (WorkerControl, error) {
	_, loadErr := LoadWorker(in)
	t := workerTable()
	l := newLoader(t, in)
	path, _ := l.configFile(t.keys[0])
	if data, err := readConfig(path); err == nil {
		l.file, _ = t.parseYAML(path, data, true)
	}
	w := &Worker{}
	for _, k := range t.keys {
		if k.name == "pid_file" || k.name == "control_socket" || k.name == "stop_timeout" {
			_, _ = l.apply(w, k) // a bad value leaves the default
		}
	}
	w.withDefaults()
	return WorkerControl{PidFile: w.PidFile, ControlSocket: w.ControlSocket, StopTimeout: w.StopTimeout}, loadErr
}

func (w *Worker) withDefaults() {
	if len(w.Servers) == 0 {
		w.Servers = []string{DefaultServer()}
	}
	if w.PidFile == "" {
		w.PidFile = DefaultWorkerPidFile
	}
	if w.ControlSocket == "" {
		w.ControlSocket = DefaultWorkerControlSocket
	}
	if w.StopTimeout == 0 {
		w.StopTimeout = DefaultWorkerStopTimeout
	}
	if w.ScaleInterval == 0 {
		w.ScaleInterval = DefaultWorkerScaleInterval
	}
	if w.MemoryCgroup == "" {
		w.MemoryCgroup = MemoryCgroupAuto
	}
	w.MaxChildrenPerFunction, w.MaxChildren = w.childLimits()
	if w.PHP == "" {
		w.PHP = DefaultWorkerPHP
	}
	if w.Python == "" {
		w.Python = DefaultWorkerPython
	}
	for i := range w.Functions {
		w.Functions[i] = w.Function(w.Functions[i].Name)
	}
}

// Function returns the settings of the named function: its entry in the
// functions section over the defaults section over the built-in
// defaults. A name not in the section gets the defaults.
func (w *Worker) Function(name string) WorkerFunction {
	base := w.Defaults
	base.Name, base.Line = name, 0
	for _, f := range w.Functions {
		if f.Name == name {
			base = merge(base, f)
			break
		}
	}
	if base.Count == 0 && !base.set["count"] {
		base.Count = 1
	}
	if base.Concurrency == 0 && !base.set["concurrency"] {
		base.Concurrency = worker.DefaultConcurrency
	}
	if base.ScaleThreshold == 0 && !base.set["scale_threshold"] {
		base.ScaleThreshold = supervise.DefaultScaleThreshold
	}
	if base.Max > 0 && base.Min == 0 && !base.set["min"] {
		base.Min = 1
	}
	if base.OnTimeout == "" {
		base.OnTimeout = OnTimeoutRequeue
	}
	if !base.set["memory_hard_limit"] && len(base.Command) == 0 {
		base.MemoryHardLimit = 2 * base.MemoryLimit
	}
	return base
}

func merge(base, f WorkerFunction) WorkerFunction {
	out := base
	out.Name, out.Line = f.Name, f.Line
	out.set = map[string]bool{}
	for k := range base.set {
		out.set[k] = true
	}
	for k := range f.set {
		out.set[k] = true
		switch k {
		case "disabled":
			out.Disabled = f.Disabled
		case "count":
			out.Count = f.Count
		case "min":
			out.Min = f.Min
		case "max":
			out.Max = f.Max
		case "scale_threshold":
			out.ScaleThreshold = f.ScaleThreshold
		case "timeout":
			out.Timeout = f.Timeout
		case "retries":
			out.Retries = f.Retries
		case "max_jobs":
			out.MaxJobs = f.MaxJobs
		case "max_lifetime":
			out.MaxLifetime = f.MaxLifetime
		case "max_idle":
			out.MaxIdle = f.MaxIdle
		case "memory_limit":
			out.MemoryLimit = f.MemoryLimit
		case "memory_hard_limit":
			out.MemoryHardLimit = f.MemoryHardLimit
		case "concurrency":
			out.Concurrency = f.Concurrency
		case "prefetch":
			out.Prefetch = f.Prefetch
		case "fatal_after":
			out.FatalAfter = f.FatalAfter
		case "user":
			out.User = f.User
		case "command":
			out.Command = f.Command
		case "dir":
			out.Dir = f.Dir
		case "stop_timeout":
			out.StopTimeout = f.StopTimeout
		case "lifetime_splay":
			out.LifetimeSplay = f.LifetimeSplay
		case "ready_after":
			out.ReadyAfter = f.ReadyAfter
		case "resident":
			out.Resident = f.Resident
		case "on_timeout":
			out.OnTimeout = f.OnTimeout
		case "start_timeout":
			out.StartTimeout = f.StartTimeout
		case "env":
			env := map[string]string{}
			for k, v := range base.Env {
				env[k] = v
			}
			for k, v := range f.Env {
				env[k] = v
			}
			out.Env = env
		}
	}
	return out
}

// Autoscaled reports whether the function scales between Min and Max.
func (f WorkerFunction) Autoscaled() bool { return f.Max > f.Min }

// Children is the most children the function runs: Max when
// autoscaled, else Count.
func (f WorkerFunction) Children() int {
	if f.Autoscaled() {
		return f.Max
	}
	return f.Count
}

// CheckChildren checks the total of the functions' children (Children)
// against MaxChildren; the error names the key and the file. The
// functions are those served, found in the job directories too, which
// Validate does not know.
func (w *Worker) CheckChildren(fns []WorkerFunction) error {
	total := 0
	for _, f := range fns {
		if !f.Disabled {
			total += f.Children()
		}
	}
	if _, limit := w.childLimits(); total > limit {
		return &Error{Key: "max_children", Source: w.where("max_children"),
			Msg: fmt.Sprintf("the functions' children (count, or max when autoscaled) add up to %d, beyond max_children %d", total, limit)}
	}
	return nil
}

// where is the source of key for an error: where its value came from,
// else the config file.
func (w *Worker) where(key string) Source {
	if src := w.Source(key); src.Kind != SourceDefault {
		return src
	}
	return fileSource(w.Path, 0)
}

// FunctionError is an error in the entry of function name (at line of
// the file; 0 for a function the file does not name), of its setting
// sub ("" for the entry).
func (w *Worker) FunctionError(name string, line int, sub, msg string) error {
	key := "functions." + name
	if sub != "" {
		key += "." + sub
	}
	return &Error{Key: key, Source: fileSource(w.Path, line), Msg: msg}
}

// childLimits are MaxChildrenPerFunction and MaxChildren, the defaults
// for zeros.
func (w *Worker) childLimits() (perFunction, total int) {
	perFunction, total = w.MaxChildrenPerFunction, w.MaxChildren
	if perFunction == 0 {
		perFunction = DefaultWorkerMaxChildrenPerFunction
	}
	if total == 0 {
		total = max(DefaultWorkerMaxChildren, perFunction)
	}
	return perFunction, total
}

// Validate checks the configuration; errors name the key and the line.
func (w *Worker) Validate() error {
	if len(w.Servers) == 0 {
		return &Error{Key: "servers", Source: w.where("servers"), Msg: "at least one server is required"}
	}
	for _, s := range w.Servers {
		if _, err := protocol.ParseServerAddr(s); err != nil {
			return &Error{Key: "servers", Source: w.where("servers"), Msg: err.Error()}
		}
	}
	if w.StopTimeout < 0 {
		return &Error{Key: "stop_timeout", Source: w.where("stop_timeout"), Msg: "must not be negative"}
	}
	// Zero is "not given": the defaults.
	perFn, total := w.childLimits()
	switch {
	case w.MaxChildrenPerFunction < 0:
		return &Error{Key: "max_children_per_function", Source: w.where("max_children_per_function"), Msg: "must be at least 1"}
	case w.MaxChildren < 0 || total < perFn:
		return &Error{Key: "max_children", Source: w.where("max_children"),
			Msg: fmt.Sprintf("%d is below max_children_per_function %d", total, perFn)}
	case w.Defaults.Count > perFn:
		return &Error{Key: "defaults.count", Source: w.where("defaults.count"),
			Msg: fmt.Sprintf("%d is beyond max_children_per_function %d", w.Defaults.Count, perFn)}
	case w.Defaults.Max > perFn:
		return &Error{Key: "defaults.max", Source: w.where("defaults.max"),
			Msg: fmt.Sprintf("%d is beyond max_children_per_function %d", w.Defaults.Max, perFn)}
	}
	// Zero is "not given" (the job's default); parsing rejects a zero
	// written in the file.
	for _, r := range []struct {
		key string
		val int64
	}{{"max_pixels", w.Resize.MaxPixels}, {"jpeg_quality", int64(w.Resize.JPEGQuality)}} {
		if msg := checkResize(r.key, r.val); r.val != 0 && msg != "" {
			return &Error{Key: "resize." + r.key, Source: w.where("resize." + r.key), Msg: msg}
		}
	}
	if msg := checkRoots(w.Resize.Roots); msg != "" {
		return &Error{Key: "resize.roots", Source: w.where("resize.roots"), Msg: msg}
	}
	for _, f := range w.Functions {
		key := "functions." + f.Name
		bad := func(sub, msg string) error {
			return &Error{Key: key + "." + sub, Source: fileSource(w.Path, f.Line), Msg: msg}
		}
		if f.Name == "" || strings.ContainsAny(f.Name, " \t\r\n\x00") {
			return &Error{Key: key, Source: fileSource(w.Path, f.Line), Msg: "a function name must be non-empty without spaces"}
		}
		switch {
		case f.Count < 0:
			return bad("count", "must not be negative")
		case f.Min < 0:
			return bad("min", "must not be negative")
		case f.Max < 0:
			return bad("max", "must not be negative")
		case f.Max > 0 && f.Max < f.Min:
			return bad("max", fmt.Sprintf("max %d is below min %d", f.Max, f.Min))
		case f.Count > perFn:
			return bad("count", fmt.Sprintf("%d is beyond max_children_per_function %d", f.Count, perFn))
		case f.Max > perFn:
			return bad("max", fmt.Sprintf("%d is beyond max_children_per_function %d", f.Max, perFn))
		case f.Retries < 0:
			return bad("retries", "must not be negative")
		case f.MaxJobs < 0:
			return bad("max_jobs", "must not be negative")
		case f.Concurrency < 1:
			return bad("concurrency", "must be at least 1")
		case f.Prefetch < 0:
			return bad("prefetch", "must not be negative")
		case f.Prefetch > maxPrefetch:
			return bad("prefetch", fmt.Sprintf("%d is beyond %d", f.Prefetch, maxPrefetch))
		case f.Prefetch > 0 && f.Timeout > 0:
			return bad("prefetch", "a job taken ahead would spend its timeout waiting: set one of prefetch and timeout")
		case f.Prefetch > 0 && len(f.Command) > 0:
			return bad("prefetch", "a command takes its own jobs: prefetch applies to resident handlers")
		case f.ScaleThreshold < 1:
			return bad("scale_threshold", "must be at least 1")
		case f.MemoryLimit < 0:
			return bad("memory_limit", "must not be negative")
		case f.MemoryHardLimit < 0:
			return bad("memory_hard_limit", "must not be negative")
		case f.MemoryHardLimit > 0 && f.MemoryHardLimit < f.MemoryLimit:
			return bad("memory_hard_limit", fmt.Sprintf("%d is below memory_limit %d", f.MemoryHardLimit, f.MemoryLimit))
		case len(f.Command) > 0 && f.set["memory_hard_limit"]:
			return bad("memory_hard_limit", "a command runs its own jobs, which gworkerd cannot fail: use memory_limit")
		case f.FatalAfter < 0:
			return bad("fatal_after", "must not be negative")
		case f.OnTimeout != OnTimeoutRequeue && f.OnTimeout != OnTimeoutFail:
			return bad("on_timeout", fmt.Sprintf("want requeue or fail, got %q", f.OnTimeout))
		case len(f.Command) > 0 && f.MaxJobs > 0:
			return bad("max_jobs", "a command runs its own jobs, which gworkerd does not see: max_jobs cannot apply (use max_lifetime)")
		case len(f.Command) > 0 && f.Resident:
			return bad("resident", "a command is not a resident handler: set one of command and resident")
		case len(f.Command) > 0 && f.Concurrency > 1:
			return bad("concurrency", "a command runs its own jobs: use count for more processes")
		}
		for i, a := range f.Command {
			if strings.ContainsRune(a, 0) || (i == 0 && strings.TrimSpace(a) == "") {
				return bad("command", fmt.Sprintf("argument %d is empty or holds a NUL", i))
			}
		}
		for k := range f.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad("env", fmt.Sprintf("invalid variable name %q", k))
			}
		}
	}
	return w.CheckChildren(w.Functions)
}

// decoder turns yaml nodes into typed values with key+line errors.
type decoder struct{ path string }

func (d decoder) errf(key string, n *yaml.Node, format string, args ...any) error {
	return &Error{Key: key, Source: fileSource(d.path, n.Line), Msg: fmt.Sprintf(format, args...)}
}

// checkRoots returns what is wrong with resize.roots, or "".
func checkRoots(roots []string) string {
	for _, root := range roots {
		if !filepath.IsAbs(root) {
			return fmt.Sprintf("want absolute directories, got %q", root)
		}
	}
	return ""
}

// checkResize returns what is wrong with a value of the resize section,
// or "".
func checkResize(key string, val int64) string {
	switch {
	case key == "max_pixels" && val < 1:
		return fmt.Sprintf("must be at least 1, got %d", val)
	case key == "jpeg_quality" && (val < 1 || val > 100):
		return fmt.Sprintf("must be 1..100, got %d", val)
	}
	return ""
}

func (d decoder) function(key, name string, n *yaml.Node) (WorkerFunction, error) {
	f := WorkerFunction{Name: name, set: map[string]bool{}}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return f, nil // "name:" with no settings
	}
	if n.Kind != yaml.MappingNode {
		return f, d.errf(key, n, "want a mapping of settings")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		name := normKey(k.Value)
		sub := key + "." + name
		if f.set[name] {
			return f, d.errf(sub, k, "duplicate key")
		}
		f.set[name] = true
		var err error
		switch name {
		case "disabled":
			f.Disabled, err = d.boolean(sub, v)
		case "count":
			f.Count, err = d.integer(sub, v)
		case "min":
			f.Min, err = d.integer(sub, v)
		case "max":
			f.Max, err = d.integer(sub, v)
		case "scale_threshold":
			f.ScaleThreshold, err = d.integer(sub, v)
		case "retries":
			f.Retries, err = d.integer(sub, v)
		case "max_jobs":
			f.MaxJobs, err = d.integer(sub, v)
		case "concurrency":
			f.Concurrency, err = d.integer(sub, v)
		case "prefetch":
			f.Prefetch, err = d.integer(sub, v)
		case "fatal_after":
			f.FatalAfter, err = d.integer(sub, v)
		case "timeout":
			f.Timeout, err = d.duration(sub, v)
		case "max_lifetime":
			f.MaxLifetime, err = d.duration(sub, v)
		case "max_idle":
			f.MaxIdle, err = d.duration(sub, v)
		case "memory_limit":
			f.MemoryLimit, err = d.bytes(sub, v)
		case "memory_hard_limit":
			f.MemoryHardLimit, err = d.bytes(sub, v)
		case "user":
			if v.Kind != yaml.ScalarNode {
				err = d.errf(sub, v, "want a user name")
			}
			f.User = v.Value
		case "command":
			f.Command, err = d.command(sub, v)
		case "dir":
			f.Dir, err = d.scalar(sub, v)
		case "stop_timeout":
			f.StopTimeout, err = d.duration(sub, v)
		case "lifetime_splay":
			f.LifetimeSplay, err = d.duration(sub, v)
		case "ready_after":
			f.ReadyAfter, err = d.duration(sub, v)
		case "start_timeout":
			f.StartTimeout, err = d.duration(sub, v)
		case "resident":
			f.Resident, err = d.boolean(sub, v)
		case "on_timeout":
			f.OnTimeout, err = d.scalar(sub, v)
			if err == nil && f.OnTimeout != OnTimeoutRequeue && f.OnTimeout != OnTimeoutFail {
				err = d.errf(sub, v, "want requeue or fail, got %q", f.OnTimeout)
			}
		case "env":
			f.Env, err = d.env(sub, v)
		default:
			err = d.errf(sub, k, "unknown key")
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// command reads an argv: a list of strings, or one string split on
// blanks with shell-like quoting ('...', "...", backslash).
func (d decoder) command(key string, n *yaml.Node) ([]string, error) {
	var argv []string
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, d.errf(key, c, "want a string")
			}
			argv = append(argv, c.Value)
		}
	case yaml.ScalarNode:
		var err error
		if argv, err = SplitCommand(n.Value); err != nil {
			return nil, d.errf(key, n, "%v", err)
		}
	default:
		return nil, d.errf(key, n, "want a list of arguments or a command line")
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, d.errf(key, n, "empty command")
	}
	return argv, nil
}

// SplitCommand splits a command line into arguments the way a POSIX
// shell splits words: blanks separate them, '...' quotes literally,
// "..." quotes with backslash escapes of " \ $ and `, a backslash
// outside quotes escapes the next character. Nothing is expanded.
func SplitCommand(s string) ([]string, error) {
	var (
		args  []string
		cur   []byte
		inArg bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args, cur, inArg = append(args, string(cur)), cur[:0], false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("command ends with a backslash")
			}
			i++
			cur, inArg = append(cur, s[i]), true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote in command")
			}
			cur, inArg = append(cur, s[i+1:i+1+j]...), true
			i += j + 1
		case c == '"':
			inArg = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur = append(cur, s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated \" quote in command")
			}
		default:
			cur, inArg = append(cur, c), true
		}
	}
	if inArg {
		args = append(args, string(cur))
	}
	return args, nil
}

func (d decoder) scalar(key string, n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", d.errf(key, n, "want a single value")
	}
	return n.Value, nil
}

func (d decoder) integer(key string, n *yaml.Node) (int, error) {
	s, err := d.scalar(key, n)
	if err != nil {
		return 0, err
	}
	i, err := strconv.Atoi(s)
	if err != nil {
		return 0, d.errf(key, n, "want an integer, got %q", s)
	}
	return i, nil
}

func (d decoder) boolean(key string, n *yaml.Node) (bool, error) {
	s, err := d.scalar(key, n)
	if err != nil {
		return false, err
	}
	b, err := parseBool(s)
	if err != nil {
		return false, d.errf(key, n, "%v", err)
	}
	return b, nil
}

func (d decoder) duration(key string, n *yaml.Node) (time.Duration, error) {
	s, err := d.scalar(key, n)
	if err != nil {
		return 0, err
	}
	dur, err := parseDuration(s)
	if err != nil {
		return 0, d.errf(key, n, "%v", err)
	}
	return dur, nil
}

func (d decoder) bytes(key string, n *yaml.Node) (int64, error) {
	s, err := d.scalar(key, n)
	if err != nil {
		return 0, err
	}
	b, err := parseSize(s)
	if err != nil {
		return 0, d.errf(key, n, "%v", err)
	}
	return b, nil
}

func (d decoder) env(key string, n *yaml.Node) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, d.errf(key, n, "want a mapping of NAME: value")
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return nil, d.errf(key+"."+k.Value, v, "want a string")
		}
		out[k.Value] = v.Value
	}
	return out, nil
}
