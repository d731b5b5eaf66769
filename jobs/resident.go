package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/rawio"
	"github.com/gworkerd/gworkerd/worker"
)

// Resident is a worker.Handler that runs jobs on long-lived handler
// processes speaking the resident protocol (README.md): each process is
// started once, loads its code once and serves job after job. A Resident
// keeps a pool of idle handlers; a job takes one (or starts one) and gives
// it back when it ends, so that at most as many handlers run as jobs run
// at once.
//
// A handler that dies or breaks the protocol mid-job is dropped and the
// job fails with a worker.CrashError (the worker retries it at least
// once). When the job's context ends (timeout, hard stop) the handler's
// process group is killed and the next job gets a new handler.
type Resident struct {
	// Command is the handler's argv. Required.
	Command []string
	// Function is the function served, for logs, errors and the
	// GEARMAN_FUNCTION variable.
	Function string
	// Dir is the handlers' working directory. Default: gworkerd's.
	Dir string
	// Env is added to the worker's environment.
	Env []string
	// StartTimeout bounds the wait for a new handler's hello. Default 30s.
	StartTimeout time.Duration
	// StopTimeout is how long Close lets idle handlers exit after end of
	// file on their requests before their groups are killed. Default 5s.
	StopTimeout time.Duration
	// MaxFrame bounds a frame read from a handler. Default
	// DefaultMaxFrame (64 MiB).
	MaxFrame int
	// StderrTail is how much of a handler's stderr is kept for the error
	// of a handler that died. Default 2048 bytes.
	StderrTail int
	// Stdout and Stderr receive the handlers' output. Default: this
	// process's.
	Stdout, Stderr io.Writer
	// Logger receives the handlers' starts and exits. Default: discarded.
	Logger logrus.FieldLogger

	// Depth, when above 1, lets each handler take up to Depth jobs at
	// once (pipelined.go): the pool is then the handlers Start started,
	// each replaced when it dies.
	Depth int

	mu     sync.Mutex
	idle   []*handlerProc
	live   map[*handlerProc]struct{}
	slots  []*slot    // Depth > 1: one per handler
	freed  *sync.Cond // on mu: a slot has room again (Depth > 1)
	closed bool
	wg     sync.WaitGroup // the handlers' Wait goroutines
}

// ErrResidentClosed: Run after Close.
var ErrResidentClosed = errors.New("jobs: resident handler pool closed")

// handlerProc is one handler process. The job goroutine that took it
// from the pool owns req and rep; exited and waitErr belong to its Wait
// goroutine until exited is closed.
type handlerProc struct {
	cmd     *exec.Cmd
	req     *os.File      // our end of the handler's fd 3
	reqW    io.Writer     // writes req (rawio: no sysmon wake-ups)
	repFile *os.File      // our end of the handler's fd 4
	rep     *bufio.Reader // over repFile (rawio, likewise)
	wbuf    []byte        // the last J frame, reused
	stderr  *syncTail
	exited  chan struct{}
	waitErr error
	jobs    int
}

// syncTail is a tailBuffer safe for the exec copy goroutine and readers.
type syncTail struct {
	mu  sync.Mutex
	buf tailBuffer
	out io.Writer
}

func (t *syncTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	_, _ = t.buf.Write(p)
	t.mu.Unlock()
	if t.out != nil {
		_, _ = t.out.Write(p)
	}
	return len(p), nil
}

func (t *syncTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}

func (r *Resident) log() logrus.FieldLogger {
	if r.Logger != nil {
		return r.Logger
	}
	l := logrus.New()
	l.Out = io.Discard
	return l
}

// Start starts n handlers ahead of the first jobs, so that a handler
// whose code does not load is found before any job is taken. It returns
// the first start error.
func (r *Resident) Start(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		h, err := r.start(ctx)
		if err != nil {
			return err
		}
		if r.Depth > 1 {
			r.addSlot(h)
			continue
		}
		r.put(h)
	}
	return nil
}

