// Package supervise is the master of gworkerd: it starts one child
// process per worker slot by re-executing a program, watches them over a
// report pipe, restarts them with backoff, recycles them between jobs,
// scales functions by backlog and rolls out reloads one child at a time.
// It also runs "command" children (FunctionSpec.Command): any worker
// program that connects to the servers itself, supervised like
// supervisord does, without a report pipe.
//
// Concurrency: every field of Supervisor, group and child is owned by the
// goroutine running Supervisor.Run (the loop). Other goroutines (one
// Wait owner and one report reader per child, timers, the backlog
// poller, API callers) talk to the loop through the events channel only.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/internal/clock"
)

// Defaults of Options and FunctionSpec, also gworkerd's config defaults.
const (
	DefaultStopTimeout    = 30 * time.Second // Options.StopTimeout
	DefaultScaleInterval  = 2 * time.Second  // Options.ScaleInterval
	DefaultScaleThreshold = 1                // FunctionSpec.ScaleThreshold
)

// FunctionSpec describes one supervised function.
type FunctionSpec struct {
	// Name is the Gearman function (case-sensitive).
	Name string
	// Count is the number of children of a function that does not
	// autoscale. Default 0 (a zero spec runs nothing; config fills 1).
	Count int
	// Min and Max: when Max > Min the function autoscales: it keeps Min
	// children and adds more, up to Max, while the servers' backlog
	// exceeds ScaleThreshold per child; extras stop after MaxIdle.
	Min, Max int
	// ScaleThreshold is the queued jobs per child that justify one more
	// child. Default DefaultScaleThreshold (1).
	ScaleThreshold int
	// MaxJobs recycles a child after this many jobs (0: never). A
	// Command function cannot have it (New and Reload reject it).
	MaxJobs int
	// MaxLifetime recycles a child after this long plus a random splay
	// (see LifetimeSplay) (0: never).
	MaxLifetime time.Duration
	// LifetimeSplay: when > 0, the random splay added to each child's
	// MaxLifetime is 0..LifetimeSplay; default 0..10% of MaxLifetime.
	LifetimeSplay time.Duration
	// MaxIdle: a child of an autoscaled function idle this long is
	// stopped while the function has more than Min children (default
	// 60s); a child of a fixed-count function is recycled (0: never).
	// A command child sends no job reports: it is never recycled for
	// idleness, and in an autoscaled function it counts as idle since
	// the last backlog poll that found jobs queued for the function.
	MaxIdle time.Duration
	// MemoryLimit recycles a child whose memory exceeds it, in bytes (0:
	// no limit). With Options.Cgroups the memory is the working set of
	// the child's cgroup, which holds every process it started, however
	// detached; else the RSS of its process tree (TreeRSS). A gworkerd
	// child reports it in its heartbeats (SelfMemory); a command child's
	// is read every Options.TickInterval.
	MemoryLimit int64
	// FatalAfter gives up after this many consecutive failed runs
	// (state fatal); 0 retries forever at the backoff cap.
	FatalAfter int
	// Grace is how long a child asked to exit (recycling, scaling down,
	// reload, stop) may finish its job before its group is killed; at a
	// full stop, at most Options.StopTimeout. Default
	// Options.StopTimeout.
	Grace time.Duration
	// Path and Args are the child's command line (Path default:
	// Options.Executable; required for a Command).
	Path string
	Args []string
	// Command runs Path as a plain program instead of a gworkerd child:
	// any worker that connects to the servers itself (a PHP
	// GearmanWorker loop, a Perl Gearman::Worker script). It gets no
	// report pipe (no file descriptor 3, no GWORKERD_REPORT_FD), so: it
	// counts as running once up for ReadyAfter; its RSS is read from
	// /proc; MaxJobs is rejected and MaxIdle does not recycle it;
	// HeartbeatTimeout does not apply. Everything else does: backoff,
	// FatalAfter, MaxLifetime, MemoryLimit, reloads, scaling, and
	// stopping (SIGTERM to the process, SIGKILL to its process group
	// and its descendants' after Grace). A program that does not handle
	// SIGTERM dies with the job it holds, which the server hands to
	// another worker.
	Command bool
	// ReadyAfter: a command child counts as started (running, which lets
	// a rolling replacement retire the child it replaces) once it has
	// stayed up this long, like supervisord's startsecs; an exit before
	// is a failed start (backoff, counted by FatalAfter). Default 1s;
	// negative: at once. Ignored for gworkerd children, which report
	// ready themselves.
	ReadyAfter time.Duration
	// Env is added to the child's environment; User runs it as another
	// user; Dir is its working directory.
	Env  []string
	User string
	Dir  string
	// Version is opaque: a change (the handler file changed, say)
	// replaces the children on reload like any other setting.
	Version string
}

