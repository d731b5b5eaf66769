package supervise

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/internal/sysuser"
)

// ChildSpec is what a Starter needs to start one child.
type ChildSpec struct {
	// Function names the function the child serves (for logs).
	Function string
	// Path is the executable; Args are the arguments after it.
	Path string
	Args []string
	// Env is added to the master's environment.
	Env []string
	// Dir is the working directory; empty means the master's.
	Dir string
	// User runs the child as this user (the master must be root).
	User string
	// Stdout and Stderr receive the child's output.
	Stdout, Stderr io.Writer
	// Cgroup, when set, is the memory cgroup the child is born in (see
	// ExecStarter). Default nil: the master's.
	Cgroup *cgroup.Group
	// NoReportPipe starts a plain program (FunctionSpec.Command): no
	// report pipe is made, nothing is passed as file descriptor 3 and
	// EnvReportFD is not set (an inherited one is removed). The
	// Process's Reports is then at EOF and CloseReports does nothing.
	NoReportPipe bool
}

// Process is a started child.
type Process interface {
	// Pid is the process id (and process group id).
	Pid() int
	// Reports is the read end of the child's report pipe (at EOF for a
	// child started without one).
	Reports() io.Reader
	// Wait waits for the exit; it is called once, by the child's owner
	// goroutine.
	Wait() error
	// Signal sends sig to the process only (not its group).
	Signal(sig os.Signal) error
	// KillGroup sends SIGKILL to the child's process group.
	KillGroup() error
	// CloseReports closes the read end of the report pipe.
	CloseReports() error
	// HeldJobs returns, once Wait has returned, the handles of the jobs
	// the child's job table says it held when it ended (nil without a
	// table), and releases the table. It is called once.
	HeldJobs() []string
}

// Starter starts children; tests replace it.
type Starter interface {
	Start(spec ChildSpec) (Process, error)
}

// ExecStarter re-executes a program as a child: in its own process
// group, with SIGKILL as its parent-death signal and the report pipe as
// file descriptor 3 (unless ChildSpec.NoReportPipe).
//
// A child given a ChildSpec.Cgroup is born in it, so that nothing it
// forks, however soon, is left outside: in cgroup v2 through clone3's
// CLONE_INTO_CGROUP (SysProcAttr.CgroupFD); in cgroup v1, which has no
// such flag but lets the threads of a process sit in different cgroups,
// the starter's thread moves into the cgroup for the fork and back
// after it (see startIn).
//
// Pdeathsig fires when the OS thread that forked the child exits, not
// when the process does, so every child is started from one goroutine
// locked to its thread for the life of the ExecStarter. Close ends that
// goroutine (and so kills the children still alive): call it after they
// are gone.
type ExecStarter struct {
	once sync.Once
	reqs chan startReq
	quit chan struct{}
	done chan struct{}
	// WaitDelay bounds how long Wait waits for the output copies after
	// the process exited (grandchildren holding the pipes). Default 2s.
	WaitDelay time.Duration
}

type startReq struct {
	cmd    *exec.Cmd
	cgroup *cgroup.Group // v1: the thread forks from there; nil: from its own
	reply  chan error
}

// ErrStarterClosed is returned by Start after Close.
var ErrStarterClosed = errors.New("supervise: starter closed")

func (s *ExecStarter) init() {
	s.once.Do(func() {
		s.reqs = make(chan startReq)
		s.quit = make(chan struct{})
		s.done = make(chan struct{})
		go s.loop()
	})
}

func (s *ExecStarter) loop() {
	// Never unlocked: the thread dies with this goroutine, which is the
	// moment the children are meant to die too.
	runtime.LockOSThread()
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			return
		case r := <-s.reqs:
			r.reply <- startIn(r.cmd, r.cgroup)
		}
	}
}