// Run runs one job on an idle handler, or on a new one.
func (r *Resident) Run(ctx context.Context, job worker.Job) ([]byte, error) {
	if r.Depth > 1 {
		return r.runPipelined(ctx, job)
	}
	h, err := r.take(ctx)
	if err != nil {
		return nil, takeError(ctx, err)
	}
	res, err, reusable := r.serve(ctx, h, job)
	if reusable {
		r.put(h)
	} else {
		r.discard(h)
	}
	return res, err
}

// takeError is the error of a job that got no handler: a crash (the
// worker retries it) unless the pool is closed or the job is over.
func takeError(ctx context.Context, err error) error {
	if errors.Is(err, ErrResidentClosed) || ctx.Err() != nil {
		return err
	}
	return worker.Crash(worker.Exception(err))
}

// serve runs job on h. reusable is false when h must be dropped.
func (r *Resident) serve(ctx context.Context, h *handlerProc, job worker.Job) (res []byte, err error, reusable bool) {
	// A job whose context ends kills the handler: that unblocks both the
	// write below and the reads.
	stop := context.AfterFunc(ctx, func() { killProcGroup(h.cmd) })
	defer func() {
		if !stop() {
			reusable = false // killed as the job ended
		}
	}()

	h.wbuf = AppendJobFrame(h.wbuf[:0], JobFrame{
		Handle: job.Handle(), Function: job.Function(), Unique: job.Unique(),
		Attempt: job.Attempt(), Workload: job.Payload(),
	})
	_, werr := h.reqW.Write(h.wbuf) // one write; both writers write it all
	if cap(h.wbuf) > 1<<20 {
		h.wbuf = nil // do not keep a large workload's buffer
	}
	if werr != nil {
		return nil, r.died(ctx, h, "taking the job", werr), false
	}
	h.jobs++
	return r.await(ctx, h, job)
}

// await reads h's frames for job, relaying its progress, up to its
// result. reusable is false when h must be dropped.
func (r *Resident) await(ctx context.Context, h *handlerProc, job worker.Job) (res []byte, err error, reusable bool) {
	for {
		f, err := ReadFrame(h.rep, r.MaxFrame)
		if err != nil {
			return nil, r.died(ctx, h, "running the job", err), false
		}
		switch f.Type {
		case FrameStatus:
			num, den, perr := ParseStatus(f.Body)
			if perr != nil {
				return nil, r.broke(h, perr), false
			}
			r.relay(job.SendStatus(ctx, int(num), int(den)), job)
		case FrameData:
			r.relay(job.SendData(ctx, f.Body), job)
		case FrameWarning:
			r.relay(job.SendWarning(ctx, f.Body), job)
		case FrameComplete:
			return f.Body, nil, true
		case FrameFail:
			return nil, fmt.Errorf("jobs: %s: the handler failed the job", r.Function), true
		case FrameException:
			return nil, worker.Exception(errors.New(string(f.Body))), true
		default:
			return nil, r.broke(h, fmt.Errorf("%w: unexpected %q frame during a job", ErrFrame, f.Type)), false
		}
	}
}

// relay logs a progress packet that could not be sent; the job goes on
// (its result will meet the same fate and the worker reports it).
func (r *Resident) relay(err error, job worker.Job) {
	if err != nil {
		r.log().WithFields(logrus.Fields{"function": r.Function, "job_handle": job.Handle()}).WithError(err).Debug("progress not sent")
	}
}

// broke kills a handler that broke the protocol.
func (r *Resident) broke(h *handlerProc, err error) error {
	killProcGroup(h.cmd)
	r.log().WithFields(logrus.Fields{"function": r.Function, "pid": h.cmd.Process.Pid}).WithError(err).Error("resident handler broke the protocol: killed")
	return worker.Crash(worker.Exception(fmt.Errorf("resident handler broke the protocol: %w", err)))
}

