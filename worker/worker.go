// Package worker is the Gearman worker side of gworkerd: it connects to
// every configured job server, registers functions (CAN_DO or
// CAN_DO_TIMEOUT), takes jobs with GRAB_JOB_UNIQ, sleeps with PRE_SLEEP
// until a NOOP, runs handlers and reports WORK_DATA, WORK_STATUS,
// WORK_COMPLETE, WORK_FAIL and WORK_EXCEPTION. It reconnects with
// exponential backoff and re-registers when a server restarts, never holds
// more jobs than its concurrency across all servers, and drains on
// shutdown: it stops grabbing and finishes the jobs it holds.
//
// A handler sees a job through the Job interface; the jobs package builds
// handlers on it.
package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/protocol"
)

// Worker serves the functions of its Options against a set of servers.
// Create it with New, start it with Run.
type Worker struct {
	opts Options
	log  logrus.FieldLogger

	// slots holds one token per job held; its capacity is Concurrency.
	slots chan struct{}

	stopOnce sync.Once
	stopCh   chan struct{} // closed by StopGrabbing (or MaxJobs reached)

	abortOnce sync.Once
	abortCh   chan struct{} // closed when the drain timeout expires

	// jobs counts the job goroutines; Run waits for them.
	jobs sync.WaitGroup

	// jobCtx is the parent of every handler context: it outlives Run's
	// context (drain) and is cancelled only by the drain timeout. Set by
	// Run before any goroutine starts, read-only afterwards.
	jobCtx    context.Context
	jobCancel context.CancelFunc
	// runDone is Done of Run's context, for job goroutines (handOver).
	// Set by Run before any goroutine starts, read-only afterwards.
	runDone <-chan struct{}

	// idleLoops counts the server loops parked in acquire (session.park).
	idleLoops atomic.Int32

	// mu guards the fields below; it is never held while calling out.
	mu         sync.Mutex
	started    bool
	reserved   int           // grabs sent or jobs taken, counted against MaxJobs
	resChanged chan struct{} // closed by unreserve, for loops waiting on MaxJobs
	sessions   map[*session]struct{}
	running    map[*job]context.CancelCauseFunc // a job's FailRunning cancel; nil once used
	stats      Stats
	connected  map[string]bool
}

// Stats is a snapshot of a worker's activity, for heartbeats.
type Stats struct {
	// Taken counts jobs assigned; Done, Failed and Abandoned how they ended.
	Taken, Done, Failed, Abandoned int
	// Running lists the jobs held now, oldest first.
	Running []RunningJob
	// Connected counts the servers the worker is registered with.
	Connected int
	// LastActivity is when the last job started or ended (zero: none yet).
	LastActivity time.Time
}

// RunningJob is one job being run.
type RunningJob struct {
	Handle, Function, Unique, Server string
	Started                          time.Time
}

// New checks opts and returns a Worker. It does not connect: Run does.
func New(opts Options) (*Worker, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	servers := make([]string, len(opts.Servers))
	for i, s := range opts.Servers {
		servers[i] = protocol.ServerAddr(s)
	}
	opts.Servers = servers
	opts.ClientID = strings.ReplaceAll(opts.ClientID, " ", "_")
	return &Worker{
		opts:      opts,
		log:       opts.Logger,
		slots:     make(chan struct{}, opts.Concurrency),
		stopCh:    make(chan struct{}),
		abortCh:   make(chan struct{}),
		sessions:  make(map[*session]struct{}),
		running:   make(map[*job]context.CancelCauseFunc),
		connected: make(map[string]bool),
	}, nil
}

// StopGrabbing makes the worker take no new jobs; Run returns once the jobs
// it holds are finished and reported. It is how a supervisor recycles a
// worker between jobs. Safe to call at any time, more than once.
func (w *Worker) StopGrabbing() {
	w.stopOnce.Do(func() { close(w.stopCh) })
}

// FailRunning ends every job running now with WORK_EXCEPTION reason
// (not retried, not requeued): their handlers' contexts are cancelled
// with a *FailedError cause, and each job is reported once its handler
// has returned. It returns how many jobs it ended (a job is ended once). The worker goes on
// grabbing; a caller that wants the process gone calls StopGrabbing too.
func (w *Worker) FailRunning(reason string) int {
	w.mu.Lock()
	var cancels []context.CancelCauseFunc
	for j, cancel := range w.running {
		if cancel != nil {
			cancels = append(cancels, cancel)
			w.running[j] = nil // ended once
		}
	}
	w.mu.Unlock()
	for _, cancel := range cancels {
		cancel(&FailedError{Reason: reason})
	}
	return len(cancels)
}

