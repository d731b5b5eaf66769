package client

import (
	"errors"
	"fmt"
)

// Sentinel errors. Inspect them with errors.Is.
var (
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("client: closed")
	// ErrNoServers is returned by New when no server address is given.
	ErrNoServers = errors.New("client: no servers")
	// ErrConnLost reports that the connection carrying a request or a
	// foreground job broke before the reply or the job's end arrived. The
	// job may still run on the server.
	ErrConnLost = errors.New("client: connection lost")
	// ErrDetached ends a job whose events the caller stopped with Detach.
	ErrDetached = errors.New("client: job detached")
	// ErrJobFailed is the error of a job that ended with WORK_FAIL.
	ErrJobFailed = errors.New("client: job failed")
	// ErrTimeout reports a server that did not answer a request within
	// the request timeout (WithRequestTimeout).
	ErrTimeout = errors.New("client: server did not answer in time")
	// ErrBackoff reports a server skipped because it failed recently and
	// its retry time has not come.
	ErrBackoff = errors.New("client: server in backoff")
	// ErrOptions reports submit options that cannot be combined.
	ErrOptions = errors.New("client: incompatible submit options")
	// ErrProtocol reports a reply the client did not expect; the
	// connection is closed.
	ErrProtocol = errors.New("client: protocol error")
	// ErrUnknownServer is returned for a server address the Client was
	// not created with.
	ErrUnknownServer = errors.New("client: unknown server")
)

// ExceptionError is the error of a job that ended with WORK_EXCEPTION.
type ExceptionError struct {
	// Data is the exception payload sent by the worker.
	Data []byte
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("client: job exception: %q", e.Data)
}

// ServerError is one server's failure to serve a request. Errors that
// span several servers are errors.Join of ServerErrors.
type ServerError struct {
	Addr string
	Err  error
}

func (e *ServerError) Error() string { return "server " + e.Addr + ": " + e.Err.Error() }

func (e *ServerError) Unwrap() error { return e.Err }