// died builds the error of a job whose handler went away while doing
// what; on a cancelled ctx it is the cancellation.
func (r *Resident) died(ctx context.Context, h *handlerProc, what string, ioErr error) error {
	killProcGroup(h.cmd)
	if ctx.Err() != nil {
		<-h.exited
		return fmt.Errorf("jobs: %s: handler killed: %w", r.Function, context.Cause(ctx))
	}
	if errors.Is(ioErr, ErrFrame) {
		return r.broke(h, ioErr)
	}
	<-h.exited
	how := exitText(h.waitErr)
	if tail := h.stderr.String(); tail != "" {
		how += ": " + tail
	}
	r.log().WithFields(logrus.Fields{"function": r.Function, "pid": h.cmd.Process.Pid, "exit": exitText(h.waitErr), "jobs": h.jobs}).
		WithError(ioErr).Warn("resident handler died " + what)
	return worker.Crash(worker.Exception(fmt.Errorf("resident handler died mid-job: %s", how)))
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return "exit status " + strconv.Itoa(ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// take returns an idle handler, or starts one.
func (r *Resident) take(ctx context.Context) (*handlerProc, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrResidentClosed
	}
	for len(r.idle) > 0 {
		h := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		select {
		case <-h.exited: // died while idle
			r.mu.Unlock()
			r.discard(h)
			r.mu.Lock()
			continue
		default:
		}
		r.mu.Unlock()
		return h, nil
	}
	r.mu.Unlock()
	return r.start(ctx)
}

// put gives h back to the pool, or ends it when the pool is closed.
func (r *Resident) put(h *handlerProc) {
	r.mu.Lock()
	if !r.closed {
		r.idle = append(r.idle, h)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.end(h, r.stopTimeout())
}

// discard kills h and forgets it.
func (r *Resident) discard(h *handlerProc) {
	killProcGroup(h.cmd)
	<-h.exited
	r.forget(h)
}

func (r *Resident) forget(h *handlerProc) {
	r.mu.Lock()
	delete(r.live, h)
	r.mu.Unlock()
	h.req.Close()
	h.repFile.Close()
}

func (r *Resident) stopTimeout() time.Duration {
	if r.StopTimeout > 0 {
		return r.StopTimeout
	}
	return 5 * time.Second
}

// end asks h to exit (end of file on its requests) and kills its group
// if it has not within grace.
func (r *Resident) end(h *handlerProc, grace time.Duration) {
	h.req.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.exited:
	case <-t.C:
		r.log().WithFields(logrus.Fields{"function": r.Function, "pid": h.cmd.Process.Pid}).Warn("resident handler did not exit at end of input: killed")
	}
	killProcGroup(h.cmd) // and whatever it left in its group
	<-h.exited
	r.forget(h)
}

// Close ends every idle handler and makes the handlers still running a
// job end when their job does. Call it once the worker has returned.
func (r *Resident) Close() error {
	r.mu.Lock()
	r.closed = true
	idle := r.idle
	r.idle = nil
	var broken []*handlerProc
	for _, sl := range r.slots {
		switch {
		case sl.h == nil:
		case sl.broken:
			broken = append(broken, sl.h)
		default:
			idle = append(idle, sl.h)
		}
		sl.h = nil
	}
	r.slots = nil
	if r.freed != nil {
		r.freed.Broadcast()
	}
	r.mu.Unlock()
	for _, h := range broken {
		r.discard(h)
	}
	var wg sync.WaitGroup
	for _, h := range idle {
		wg.Add(1)
		go func() { defer wg.Done(); r.end(h, r.stopTimeout()) }()
	}
	wg.Wait()
	r.wg.Wait()
	return nil
}

// Pids returns the process ids of the live handlers, sorted by start.
func (r *Resident) Pids() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, 0, len(r.live))
	for h := range r.live {
		out = append(out, h.cmd.Process.Pid)
	}
	return out
}

