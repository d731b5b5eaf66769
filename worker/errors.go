package worker

import (
	"errors"
	"fmt"
)

// Errors returned by the worker.
var (
	// ErrNoServers: Options.Servers is empty.
	ErrNoServers = errors.New("worker: no servers configured")
	// ErrNoFunctions: Options.Functions is empty.
	ErrNoFunctions = errors.New("worker: no functions configured")
	// ErrConnClosed: the connection that assigned the job is gone, so its
	// packets cannot be sent; the server requeues the job.
	ErrConnClosed = errors.New("worker: connection to the server is closed")
	// ErrDrainTimeout: Run gave up waiting for running jobs after the
	// context was cancelled (Options.DrainTimeout).
	ErrDrainTimeout = errors.New("worker: running jobs did not finish within the drain timeout")
	// ErrNoAnswer: a server did not answer a grab within
	// Options.GrabTimeout; its connection is made again.
	ErrNoAnswer = errors.New("worker: no answer to a grab in time")
	// ErrAlreadyRunning: Run was called twice.
	ErrAlreadyRunning = errors.New("worker: Run called twice")
)

// ExceptionError marks a job failure to report as WORK_EXCEPTION. Its
// message is the exception payload the clients receive.
type ExceptionError struct{ Err error }

func (e *ExceptionError) Error() string { return e.Err.Error() }
func (e *ExceptionError) Unwrap() error { return e.Err }

// Exception wraps err so that the job fails with WORK_EXCEPTION carrying
// err's message, instead of a bare WORK_FAIL. It may itself be wrapped
// (fmt.Errorf("...: %w", worker.Exception(err))): the payload is still
// err's message alone. Exception(nil) returns nil.
func Exception(err error) error {
	if err == nil {
		return nil
	}
	return &ExceptionError{Err: err}
}

// Exceptionf is Exception(fmt.Errorf(format, args...)).
func Exceptionf(format string, args ...any) error {
	return &ExceptionError{Err: fmt.Errorf(format, args...)}
}

// PermanentError marks a failure that retrying cannot fix (bad input):
// the worker reports it at once, whatever FunctionConfig.Retries says.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the job is not retried. Permanent(nil)
// returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// CrashError marks a failure of the machinery that runs the job, not of
// the job: a resident handler process that died or broke its protocol
// while it ran the job. Such a job is retried at least once, whatever
// FunctionConfig.Retries says (and as many times as Retries allows).
type CrashError struct{ Err error }

func (e *CrashError) Error() string { return e.Err.Error() }
func (e *CrashError) Unwrap() error { return e.Err }

// Crash wraps err as a CrashError. Crash(nil) returns nil.
func Crash(err error) error {
	if err == nil {
		return nil
	}
	return &CrashError{Err: err}
}

// FailedError is the cause of a job ended by Worker.FailRunning; the job
// fails with WORK_EXCEPTION Reason.
type FailedError struct{ Reason string }

func (e *FailedError) Error() string { return e.Reason }

// ErrJobTimeout is the cause of a job that outlived its
// FunctionConfig.Timeout with TimeoutFails set: it fails with
// WORK_EXCEPTION "timeout".
var ErrJobTimeout = errors.New("timeout")

// PanicError is what a panicking handler's job fails with.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panic: %v", e.Value) }
