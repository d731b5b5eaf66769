package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

// Exit codes. Each failure a script may want to tell apart has its own.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the job failed or raised an exception; some batch jobs failed; other errors
	ExitUsage       = 2 // bad command line or configuration
	ExitPriority    = 3 // unknown priority
	ExitFile        = 4 // FILE missing or unreadable
	ExitUnreachable = 5 // no server could be reached
	ExitServer      = 6 // a server refused the request (ERROR packet or ERR reply)
	ExitTimeout     = 7 // --timeout expired
)

// ExitCodesHelp lists the exit codes for gclient's help.
const ExitCodesHelp = `Exit codes:
  0  success
  1  the job failed or raised an exception (--wait), some --batch jobs failed
  2  bad command line or configuration
  3  unknown priority
  4  FILE is missing or unreadable
  5  no server could be reached
  6  a server refused the request (e.g. queue full, unknown job)
  7  --timeout expired`

// UsageError is a bad command line or configuration (ExitUsage).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

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

// Report prints err to w as gclient's last line, "gclient: " and the
// error, followed by a hint saying what to do about it, and returns the
// exit code. It prints nothing for nil (ExitOK) or for a failed job,
// whose message is already out.
func Report(w io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	code, hint := classify(err)
	if _, ok := err.(*jobError); !ok {
		msg := "gclient: " + oneLine(err.Error())
		if _, ok := err.(*UsageError); ok {
			msg = "gclient: " + strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n\n", "\n")
		}
		switch {
		case hint != "" && strings.Contains(msg, "\n"):
			msg += "\n" + hint
		case hint != "":
			msg += "; " + hint
		}
		fmt.Fprintln(w, msg)
	}
	return code
}

// oneLine joins the lines of a multi-line error (errors.Join).
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// classify maps an error to its exit code and a one-line hint saying
// what to do about it.
func classify(err error) (int, string) {
	var ue *UsageError
	var fe *fileError
	var pe *protocol.PriorityError
	var je *jobError
	var ep *protocol.ErrorPacket
	var ae *protocol.AdminError
	switch {
	case errors.As(err, &je):
		return ExitFailed, ""
	case errors.As(err, &ue):
		return ExitUsage, "run `gclient help` for usage"
	case errors.As(err, &pe):
		return ExitPriority, "use --prio high, normal or low"
	case errors.As(err, &fe):
		return ExitFile, "check the path and its permissions, or pass - to read the payload from stdin"
	case errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout, "the server did not finish in time; raise --timeout"
	case unreachable(err):
		return ExitUnreachable, "start a job server there, or point --servers (or GCLIENT_SERVERS) at a running one"
	case errors.As(err, &ep), errors.As(err, &ae):
		return ExitServer, "the server refused the request; see its reason above"
	}
	return ExitFailed, ""
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