func (f FunctionSpec) autoscaled() bool { return f.Max > f.Min }

// sameChildren reports whether children started from a and from b are
// the same: every setting except the numbers of children.
func sameChildren(a, b FunctionSpec) bool {
	a.Count, a.Min, a.Max, a.ScaleThreshold = 0, 0, 0, 0
	b.Count, b.Min, b.Max, b.ScaleThreshold = 0, 0, 0, 0
	return reflect.DeepEqual(a, b)
}

// Options configure a Supervisor.
type Options struct {
	// Functions are supervised from the start.
	Functions []FunctionSpec
	// Executable is the program re-executed for children. Default: this
	// process's executable.
	Executable string
	// StopTimeout is how long children may finish their jobs when the
	// supervisor stops before their groups get SIGKILL. Default
	// DefaultStopTimeout (30s).
	StopTimeout time.Duration
	// Backoff paces restarts.
	Backoff Backoff
	// Backlog, when set, returns the number of queued (not running) jobs
	// per function; it is polled every ScaleInterval for autoscaled
	// functions.
	Backlog func(ctx context.Context) (map[string]int, error)
	// ScaleInterval defaults to DefaultScaleInterval (2s).
	ScaleInterval time.Duration
	// TickInterval is how often lifetimes and idle times are checked.
	// Default 1s.
	TickInterval time.Duration
	// HeartbeatTimeout: a running child that has sent heartbeats and then
	// stays silent this long is hung; its group is killed and it restarts
	// with backoff. Default 60s; negative disables.
	HeartbeatTimeout time.Duration
	// Starter starts the children. Default: an ExecStarter, closed when
	// Run returns.
	Starter Starter
	// Logger receives the logs. Default: discarded.
	Logger logrus.FieldLogger
	// Clock defaults to clock.Real{}.
	Clock clock.Clock
	// Rand seeds jitter and splay. Default: random.
	Rand *rand.Rand
	// LogLines is how many lines of output (stdout and stderr) are kept
	// per function for SubscribeLogs. Default 200; negative keeps none.
	LogLines int
	// MaxChildrenPerFunction bounds the children of one function (its
	// Count, its Max, a Scale); beyond it New and Reload fail with a
	// SpecError and Scale with a *LimitError. Default 0: no bound (the
	// config's max_children_per_function gives gworkerd's).
	MaxChildrenPerFunction int
	// MaxChildren bounds the children of all functions together, each
	// counted at its Count or, autoscaled, its Max. Default 0: no bound
	// (the config's max_children gives gworkerd's).
	MaxChildren int
	// ReapOrphans: the caller made this process a child subreaper
	// (prctl PR_SET_CHILD_SUBREAPER), so what a child leaves running
	// after it (a `setsid cmd &`) is reparented here. Every TickInterval
	// the supervisor then looks in /proc for the processes whose parent
	// is this process and that are not its children, logs each, sends it
	// SIGTERM, SIGKILL after OrphanGrace, and reaps it; when Run ends,
	// once the children are gone, every process left whose parent is
	// this one gets SIGKILL at once. Nothing else in the process may
	// start children of its own. Default false.
	ReapOrphans bool
	// OrphanGrace is how long an orphan may run after its SIGTERM.
	// Default StopTimeout.
	OrphanGrace time.Duration
	// Cgroups, when set, gives each child a memory cgroup of its own
	// (Tree.NewChild), which it is born in (see ExecStarter): the child
	// and everything it starts stay in it, however detached, and its
	// memory is the cgroup's working set. A child's cgroup is removed
	// once the child has ended and the processes it left in it are gone
	// (the orphans logic ends those), tried again every TickInterval;
	// when Run ends, what is still in them gets SIGKILL and they are
	// removed. The caller closes the Tree after Run. Default nil: the
	// memory of a child is that of its process tree.
	Cgroups *cgroup.Tree
	// NoCgroups says why Cgroups is nil, for Status. Default "".
	NoCgroups string
}

// Names of the bounds in LimitError, as the config names them.
const (
	LimitPerFunction = "max_children_per_function"
	LimitTotal       = "max_children"
)

// LimitError rejects a request for more children than a bound allows.
type LimitError struct {
	Function string
	// N is the number of children asked for the function.
	N int
	// Limit names the bound exceeded: LimitPerFunction or LimitTotal.
	Limit string
	// Max is the bound's value; Total, for LimitTotal, the total the
	// request would give.
	Max, Total int
}

func (e *LimitError) Error() string {
	if e.Limit == LimitTotal {
		return fmt.Sprintf("supervise: scale %q to %d: %d children in all, beyond %s %d", e.Function, e.N, e.Total, e.Limit, e.Max)
	}
	return fmt.Sprintf("supervise: scale %q to %d: beyond %s %d", e.Function, e.N, e.Limit, e.Max)
}