// Stats returns a snapshot of the worker's activity.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Running = make([]RunningJob, 0, len(w.running))
	for j := range w.running {
		s.Running = append(s.Running, RunningJob{
			Handle: j.handle, Function: j.function, Unique: j.unique,
			Server: j.sess.addr, Started: j.started,
		})
	}
	sort.Slice(s.Running, func(a, b int) bool { return s.Running[a].Started.Before(s.Running[b].Started) })
	for _, ok := range w.connected {
		if ok {
			s.Connected++
		}
	}
	return s
}

// Run connects to every server and serves jobs until ctx is cancelled or
// StopGrabbing is called (or MaxJobs jobs were taken). Then it stops
// grabbing, waits for the running jobs to finish and be reported, closes
// the connections and returns nil. With Options.DrainTimeout it waits that
// long at most after ctx is cancelled: then it cancels the handlers'
// contexts, closes the connections (the servers requeue the jobs), waits
// for the handlers to return and returns ErrDrainTimeout.
// Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return ErrAlreadyRunning
	}
	w.started = true
	w.mu.Unlock()

	w.jobCtx, w.jobCancel = context.WithCancel(context.WithoutCancel(ctx))
	w.runDone = ctx.Done()
	defer w.jobCancel()

	var loops sync.WaitGroup
	for _, addr := range w.opts.Servers {
		loops.Add(1)
		go func() {
			defer loops.Done()
			w.serve(ctx, addr)
		}()
	}
	done := make(chan struct{})
	go func() {
		loops.Wait()
		w.jobs.Wait()
		close(done)
	}()

	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	w.log.WithField("running", len(w.Stats().Running)).Info("worker draining")
	if w.opts.DrainTimeout <= 0 {
		<-done
		return nil
	}
	t := w.opts.Clock.NewTimer(w.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C():
	}
	w.log.Warn("drain timeout: abandoning running jobs")
	w.abort()
	<-done
	return ErrDrainTimeout
}

// abort cancels every handler and closes every connection.
func (w *Worker) abort() {
	w.abortOnce.Do(func() {
		close(w.abortCh)
		w.jobCancel()
		w.mu.Lock()
		sessions := make([]*session, 0, len(w.sessions))
		for s := range w.sessions {
			sessions = append(sessions, s)
		}
		w.mu.Unlock()
		for _, s := range sessions {
			s.close()
		}
	})
}