// start starts one handler and waits for its hello.
func (r *Resident) start(ctx context.Context) (*handlerProc, error) {
	if len(r.Command) == 0 || r.Command[0] == "" {
		return nil, fmt.Errorf("jobs: %s: resident handler without a command", r.Function)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("jobs: %s: pipe: %w", r.Function, err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("jobs: %s: pipe: %w", r.Function, err)
	}
	tail := r.StderrTail
	if tail <= 0 {
		tail = 2048
	}
	stdout, stderr := r.Stdout, r.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	h := &handlerProc{
		cmd:     exec.Command(r.Command[0], r.Command[1:]...),
		req:     reqW,
		reqW:    rawOr(reqW),
		repFile: repR,
		rep:     bufio.NewReaderSize(rawOr(repR), 64<<10),
		stderr:  &syncTail{buf: tailBuffer{max: tail}, out: stderr},
		exited:  make(chan struct{}),
	}
	cmd := h.cmd
	cmd.Dir = r.Dir
	cmd.Env = append(residentEnviron(), r.Env...)
	cmd.Env = append(cmd.Env, "GEARMAN_FUNCTION="+r.Function, "GWORKERD_RESIDENT="+ResidentVersion)
	cmd.Stdout = stdout
	cmd.Stderr = h.stderr
	cmd.ExtraFiles = []*os.File{reqR, repW} // fd 3 and fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Start()
	reqR.Close() // the handler holds its copies
	repW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		return nil, fmt.Errorf("jobs: %s: start resident handler: %w", r.Function, startError(r.Command[0], err))
	}
	r.mu.Lock()
	if r.live == nil {
		r.live = map[*handlerProc]struct{}{}
	}
	r.live[h] = struct{}{}
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		h.waitErr = cmd.Wait()
		close(h.exited)
		// Unblock a reader: a process the handler left behind may hold
		// the reply pipe open.
		killProcGroup(cmd)
		_ = h.repFile.SetReadDeadline(time.Now())
	}()

	if err := r.hello(ctx, h); err != nil {
		r.discard(h)
		how := exitText(h.waitErr)
		if tail := h.stderr.String(); tail != "" {
			how += ": " + tail
		}
		return nil, fmt.Errorf("jobs: %s: resident handler %s did not start (%w; %s)", r.Function, r.Command[0], err, how)
	}
	r.log().WithFields(logrus.Fields{"function": r.Function, "pid": cmd.Process.Pid}).Debug("resident handler started")
	return h, nil
}

// hello waits for the handler's H frame.
func (r *Resident) hello(ctx context.Context, h *handlerProc) error {
	timeout := r.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	_ = h.repFile.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = h.repFile.SetReadDeadline(time.Now()) })
	defer stop()
	f, err := ReadFrame(h.rep, 4096)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-h.exited:
				return errors.New("it exited before its hello")
			default:
			}
			return fmt.Errorf("no hello within %v", timeout)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("it exited before its hello")
		}
		return err
	}
	if f.Type != FrameHello {
		return fmt.Errorf("%w: first frame is %q, want a hello", ErrFrame, f.Type)
	}
	if v, _, _ := strings.Cut(string(f.Body), " "); v != ResidentVersion {
		return fmt.Errorf("%w: hello %.40q: protocol version %q, want %s", ErrFrame, f.Body, v, ResidentVersion)
	}
	return h.repFile.SetReadDeadline(time.Time{})
}

// residentEnviron is the environment of a handler: gworkerd's, without
// what is meant for gworkerd's own children.
func residentEnviron() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "GWORKERD_CHILD=") || strings.HasPrefix(kv, "GWORKERD_REPORT_FD=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// rawOr returns the rawio.Conn of a pipe end, or f itself.
func rawOr(f *os.File) io.ReadWriter {
	if c, ok := rawio.New(f); ok {
		return c
	}
	return f
}

// killProcGroup sends SIGKILL to the process group of a started command.
func killProcGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
