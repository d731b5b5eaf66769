package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

// Exit codes. Each failure a script may want to tell apart has its own.
const (
	exitOK          = 0
	exitFailed      = 1 // the job failed or raised an exception; some batch jobs failed; other errors
	exitUsage       = 2 // bad command line or configuration
	exitPriority    = 3 // unknown priority
	exitFile        = 4 // FILE missing or unreadable
	exitUnreachable = 5 // no server could be reached
	exitServer      = 6 // a server refused the request (ERROR packet or ERR reply)
	exitTimeout     = 7 // --timeout expired
)

const exitCodesHelp = `Exit codes:
  0  success
  1  the job failed or raised an exception (--wait), some --batch jobs failed
  2  bad command line or configuration
  3  unknown priority
  4  FILE is missing or unreadable
  5  no server could be reached
  6  a server refused the request (e.g. queue full, unknown job)
  7  --timeout expired`

// usageError is a bad command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// fileError is an input file that cannot be read.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string { return fmt.Sprintf("cannot read %s: %v", e.path, e.err) }
func (e *fileError) Unwrap() error { return e.err }

// jobError is a foreground job that failed; its message is already printed.
type jobError struct{ err error }

func (e *jobError) Error() string { return e.err.Error() }
func (e *jobError) Unwrap() error { return e.err }

// classify maps an error to its exit code and a one-line hint saying
// what to do about it.
func classify(err error) (int, string) {
	var ue *usageError
	var fe *fileError
	var pe *protocol.PriorityError
	var je *jobError
	var ep *protocol.ErrorPacket
	var ae *protocol.AdminError
	switch {
	case errors.As(err, &je):
		return exitFailed, ""
	case errors.As(err, &ue):
		return exitUsage, "run `gclient help` for usage"
	case errors.As(err, &pe):
		return exitPriority, "use --prio high, normal or low"
	case errors.As(err, &fe):
		return exitFile, "check the path and its permissions, or pass - to read the payload from stdin"
	case errors.Is(err, context.DeadlineExceeded):
		return exitTimeout, "the server did not finish in time; raise --timeout"
	case unreachable(err):
		return exitUnreachable, "start a job server there, or point --servers (or GCLIENT_SERVERS) at a running one"
	case errors.As(err, &ep), errors.As(err, &ae):
		return exitServer, "the server refused the request; see its reason above"
	}
	return exitFailed, ""
}

// unreachable reports whether every server failure in err is a failure to
// connect (or a server that stopped answering).
func unreachable(err error) bool {
	var leaves []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if u := errors.Unwrap(e); u != nil {
			if _, ok := e.(*client.ServerError); !ok {
				walk(u)
				return
			}
		}
		leaves = append(leaves, e)
	}
	walk(err)
	if len(leaves) == 0 {
		return false
	}
	for _, e := range leaves {
		var op *net.OpError
		if errors.As(e, &op) && op.Op == "dial" {
			continue
		}
		if errors.Is(e, client.ErrBackoff) || errors.Is(e, client.ErrTimeout) || errors.Is(e, client.ErrConnLost) {
			continue
		}
		return false
	}
	return true
}
