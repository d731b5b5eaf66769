package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// Job is one job assigned to the worker, as a handler sees it. Its methods
// are safe for concurrent use by the handler's goroutines.
//
// Whether the submitting client asked for exceptions is not visible to a
// worker: the server decides. A handler that returns an Exception makes the
// worker send WORK_EXCEPTION; the server turns it into WORK_FAIL for clients
// that did not enable the `exceptions` option.
type Job interface {
	// Handle is the server's job handle, such as "H:host:42".
	Handle() string
	// Function is the function name the job was submitted to.
	Function() string
	// Unique is the client's unique id; it may be empty.
	Unique() string
	// Payload is the workload. The handler must not modify it.
	Payload() []byte
	// Server is the address of the server that assigned the job.
	Server() string
	// Attempt is 1 on the first run and grows with each retry inside this
	// worker (FunctionConfig.Retries).
	Attempt() int
	// SendData sends WORK_DATA to the job's clients.
	SendData(ctx context.Context, data []byte) error
	// SendWarning sends WORK_WARNING to the job's clients.
	SendWarning(ctx context.Context, data []byte) error
	// SendStatus sends WORK_STATUS num/den (progress) to the job's clients.
	SendStatus(ctx context.Context, num, den int) error
}

// Handler runs jobs of one function. Run returns the result, sent as
// WORK_COMPLETE. An error fails the job: an error wrapping an Exception is
// sent as WORK_EXCEPTION with the exception's message, any other error as
// WORK_FAIL. A panic is recovered and reported as an exception. Run should
// return promptly when ctx is cancelled (timeout or a hard shutdown).
type Handler interface {
	Run(ctx context.Context, job Job) ([]byte, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, job Job) ([]byte, error)

// Run calls f(ctx, job).
func (f HandlerFunc) Run(ctx context.Context, job Job) ([]byte, error) { return f(ctx, job) }

// job is the Job given to handlers. Its fields are set before the handler
// starts and never change, except attempt (owned by the job goroutine).
type job struct {
	sess     *session
	handle   string
	function string
	unique   string
	payload  []byte
	attempt  int
	started  time.Time
	// ctx is the handler's context (a child of Worker.jobCtx); fail ends
	// it with a cause (FailRunning).
	ctx  context.Context
	fail context.CancelCauseFunc
}

func (j *job) Handle() string   { return j.handle }
func (j *job) Function() string { return j.function }
func (j *job) Unique() string   { return j.unique }
func (j *job) Payload() []byte  { return j.payload }
func (j *job) Server() string   { return j.sess.addr }
func (j *job) Attempt() int     { return j.attempt }

func (j *job) SendData(ctx context.Context, data []byte) error {
	return j.sess.send(ctx, protocol.WorkData, []byte(j.handle), data)
}

func (j *job) SendWarning(ctx context.Context, data []byte) error {
	return j.sess.send(ctx, protocol.WorkWarning, []byte(j.handle), data)
}

func (j *job) SendStatus(ctx context.Context, num, den int) error {
	return j.sess.send(ctx, protocol.WorkStatus, []byte(j.handle),
		[]byte(strconv.Itoa(num)), []byte(strconv.Itoa(den)))
}