// Errors.
var (
	// ErrNotRunning: the supervisor's Run has not started or has returned.
	ErrNotRunning = errors.New("supervise: supervisor not running")
	// ErrUnknownFunction: no such function is supervised.
	ErrUnknownFunction = errors.New("supervise: unknown function")
)

// SpecError rejects a FunctionSpec given to New or Reload.
type SpecError struct {
	Op       string // "reload", or empty for New
	Function string
	Reason   string
}

func (e *SpecError) Error() string {
	op := ""
	if e.Op != "" {
		op = e.Op + ": "
	}
	return fmt.Sprintf("supervise: %sfunction %q: %s", op, e.Function, e.Reason)
}

// children is the most children f runs: Max when autoscaled, else
// Count.
func (f FunctionSpec) children() int {
	if f.autoscaled() {
		return f.Max
	}
	return f.Count
}

// validate checks the specs given to New or Reload against each other
// and the bounds of opts.
func validate(op string, specs []FunctionSpec, opts Options) error {
	seen := map[string]bool{}
	total := 0
	for _, f := range specs {
		total += f.children()
		reason := ""
		switch {
		case opts.MaxChildrenPerFunction > 0 && f.children() > opts.MaxChildrenPerFunction:
			reason = fmt.Sprintf("%d children, beyond %s %d", f.children(), LimitPerFunction, opts.MaxChildrenPerFunction)
		case opts.MaxChildren > 0 && total > opts.MaxChildren:
			reason = fmt.Sprintf("the functions' children add up to more than %s %d", LimitTotal, opts.MaxChildren)
		case f.Name == "" || seen[f.Name]:
			reason = "empty or duplicate name"
		case f.Command && f.Path == "":
			reason = "a command needs a path"
		case f.Command && f.MaxJobs > 0:
			reason = "max_jobs cannot apply to a command (it sends no job reports)"
		}
		if reason != "" {
			return &SpecError{Op: op, Function: f.Name, Reason: reason}
		}
		seen[f.Name] = true
	}
	return nil
}

// Supervisor supervises the children of every function.
type Supervisor struct {
	opts        Options
	log         logrus.FieldLogger
	clk         clock.Clock
	rnd         *rand.Rand
	starter     Starter
	ownsStarter bool

	events    chan func()   // run by the loop
	started   chan struct{} // closed when Run starts
	done      chan struct{} // closed when the loop has exited
	startOnce sync.Once
	logs      *logHub  // safe for concurrent use
	orphans   *orphans // nil unless Options.ReapOrphans; see its type

	// owned by the loop
	groups   map[string]*group
	counters map[string]*funcStats // by function; never removed
	nextID   int
	stopping bool
	later    []func()        // run by the loop once the current event is done
	wg       sync.WaitGroup  // child goroutines: waiters, readers
	cgLeft   []*cgroup.Group // cgroups of ended children not removed yet
}

type group struct {
	spec     FunctionSpec
	gen      int
	desired  int
	stopped  bool // by ctl stop
	removed  bool // by reload
	children []*child
}

type child struct {
	id    int
	g     *group
	gen   int
	state State
	since time.Time // of the state

	proc     Process
	pid      int
	cgroup   *cgroup.Group // of proc; nil without Options.Cgroups
	command  bool          // started as a plain program (FunctionSpec.Command)
	started  time.Time
	lifetime time.Duration

	attempt  int // consecutive failed runs
	restarts int
	lastExit string

	jobsDone  int
	failures  int
	current   map[string]time.Time
	idleSince time.Time
	rss       int64
	heartbeat time.Time // of the last heartbeat; zero before the first

	retiring   bool   // asked to exit for good
	replacedBy *child // replacement being started
	recycleWhy string
	timer      clock.Timer
	timerSeq   int
}

