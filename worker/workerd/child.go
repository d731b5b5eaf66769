package workerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// readyFallback: a child that has not registered with any server by then
// still reports ready, so that a server down does not block a reload.
const readyFallback = 5 * time.Second

// Child is one worker child, started by the master as `gworkerd child`
// with its settings in the environment.
type Child struct {
	cc childConfig
}

// NewChild reads the child's settings from the environment; function,
// if not "", must be the function they name.
func NewChild(lookupEnv func(string) (string, bool), function string) (*Child, error) {
	v, _ := lookupEnv(envChildConfig)
	var cc childConfig
	if err := json.Unmarshal([]byte(v), &cc); err != nil {
		return nil, fmt.Errorf("child: %s is missing or invalid (children are started by the master): %w", envChildConfig, err)
	}
	if function != "" && function != cc.Function {
		return nil, fmt.Errorf("child: --function %q does not match %q", function, cc.Function)
	}
	return &Child{cc: cc}, nil
}

// Procs is the child's GOMAXPROCS (see childProcs).
func (c *Child) Procs() int { return childProcs(c.cc) }

// Run serves the function until ctx ends (SIGTERM), then finishes the
// jobs it holds and returns. It logs to stderr, which the master reads;
// rep reports to the master.
func (c *Child) Run(ctx context.Context, stderr io.Writer, rep *supervise.Reporter) error {
	log := logrus.New()
	log.Out = stderr
	log.Formatter = &logrus.TextFormatter{DisableTimestamp: true}
	return runChild(ctx, c.cc, log.WithFields(logrus.Fields{"function": c.cc.Function, "pid": os.Getpid()}), rep)
}

// runChild serves one function until ctx ends (SIGTERM), then finishes
// the jobs it holds and returns.
func runChild(ctx context.Context, cc childConfig, log logrus.FieldLogger, rep *supervise.Reporter) error {
	var h worker.Handler
	switch {
	case cc.Runtime != "" || cc.Resident:
		res, err := residentHandler(cc, log)
		if err != nil {
			return err
		}
		res.Depth = 1 + cc.Prefetch
		// Load the code before taking any job: a handler that cannot
		// start makes the child exit, and the supervisor backs off.
		if err := res.Start(ctx, cc.Concurrency); err != nil {
			_ = res.Close()
			return err
		}
		defer res.Close()
		h = res
	case cc.Exec != "":
		h = &jobs.Executable{Path: cc.Exec, Function: cc.Function, Env: cc.Env, Dir: cc.Dir, Logger: log}
	default:
		opts := jobs.Options{Logger: log}
		if cc.Resize != nil {
			opts.Resize.MaxPixels, opts.Resize.Quality = cc.Resize.MaxPixels, cc.Resize.JPEGQuality
			opts.Resize.Roots = cc.Resize.Roots
		}
		reg, err := jobs.Default(opts)
		if err != nil {
			return err
		}
		var ok bool
		if h, ok = reg.Lookup(cc.Function); !ok {
			return fmt.Errorf("child: no built-in function %q", cc.Function)
		}
	}
	var readyOnce sync.Once
	ready := func() { readyOnce.Do(rep.Ready) }
	w, err := worker.New(worker.Options{
		Servers: cc.Servers,
		Functions: map[string]worker.FunctionConfig{cc.Function: {
			Handler: h, Timeout: cc.Timeout, Retries: cc.Retries, TimeoutFails: cc.TimeoutFails,
		}},
		Concurrency: cc.Concurrency * (1 + cc.Prefetch), // prefetched jobs are held too
		MaxJobs:     cc.MaxJobs,
		ClientID:    fmt.Sprintf("gworkerd:%s:%d", cc.Function, os.Getpid()),
		Logger:      log,
		OnEvent: func(ev worker.Event) {
			switch ev.Kind {
			case worker.Connected:
				ready()
			case worker.JobStarted:
				rep.JobStarted(ev.Handle, ev.Time)
			case worker.JobDone:
				rep.JobFinished(ev.Handle, true, nil, ev.Duration)
			case worker.JobFailed, worker.JobAbandoned:
				rep.JobFinished(ev.Handle, false, ev.Err, ev.Duration)
			}
		},
	})
	if err != nil {
		return err
	}
	// The child's memory, for memory_limit (in the heartbeats) and
	// memory_hard_limit: its cgroup's when the master gave it one.
	mem := supervise.SelfMemory()
	rep.SetMemory(mem.Bytes)
	hbCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rep.Run(hbCtx, clock.Real{}, time.Second) }()
	if cc.MemoryHardLimit > 0 {
		m := memoryCeiling{limit: cc.MemoryHardLimit, rss: mem.Bytes, subject: mem.Subject(), clk: clock.Real{}, log: log}
		wg.Add(1)
		go func() { defer wg.Done(); m.watch(hbCtx, w) }()
	}
	fallback := time.AfterFunc(readyFallback, ready)
	defer fallback.Stop()
	err = w.Run(ctx)
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// childProcs is a child's GOMAXPROCS. A child runs at most Concurrency
// jobs at once, mostly waiting on sockets and pipes: more Ps only add
// wake-ups and futexes to every job. A child whose jobs run in other
// processes (resident handlers, job programs) only moves their bytes: one
// P is enough whatever its concurrency.
func childProcs(cc childConfig) int {
	if cc.Runtime != "" || cc.Resident || cc.Exec != "" {
		return 1
	}
	return max(1, min(cc.Concurrency, runtime.NumCPU()))
}

// residentHandler builds the resident handler pool of a child: the
// function's executable, or the shipped runtime loading its file.
func residentHandler(cc childConfig, log logrus.FieldLogger) (*jobs.Resident, error) {
	res := &jobs.Resident{
		Function: cc.Function, Dir: cc.Dir, Env: cc.Env, StartTimeout: cc.StartTimeout, Logger: log,
	}
	path := cc.Exec
	if cc.Runtime != "" {
		path = cc.File
		rt, err := jobs.Runtime(cc.Runtime).File("")
		if err != nil {
			return nil, err
		}
		res.Command = []string{cc.Interpreter, rt, "--file", cc.File, "--callable", cc.Callable, "--function", cc.Function}
		if jobs.Runtime(cc.Runtime) == jobs.RuntimePHP {
			// GearmanDaemon's job files open with the short tag "<?",
			// which php-cli ignores unless short_open_tag is on.
			res.Command = []string{cc.Interpreter, "-d", "short_open_tag=1", rt, "--file", cc.File, "--callable", cc.Callable, "--function", cc.Function}
		}
	} else {
		res.Command = []string{cc.Exec}
	}
	if res.Dir == "" {
		res.Dir = filepath.Dir(path)
	}
	return res, nil
}