func (w *Worker) stopping(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

func (w *Worker) emit(e Event) {
	if w.opts.OnEvent == nil {
		return
	}
	e.Time = w.opts.Clock.Now()
	w.opts.OnEvent(e)
}

// reserve books one job against MaxJobs before a GRAB. When the limit is
// booked it returns false and a channel closed at the next unreserve.
func (w *Worker) reserve() (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opts.MaxJobs > 0 && w.reserved >= w.opts.MaxJobs {
		if w.resChanged == nil {
			w.resChanged = make(chan struct{})
		}
		return false, w.resChanged
	}
	w.reserved++
	return true, nil
}

func (w *Worker) unreserve() {
	w.mu.Lock()
	w.reserved--
	if w.resChanged != nil {
		close(w.resChanged)
		w.resChanged = nil
	}
	w.mu.Unlock()
}

// startJob is called by a server loop when a job is assigned; the caller
// holds a slot, which the job goroutine releases.
func (w *Worker) startJob(s *session, p protocol.Packet) {
	j := &job{sess: s, started: w.opts.Clock.Now(), attempt: 1}
	switch p.Type {
	case protocol.JobAssignUniq:
		j.handle, j.function, j.unique = string(p.Arg(0)), string(p.Arg(1)), string(p.Arg(2))
		j.payload = p.Arg(3)
	default: // JOB_ASSIGN
		j.handle, j.function = string(p.Arg(0)), string(p.Arg(1))
		j.payload = p.Arg(2)
	}
	if j.payload == nil {
		j.payload = []byte{}
	}
	// The handler's context, which FailRunning may end from now on.
	j.ctx, j.fail = context.WithCancelCause(w.jobCtx)
	w.mu.Lock()
	w.running[j] = j.fail
	w.stats.Taken++
	w.stats.LastActivity = j.started
	limit := w.opts.MaxJobs > 0 && w.stats.Taken >= w.opts.MaxJobs
	w.mu.Unlock()
	if limit {
		w.log.WithField("max_jobs", w.opts.MaxJobs).Info("max jobs taken: no more grabbing")
		w.StopGrabbing()
	}
	fc := w.opts.Functions[j.function]
	timed := fc.Timeout > 0 && !fc.TimeoutFails
	if timed {
		s.timed.Add(1)
	}
	s.active.Add(1)
	w.jobs.Add(1)
	go func() {
		done := w.runJob(j, timed)
		s.active.Done()
		w.jobs.Done()
		if done != nil {
			// The job is reported and counted: the loop may take the
			// reply of the grab it sent now; its slot passed to that grab.
			close(done)
		} else {
			<-w.slots
		}
	}()
}

// handOver is called by a job goroutine about to report its result on s.
// When the worker goes on grabbing and s's loop may take more jobs, the
// job books a reservation for the next one and returns true: the caller
// then sends GRAB_JOB_UNIQ in the same write as its result, and its slot
// passes to that grab. With one server, that is whenever the loop is not
// asleep (PRE_SLEEP) or about to be (a NO_JOB came); with several, only
// when s's loop is the only one waiting for a slot, so that the servers
// take turns.
func (w *Worker) handOver(s *session) bool {
	select {
	case <-w.runDone:
		return false
	case <-w.stopCh:
		return false
	default:
	}
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.sleeping || s.noJob {
		return false
	}
	multi := len(w.opts.Servers) > 1
	if multi && (!s.parked || w.idleLoops.Load() != 1) {
		return false
	}
	if ok, _ := w.reserve(); !ok {
		return false
	}
	if multi { // the loop's turn is taken: it has a grab in flight now
		s.parked = false
		w.idleLoops.Add(-1)
	}
	return true
}

// report sends a job's result packet, with the next GRAB_JOB_UNIQ when
// handOver allows; then done is the channel runJob's caller closes once
// the job has ended (see session.grabs), else nil. The job's
// CAN_DO_TIMEOUT count (timed) is dropped before a grab goes out (the
// loop may PRE_SLEEP once its reply is in, after the server has the
// result), else after the write.
func (w *Worker) report(j *job, timed *bool, t protocol.Type, args ...[]byte) (done chan struct{}, err error) {
	s := j.sess
	if !w.handOver(s) {
		return nil, s.send(w.jobCtx, t, args...)
	}
	if *timed {
		s.timed.Add(-1)
		*timed = false
	}
	done = make(chan struct{})
	recorded, err := s.grab(w.jobCtx, protocol.AppendPacket(nil, protocol.Req, t, args...), done)
	if !recorded {
		// The loop sleeps, saw NO_JOB or left: the result went alone,
		// the slot stays with the job (which gives it back) and the
		// reservation goes.
		w.unreserve()
		return nil, err
	}
	if err != nil {
		// Recorded: the loop waits for the grab's reply; make sure it
		// sees the end of the connection instead (and releases the slot).
		s.close()
		return done, err
	}
	return done, nil
}

// logEnabled says whether log would emit at level; for loggers other than
// logrus's own it assumes so.
func logEnabled(log logrus.FieldLogger, level logrus.Level) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(level)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(level)
	}
	return true
}

// outcome is how a job ended.
type outcome int

const (
	outDone outcome = iota
	outFailed
	outAbandoned
)