// New checks opts and returns a Supervisor; Run runs it.
func New(opts Options) (*Supervisor, error) {
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("supervise: executable: %w", err)
		}
		opts.Executable = exe
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.ScaleInterval <= 0 {
		opts.ScaleInterval = DefaultScaleInterval
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = time.Second
	}
	if opts.HeartbeatTimeout == 0 {
		opts.HeartbeatTimeout = 60 * time.Second
	}
	opts.Backoff = opts.Backoff.withDefaults()
	s := &Supervisor{
		opts:    opts,
		log:     opts.Logger,
		clk:     opts.Clock,
		rnd:     opts.Rand,
		starter: opts.Starter,
		events:  make(chan func()),
		started: make(chan struct{}),
		done:    make(chan struct{}),
		groups:  map[string]*group{},
	}
	if s.log == nil {
		l := logrus.New()
		l.Out = discard{}
		s.log = l
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	s.counters = map[string]*funcStats{}
	if opts.LogLines == 0 {
		opts.LogLines = 200
	}
	s.opts.LogLines = max(opts.LogLines, 0)
	s.logs = newLogHub(s.clk, s.opts.LogLines)
	if s.rnd == nil {
		s.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if s.starter == nil {
		s.starter = &ExecStarter{}
		s.ownsStarter = true
	}
	if err := validate("", opts.Functions, opts); err != nil {
		return nil, err
	}
	if opts.ReapOrphans {
		grace := opts.OrphanGrace
		if grace <= 0 {
			grace = s.opts.StopTimeout
		}
		s.orphans = newOrphans(s.log, s.clk, grace)
	}
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Run supervises until ctx ends, then stops every child (each finishes
// its current job for up to StopTimeout, then its group is killed) and
// returns when all are gone. Run may be called once.
func (s *Supervisor) Run(ctx context.Context) error {
	first := false
	s.startOnce.Do(func() { first = true })
	if !first {
		return errors.New("supervise: Run called twice")
	}
	close(s.started)
	defer func() {
		if c, ok := s.starter.(*ExecStarter); ok && s.ownsStarter {
			c.Close()
		}
	}()
	bgCtx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { defer bg.Done(); s.ticker(bgCtx) }()
	if s.opts.Backlog != nil {
		bg.Add(1)
		go func() { defer bg.Done(); s.poller(bgCtx) }()
	}
	for _, f := range s.opts.Functions {
		s.addGroup(f)
	}
	ctxDone := ctx.Done()
	for {
		for len(s.later) > 0 {
			f := s.later[0]
			s.later = s.later[1:]
			f()
		}
		if s.stopping && s.liveChildren() == 0 {
			break
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			s.shutdown()
		case f := <-s.events:
			f()
		}
	}
	close(s.done)
	cancel()
	bg.Wait()
	s.wg.Wait()
	if s.orphans != nil {
		s.orphans.stop() // the children are gone: whatever is left was theirs
	}
	s.removeCgroups()
	return nil
}

func (s *Supervisor) liveChildren() int {
	n := 0
	for _, g := range s.groups {
		n += len(g.children)
	}
	return n
}

// send queues f for the loop; it gives up when the loop has exited.
func (s *Supervisor) send(f func()) bool {
	select {
	case s.events <- f:
		return true
	case <-s.done:
		return false
	}
}

// call runs f in the loop and waits for it.
func (s *Supervisor) call(ctx context.Context, f func() error) error {
	select {
	case <-s.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	errc := make(chan error, 1)
	select {
	case s.events <- func() { errc <- f() }:
	case <-s.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) ticker(ctx context.Context) {
	t := s.clk.NewTimer(s.opts.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			// The RSS of command children is read here, off the loop,
			// and orphans are looked for: one pass over /proc for all.
			// With orphans, the pass comes before the children's pids
			// are asked for, so that every child in it is known.
			var procs procTable
			if s.orphans != nil {
				procs = scanTree(os.Getpid())
			}
			var roots []int
			var groups map[int]*cgroup.Group
			var known map[int]bool
			if s.call(ctx, func() error {
				roots, groups = s.commandPids()
				if s.orphans != nil {
					known = s.childPids()
				}
				return nil
			}) != nil {
				return
			}
			var rss map[int]int64
			if len(roots) > 0 {
				if procs == nil {
					procs = scanTree(os.Getpid())
				}
				rss = treeRSS(procs, roots)
			}
			for pid, g := range groups {
				if ws, err := g.WorkingSet(); err == nil {
					if rss == nil {
						rss = map[int]int64{}
					}
					rss[pid] = ws
				}
			}
			if s.orphans != nil {
				s.orphans.sweep(procs, known)
			}
			if !s.send(func() { s.tick(rss) }) {
				return
			}
			t.Reset(s.opts.TickInterval)
		}
	}
}

func (s *Supervisor) poller(ctx context.Context) {
	t := s.clk.NewTimer(s.opts.ScaleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		qctx, cancel := context.WithTimeout(ctx, s.opts.ScaleInterval+5*time.Second)
		backlog, err := s.opts.Backlog(qctx)
		cancel()
		if err != nil {
			s.log.WithError(err).Warn("backlog poll failed")
		} else if !s.send(func() { s.scale(backlog) }) {
			return
		}
		t.Reset(s.opts.ScaleInterval)
	}
}

// debug says whether debug entries are logged, so that the per-job ones
// are not built for nothing.
func (s *Supervisor) debug() bool {
	switch l := s.log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

func (s *Supervisor) logc(c *child) logrus.FieldLogger {
	return s.log.WithFields(logrus.Fields{"function": c.g.spec.Name, "pid": c.pid, "child": c.id})
}

// transition is the one place a child changes state.
func (s *Supervisor) transition(c *child, to State, reason string) {
	from := c.state
	c.state, c.since = to, s.clk.Now()
	l := s.logc(c).WithFields(logrus.Fields{"from": from.String(), "state": to.String()})
	if reason != "" {
		l = l.WithField("reason", reason)
	}
	if to == StateFatal {
		l.Error("child state")
	} else {
		l.Info("child state")
	}
}

// ----- groups and reconciliation -----

func (s *Supervisor) addGroup(f FunctionSpec) *group {
	g := &group{spec: f}
	g.desired = f.Count
	if f.autoscaled() {
		g.desired = f.Min
	}
	s.groups[f.Name] = g
	s.stats(f.Name) // the function shows in Metrics from the start
	s.log.WithFields(logrus.Fields{"function": f.Name, "count": g.desired}).Info("function added")
	s.reconcile(g)
	return g
}

// active are the children that count towards desired: not retiring and
// not being replaced.
func (g *group) active() []*child {
	var out []*child
	for _, c := range g.children {
		if !c.retiring && c.replacedBy == nil {
			out = append(out, c)
		}
	}
	return out
}

func (s *Supervisor) reconcile(g *group) {
	if s.stopping {
		return
	}
	want := g.desired
	if g.stopped || g.removed {
		want = 0
	}
	act := g.active()
	// Too few: start more.
	for i := len(act); i < want; i++ {
		s.startNew(g, nil)
	}
	// Too many: retire the surplus, outdated and idle ones first.
	if len(act) > want {
		sort.SliceStable(act, func(i, j int) bool { return retirePriority(act[i], g) < retirePriority(act[j], g) })
		for _, c := range act[:len(act)-want] {
			s.retire(c, "scale down")
		}
		act = act[len(act)-want:]
	}
	// Roll: replace one outdated or recycled child at a time.
	for _, c := range g.children {
		if c.replacedBy != nil {
			return // a replacement is under way
		}
	}
	for _, c := range act {
		if c.gen != g.gen || c.recycleWhy != "" {
			if c.state != StateRunning {
				// Nothing to keep serving: replace in place.
				why := c.recycleWhy
				if why == "" {
					why = "reload"
				}
				s.retire(c, why)
				s.startNew(g, nil)
				continue
			}
			s.startNew(g, c)
			return
		}
	}
}

func retirePriority(c *child, g *group) int {
	switch {
	case c.gen != g.gen:
		return 0
	case c.state != StateRunning:
		return 1
	case len(c.current) == 0:
		return 2
	}
	return 3
}

func (s *Supervisor) startNew(g *group, replaces *child) {
	s.nextID++
	c := &child{id: s.nextID, g: g, gen: g.gen, current: map[string]time.Time{}}
	g.children = append(g.children, c)
	if replaces != nil {
		replaces.replacedBy = c
		s.logc(replaces).WithFields(logrus.Fields{"reason": replaces.recycleWhy, "replacement": c.id}).Info("starting a replacement")
	}
	s.spawn(c)
}

// spawn starts c's process.
func (s *Supervisor) spawn(c *child) {
	spec := c.g.spec
	path := spec.Path
	if path == "" {
		path = s.opts.Executable
	}
	c.pid = 0
	c.current = map[string]time.Time{}
	c.rss = 0
	c.heartbeat = time.Time{}
	c.jobsDone = 0
	c.recycleWhy = ""
	out := &lineLogger{log: s.log, fields: logrus.Fields{"function": spec.Name, "child": c.id, "stream": "stdout"},
		hub: s.logs, fn: spec.Name, child: c.id, stream: "stdout"}
	errw := &lineLogger{log: s.log, fields: logrus.Fields{"function": spec.Name, "child": c.id, "stream": "stderr"},
		hub: s.logs, fn: spec.Name, child: c.id, stream: "stderr"}
	c.command = spec.Command
	var cg *cgroup.Group
	if s.opts.Cgroups != nil {
		var err error
		if cg, err = s.opts.Cgroups.NewChild(); err != nil {
			// Measured by its process tree instead.
			s.log.WithError(err).WithField("function", spec.Name).Error("child cgroup")
		}
	}
	proc, err := s.starter.Start(ChildSpec{
		Function: spec.Name, Path: path, Args: spec.Args, Env: spec.Env, Dir: spec.Dir, User: spec.User,
		Stdout: out, Stderr: errw, NoReportPipe: spec.Command, Cgroup: cg,
	})
	now := s.clk.Now()
	c.started = now
	c.idleSince = now
	if err != nil {
		s.log.WithError(err).WithField("function", spec.Name).Error("child start failed")
		c.lastExit = "start: " + err.Error()
		s.removeCgroup(cg)
		s.failed(c)
		return
	}
	c.proc, c.pid, c.cgroup = proc, proc.Pid(), cg
	out.setPid(c.pid)
	errw.setPid(c.pid)
	c.lifetime = lifetime(spec, s.rnd)
	s.transition(c, StateStarting, "")
	s.watch(c, proc)
	if c.command {
		s.readyAfter(c, proc)
	}
}

// lifetime draws the lifetime of a new child: MaxLifetime plus a random
// splay of 0..LifetimeSplay (default 0..10% of MaxLifetime); 0: none.
func lifetime(spec FunctionSpec, rnd *rand.Rand) time.Duration {
	if spec.MaxLifetime <= 0 {
		return 0
	}
	splay := spec.MaxLifetime / 10
	if spec.LifetimeSplay > 0 {
		splay = spec.LifetimeSplay
	}
	return spec.MaxLifetime + time.Duration(rnd.Int64N(int64(splay)+1))
}

// readyAfter makes a command child, which sends no ready report,
// running once it has stayed up ReadyAfter.
func (s *Supervisor) readyAfter(c *child, proc Process) {
	d := c.g.spec.ReadyAfter
	if d == 0 {
		d = time.Second
	}
	f := func() {
		if c.proc == proc && c.state == StateStarting {
			s.ready(c)
		}
	}
	if d < 0 {
		// Not now: spawn may run inside reconcile, which ready calls.
		s.later = append(s.later, f)
		return
	}
	s.setTimer(c, d, f)
}

// ready: c, starting, serves now.
func (s *Supervisor) ready(c *child) {
	s.transition(c, StateRunning, "")
	c.idleSince = s.clk.Now()
	s.childRunning(c)
}

// watch starts the two goroutines that own a process: its report reader
// and its Wait.
func (s *Supervisor) watch(c *child, proc Process) {
	readerDone := make(chan struct{})
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		defer close(readerDone)
		err := readReports(proc.Reports(), func(ms []Message) {
			s.send(func() {
				for _, m := range ms {
					s.report(c, proc, m)
				}
			})
		})
		if err != nil && !errors.Is(err, os.ErrClosed) {
			s.send(func() { s.logc(c).WithError(err).Warn("report pipe") })
		}
	}()
	go func() {
		defer s.wg.Done()
		err := proc.Wait()
		held := proc.HeldJobs()
		// Whatever the child left in its group (job executables) goes too.
		_ = proc.KillGroup()
		select {
		case <-readerDone:
		case <-time.After(time.Second): // a grandchild holds the pipe
		}
		_ = proc.CloseReports()
		<-readerDone
		s.send(func() { s.exited(c, proc, err, held) })
	}()
}

func (s *Supervisor) report(c *child, proc Process, m Message) {
	if c.proc != proc {
		return // from an earlier run of the slot
	}
	now := s.clk.Now()
	switch m.Type {
	case MsgReady:
		if c.state == StateStarting {
			s.ready(c)
		}
	case MsgHeartbeat:
		c.rss = m.RSS
		c.heartbeat = now
	case MsgJobStart:
		at := now
		if m.At > 0 {
			at = time.Unix(0, m.At)
		}
		c.current[m.Handle] = at
		if s.debug() {
			s.logc(c).WithField("job_handle", m.Handle).Debug("job started")
		}
	case MsgJobEnd:
		since, known := c.current[m.Handle]
		dur := now.Sub(since)
		if m.Dur > 0 { // the child's measure; its job_start may not have been sent
			dur, known = time.Duration(m.Dur), true
		}
		// The child logs a failure itself (at warning level, with the
		// error), and its line reaches the log through lineLogger: the
		// report adds it only at debug level, so that it is logged once.
		if s.debug() {
			l := s.logc(c).WithFields(logrus.Fields{"job_handle": m.Handle, "ok": m.OK})
			if known {
				l = l.WithField("duration", dur.String())
			}
			if m.Error != "" {
				l = l.WithField("error", m.Error)
			}
			l.Debug("job ended")
		}
		st := s.stats(c.g.spec.Name)
		if known {
			st.observe(dur)
		}
		if m.OK {
			st.jobs[OutcomeCompleted]++
		} else {
			st.jobs[OutcomeFailed]++
		}
		delete(c.current, m.Handle)
		c.jobsDone++
		if !m.OK {
			c.failures++
		}
		if len(c.current) == 0 {
			c.idleSince = now
		}
	}
	s.checkRecycle(c, now)
}

// childRunning: a new child serves; the child it replaces may go.
func (s *Supervisor) childRunning(c *child) {
	g := c.g
	for _, old := range g.children {
		if old.replacedBy == c {
			why := old.recycleWhy
			if why == "" {
				why = "reload"
			}
			s.retire(old, why)
		}
	}
	s.reconcile(g)
}

func (s *Supervisor) checkRecycle(c *child, now time.Time) {
	if c.state != StateRunning || c.retiring || c.replacedBy != nil || c.recycleWhy != "" || s.stopping {
		return
	}
	spec := c.g.spec
	why := ""
	switch {
	case spec.MaxJobs > 0 && c.jobsDone >= spec.MaxJobs:
		why = "max_jobs"
	case spec.MemoryLimit > 0 && c.rss > spec.MemoryLimit:
		why = "memory_limit"
	case c.lifetime > 0 && now.Sub(c.started) >= c.lifetime:
		why = "max_lifetime"
	}
	maxIdle := spec.MaxIdle
	if maxIdle == 0 && spec.autoscaled() {
		maxIdle = 60 * time.Second
	}
	if why == "" && maxIdle > 0 && len(c.current) == 0 && now.Sub(c.idleSince) >= maxIdle {
		g := c.g
		if spec.autoscaled() && len(g.active()) > spec.Min {
			g.desired = max(spec.Min, len(g.active())-1)
			s.retire(c, "max_idle")
			return
		}
		if !spec.autoscaled() && !c.command { // a command's idleness is unknown
			why = "max_idle"
		}
	}
	if why == "" {
		return
	}
	c.recycleWhy = why
	s.logc(c).WithFields(logrus.Fields{"reason": why, "jobs_done": c.jobsDone, "rss": c.rss}).Info("recycling child")
	s.reconcile(c.g)
	if why == "max_jobs" || why == "memory_limit" {
		// A limit: the child stops taking jobs now (it finishes the one
		// it holds); its replacement is already starting.
		s.retire(c, why)
		s.reconcile(c.g)
	}
}

// commandPids returns the pids of the command children's processes:
// those without a cgroup, and the cgroups of the others by pid.
func (s *Supervisor) commandPids() ([]int, map[int]*cgroup.Group) {
	var pids []int
	var groups map[int]*cgroup.Group
	for _, g := range s.groups {
		for _, c := range g.children {
			switch {
			case !c.command || c.proc == nil:
			case c.cgroup != nil:
				if groups == nil {
					groups = map[int]*cgroup.Group{}
				}
				groups[c.pid] = c.cgroup
			default:
				pids = append(pids, c.pid)
			}
		}
	}
	return pids, groups
}

// childPids returns the pids of every child's process.
func (s *Supervisor) childPids() map[int]bool {
	pids := map[int]bool{}
	for _, g := range s.groups {
		for _, c := range g.children {
			if c.proc != nil {
				pids[c.pid] = true
			}
		}
	}
	return pids
}

// tick checks hung children and recycling, and removes the cgroups of
// ended children that have emptied since; rss holds the memory of the
// command children, by pid: their cgroup's working set, or the RSS of
// their process tree.
func (s *Supervisor) tick(rss map[int]int64) {
	s.retryCgroups()
	now := s.clk.Now()
	for _, g := range s.groups {
		for _, c := range append([]*child(nil), g.children...) {
			if v, ok := rss[c.pid]; ok && c.command && c.proc != nil {
				c.rss = v
			}
			if hb := s.opts.HeartbeatTimeout; hb > 0 && c.proc != nil && c.state == StateRunning &&
				!c.heartbeat.IsZero() && now.Sub(c.heartbeat) > hb {
				s.logc(c).WithField("silent", now.Sub(c.heartbeat).String()).Error("child hung (no heartbeat): killing its group")
				c.heartbeat = time.Time{}
				_ = c.proc.KillGroup()
				continue
			}
			s.checkRecycle(c, now)
		}
	}
}

// scale applies a backlog sample to the autoscaled functions.
func (s *Supervisor) scale(backlog map[string]int) {
	for _, g := range s.groups {
		spec := g.spec
		if !spec.autoscaled() || g.stopped || g.removed || s.stopping {
			continue
		}
		queued := backlog[spec.Name]
		th := max(spec.ScaleThreshold, DefaultScaleThreshold)
		need := min(spec.Max, (queued+th-1)/th)
		if need > g.desired {
			s.log.WithFields(logrus.Fields{"function": spec.Name, "backlog": queued, "from": g.desired, "to": need}).Info("scaling up")
			g.desired = need
			s.reconcile(g)
		}
		// Busy children are not idle: a backlog keeps them.
		if queued > 0 {
			now := s.clk.Now()
			for _, c := range g.children {
				c.idleSince = now
			}
		}
	}
}

// retire asks c to exit for good (it is not restarted).
func (s *Supervisor) retire(c *child, why string) {
	if c.retiring {
		return
	}
	c.retiring = true
	s.stopChild(c, why)
}

// stopChild asks c's process to finish its job and exit; its group is
// killed when the grace period is over.
func (s *Supervisor) stopChild(c *child, why string) {
	switch c.state {
	case StateStarting, StateRunning:
		grace := c.g.spec.Grace
		if grace <= 0 || s.stopping && grace > s.opts.StopTimeout {
			grace = s.opts.StopTimeout // a full stop takes at most StopTimeout
		}
		s.transition(c, StateStopping, why)
		_ = c.proc.Signal(syscall.SIGTERM)
		proc := c.proc
		s.setTimer(c, grace, func() {
			if c.proc == proc && c.state == StateStopping {
				s.logc(c).WithField("grace", grace.String()).Warn("child did not exit in time: killing its group")
				_ = proc.KillGroup()
			}
		})
	case StateStopping:
	default: // backoff, fatal, stopped: no process
		s.stopTimer(c)
		s.transition(c, StateExited, why)
		s.remove(c)
	}
}

func (s *Supervisor) setTimer(c *child, d time.Duration, f func()) {
	s.stopTimer(c)
	c.timerSeq++
	seq := c.timerSeq
	c.timer = s.clk.AfterFunc(d, func() {
		s.send(func() {
			if c.timerSeq == seq {
				c.timer = nil
				f()
			}
		})
	})
}

func (s *Supervisor) stopTimer(c *child) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.timerSeq++
}

func (s *Supervisor) remove(c *child) {
	g := c.g
	for i, x := range g.children {
		if x == c {
			g.children = append(g.children[:i], g.children[i+1:]...)
			break
		}
	}
	// A child whose replacement vanished counts as active again.
	for _, x := range g.children {
		if x.replacedBy == c {
			x.replacedBy = nil
		}
	}
	if g.removed && len(g.children) == 0 && s.groups[g.spec.Name] == g {
		delete(s.groups, g.spec.Name)
		s.log.WithField("function", g.spec.Name).Info("function removed")
	}
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// exited handles the end of c's process; held are the jobs its job
// table says it held.
func (s *Supervisor) exited(c *child, proc Process, err error, held []string) {
	if c.proc != proc {
		return
	}
	s.stopTimer(c)
	c.lastExit = exitString(err)
	c.proc = nil
	s.removeCgroup(c.cgroup)
	c.cgroup = nil
	// Lost: the jobs held at the end, known from job_start messages or
	// only from the table (their messages were still waiting).
	lost := make(map[string]bool, len(c.current)+len(held))
	for h := range c.current {
		lost[cutHandle(h)] = true
	}
	for _, h := range held {
		lost[h] = true
	}
	if n := len(lost); n > 0 {
		s.stats(c.g.spec.Name).jobs[OutcomeLost] += uint64(n)
	}
	c.current = map[string]time.Time{}
	s.logc(c).WithFields(logrus.Fields{"exit": c.lastExit, "jobs_done": c.jobsDone}).Info("child exited")
	if c.retiring || c.replacedBy != nil || s.stopping || c.g.removed || c.g.stopped {
		s.transition(c, StateExited, c.lastExit)
		s.remove(c)
		s.reconcile(c.g)
		return
	}
	if err == nil && c.g.spec.MaxJobs > 0 && c.jobsDone >= c.g.spec.MaxJobs {
		// The child enforced max_jobs itself and exited cleanly.
		c.recycleWhy = "max_jobs"
	}
	if c.recycleWhy != "" {
		// Asked to recycle but exited on its own: start again at once.
		s.transition(c, StateExited, c.lastExit)
		s.remove(c)
		s.reconcile(c.g)
		return
	}
	s.failed(c)
}

// failed puts c into backoff (or fatal) after an unexpected exit or a
// failed start.
func (s *Supervisor) failed(c *child) {
	now := s.clk.Now()
	if !c.started.IsZero() && c.proc == nil && c.pid != 0 && now.Sub(c.started) >= s.opts.Backoff.Stable {
		c.attempt = 0
	}
	c.attempt++
	c.restarts++
	s.stats(c.g.spec.Name).restarts++
	spec := c.g.spec
	if spec.FatalAfter > 0 && c.attempt > spec.FatalAfter {
		s.transition(c, StateFatal, c.lastExit)
		return
	}
	d := s.opts.Backoff.Delay(c.attempt, s.rnd)
	s.transition(c, StateBackoff, fmt.Sprintf("%s; restart in %v", c.lastExit, d.Round(time.Millisecond)))
	s.setTimer(c, d, func() {
		if c.state == StateBackoff && !c.retiring && !s.stopping {
			s.spawn(c)
		}
	})
}

// shutdown begins stopping every child.
func (s *Supervisor) shutdown() {
	s.stopping = true
	s.log.WithField("stop_timeout", s.opts.StopTimeout.String()).Info("stopping all children")
	for _, g := range s.groups {
		for _, c := range append([]*child(nil), g.children...) {
			s.retire(c, "shutdown")
		}
	}
}