// Close stops the starter's thread. Children still alive get SIGKILL.
func (s *ExecStarter) Close() {
	s.init()
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// Start starts spec.
func (s *ExecStarter) Start(spec ChildSpec) (Process, error) {
	s.init()
	cmd := exec.Command(spec.Path, spec.Args...)
	var pr, pw, jf *os.File // the report pipe and the job table's fd; nil without
	var jobs *jobTable
	if spec.NoReportPipe {
		cmd.Env = append(withoutEnv(withoutEnv(os.Environ(), EnvReportFD), EnvJobsFD), spec.Env...)
	} else {
		var err error
		pr, pw, err = os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("supervise: report pipe: %w", err)
		}
		if jobs, jf, err = newJobTable(); err != nil {
			closeFiles(pr, pw)
			return nil, err
		}
		cmd.Env = append(append(os.Environ(), spec.Env...),
			EnvReportFD+"="+strconv.Itoa(ReportFD), EnvJobsFD+"="+strconv.Itoa(JobsFD))
		cmd.ExtraFiles = []*os.File{pw, jf}
	}
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.WaitDelay = s.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 2 * time.Second
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.User != "" {
		u, err := sysuser.Lookup(spec.User)
		if err != nil {
			closeFiles(pr, pw, jf)
			jobs.close()
			return nil, fmt.Errorf("supervise: start %s: %w", spec.Function, err)
		}
		attr.Credential = u.Credential() // supplementary groups included
	}
	var v1 *cgroup.Group
	if g := spec.Cgroup; g != nil && g.Version == cgroup.V2 {
		dir, err := os.Open(g.Dir)
		if err != nil {
			closeFiles(pr, pw, jf)
			jobs.close()
			return nil, fmt.Errorf("supervise: start %s: %w", spec.Function, err)
		}
		defer dir.Close() // the child is in it once Start returns
		attr.UseCgroupFD, attr.CgroupFD = true, int(dir.Fd())
	} else if g != nil {
		v1 = g
	}
	cmd.SysProcAttr = attr
	reply := make(chan error, 1)
	var err error
	select {
	case s.reqs <- startReq{cmd: cmd, cgroup: v1, reply: reply}:
		err = <-reply
	case <-s.quit:
		err = ErrStarterClosed
	}
	closeFiles(pw, jf) // the child holds its copies
	if err != nil {
		closeFiles(pr)
		jobs.close()
		return nil, fmt.Errorf("supervise: start %s: %w", spec.Function, err)
	}
	return &execProcess{cmd: cmd, reports: pr, jobs: jobs}, nil
}

// startIn starts cmd from the calling thread, which is locked to it (the
// starter's): in the cgroup v1 cgroup g when g is set. The thread moves
// into g (its tasks file), forks, and moves back to the cgroup it was
// in: the child is born in g, as CLONE_INTO_CGROUP does in v2. Only this
// thread moves; the Go runtime makes new threads from its template
// thread, not from a locked one, so none is born in g by the way. (Should
// the locked thread be the process's main thread, whose cgroup v1
// charges the process's memory to, what the master faults in during the
// fork is charged to g: a few pages, moved to the parent cgroup when g
// is removed.) When
// the thread cannot move, the child is moved after Start, which leaves a
// window of a few milliseconds in which what it forks stays outside; a
// child that cannot be moved at all is killed: it would escape
// memory_limit.
func startIn(cmd *exec.Cmd, g *cgroup.Group) error {
	if g == nil {
		return cmd.Start()
	}
	tid := syscall.Gettid()
	home, err := cgroup.Current(threadPaths(tid), cgroup.V1)
	if err == nil {
		err = g.AddThread(tid)
	}
	if err == nil {
		err = cmd.Start()
		// Back where it was a moment ago: this does not fail while the
		// cgroup exists, and the master's cgroup outlives its children.
		_ = home.AddThread(tid)
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := g.AddProc(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}

// threadPaths are the cgroup files of thread tid of this process.
func threadPaths(tid int) cgroup.Paths {
	p := cgroup.Host()
	p.Self = "/proc/self/task/" + strconv.Itoa(tid) + "/cgroup"
	return p
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// withoutEnv returns env without the variable key.
func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

type execProcess struct {
	cmd     *exec.Cmd
	reports *os.File  // nil without a report pipe
	jobs    *jobTable // nil without a report pipe
}

func (p *execProcess) HeldJobs() []string {
	defer p.jobs.close()
	return p.jobs.held()
}

func (p *execProcess) Pid() int                   { return p.cmd.Process.Pid }
func (p *execProcess) Wait() error                { return p.cmd.Wait() }
func (p *execProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *execProcess) Reports() io.Reader {
	if p.reports == nil {
		return eofReader{}
	}
	return p.reports
}

func (p *execProcess) CloseReports() error {
	if p.reports == nil {
		return nil
	}
	return p.reports.Close()
}

// eofReader is the report pipe of a child without one.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// KillGroup kills the child's process group and the groups of all its
// descendants (job executables run in process groups of their own), so
// that nothing the child started outlives it.
func (p *execProcess) KillGroup() error {
	pid := p.cmd.Process.Pid
	self := syscall.Getpgrp()
	groups := descendantGroups(pid)
	// The child first: killed before its job executables, it cannot
	// report their deaths as WORK_FAIL, and the server requeues the jobs.
	err := syscall.Kill(-pid, syscall.SIGKILL)
	for _, g := range groups {
		if g != pid && g != self && g > 1 {
			_ = syscall.Kill(-g, syscall.SIGKILL)
		}
	}
	return err
}