// runJob runs j and reports how it ended. timed says j counts in
// j.sess.timed, which runJob drops. handed is not nil when the job's
// slot passed to a grab it sent (handOver): the caller closes it.
func (w *Worker) runJob(j *job, timed bool) (handed chan struct{}) {
	defer func() {
		if timed {
			j.sess.timed.Add(-1)
		}
	}()
	jobLog := func() logrus.FieldLogger {
		return w.log.WithFields(logrus.Fields{"server": j.sess.addr, "function": j.function, "job_handle": j.handle})
	}
	debug := logEnabled(w.log, logrus.DebugLevel)
	w.emit(Event{Kind: JobStarted, Server: j.sess.addr, Handle: j.handle, Function: j.function, Unique: j.unique, Attempt: 1})
	if debug {
		jobLog().Debug("job started")
	}

	fc, ok := w.opts.Functions[j.function]
	var (
		result []byte
		err    error
		ctx    = j.ctx
	)
	defer j.fail(nil)
	switch {
	case fc.Timeout > 0 && fc.TimeoutFails:
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, fc.Timeout, ErrJobTimeout)
		defer cancel()
	case fc.Timeout > 0:
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, localTimeout(fc.Timeout))
		defer cancel()
	}
	if !ok {
		err = Permanent(fmt.Errorf("worker: no handler for function %q", j.function))
	}
	for ok {
		result, err = w.call(ctx, fc.Handler, j)
		retry := j.attempt <= fc.Retries || (j.attempt == 1 && isCrash(err))
		if err == nil || !retry || ctx.Err() != nil || isPermanent(err) {
			break
		}
		jobLog().WithError(err).WithField("attempt", j.attempt).Info("job failed, retrying")
		w.emit(Event{Kind: JobRetry, Server: j.sess.addr, Handle: j.handle, Function: j.function, Unique: j.unique, Attempt: j.attempt, Err: err})
		j.attempt++
	}

	out := outDone
	var sendErr error
	var failed *FailedError
	switch {
	case errors.As(context.Cause(ctx), &failed) && w.jobCtx.Err() == nil:
		// FailRunning: the job is still ours, and fails for its reason.
		out = outFailed
		err = fmt.Errorf("worker: job %s: %w", j.handle, failed)
		handed, sendErr = w.report(j, &timed, protocol.WorkException, []byte(j.handle), []byte(failed.Error()))
	case errors.Is(context.Cause(ctx), ErrJobTimeout) && w.jobCtx.Err() == nil:
		// TimeoutFails: the job is still ours, and fails.
		out = outFailed
		err = fmt.Errorf("worker: job %s: %w after %v", j.handle, ErrJobTimeout, fc.Timeout)
		handed, sendErr = w.report(j, &timed, protocol.WorkException, []byte(j.handle), []byte(ErrJobTimeout.Error()))
	case ctx.Err() != nil:
		// Timed out (the server requeued the job) or aborted (we close the
		// connection so that it does): the job is no longer ours.
		out = outAbandoned
		err = fmt.Errorf("worker: job %s: %w", j.handle, context.Cause(ctx))
	case err == nil:
		handed, sendErr = w.report(j, &timed, protocol.WorkComplete, []byte(j.handle), result)
	default:
		out = outFailed
		if ex, isEx := asException(err); isEx {
			handed, sendErr = w.report(j, &timed, protocol.WorkException, []byte(j.handle), []byte(ex.Error()))
		} else {
			handed, sendErr = w.report(j, &timed, protocol.WorkFail, []byte(j.handle))
		}
	}
	if sendErr != nil {
		out = outAbandoned
		if err != nil {
			err = fmt.Errorf("%w (reporting it failed: %w)", err, sendErr)
		} else {
			err = fmt.Errorf("worker: report result: %w", sendErr)
		}
	}

	dur := w.opts.Clock.Now().Sub(j.started)
	w.mu.Lock()
	delete(w.running, j)
	w.stats.LastActivity = w.opts.Clock.Now()
	switch out {
	case outDone:
		w.stats.Done++
	case outFailed:
		w.stats.Failed++
	default:
		w.stats.Abandoned++
	}
	w.mu.Unlock()

	ev := Event{Server: j.sess.addr, Handle: j.handle, Function: j.function, Unique: j.unique, Attempt: j.attempt, Duration: dur, Err: err}
	switch out {
	case outDone:
		ev.Kind = JobDone
		if debug {
			jobLog().WithField("duration", dur).Debug("job done")
		}
	case outFailed:
		ev.Kind = JobFailed
		jobLog().WithField("duration", dur).WithError(err).Warn("job failed")
	default:
		ev.Kind = JobAbandoned
		jobLog().WithField("duration", dur).WithError(err).Warn("job abandoned, the server requeues it")
	}
	w.emit(ev)
	return handed
}

func asException(err error) (*ExceptionError, bool) {
	var ex *ExceptionError
	ok := errors.As(err, &ex)
	return ex, ok
}

func isCrash(err error) bool {
	var ce *CrashError
	return errors.As(err, &ce)
}

func isPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// call runs the handler once, turning a panic into an exception.
func (w *Worker) call(ctx context.Context, h Handler, j *job) (result []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			w.log.WithFields(logrus.Fields{"function": j.function, "job_handle": j.handle, "stack": string(pe.Stack)}).Error("handler panic")
			result, err = nil, Exception(pe)
		}
	}()
	return h.Run(ctx, j)
}

// timeoutGrace lets the server's CAN_DO_TIMEOUT timer fire before the
// handler's context ends, so that the server has requeued the job by the
// time this worker asks for another one.
const timeoutGrace = time.Second

// localTimeout is the handler's time limit for a CAN_DO_TIMEOUT of d: the
// server's limit (at least 1s, as gearmand raises it) plus timeoutGrace.
func localTimeout(d time.Duration) time.Duration {
	return max(d, time.Second) + timeoutGrace
}
