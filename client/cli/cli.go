// Package cli is gclient's command logic, below its command line: submit
// one job (in the background, or in the foreground streaming its
// result); submit a JSON-lines batch file, pipelined, with a progress bar
// on a terminal and a run of lines failing alike folded into one report;
// a job's status, ping and the admin commands, each printed as a table or
// as JSON; and the classification of errors into gclient's exit codes.
//
// cmd/gclient declares the commands and flags and calls App's methods.
// The package writes only to the streams it is given, keeps no global
// state and never exits the process: Report turns an error into the
// final message and the exit code.
package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/clock"
)

// App runs gclient's commands against the configured servers. Set the
// streams; the other fields have defaults.
type App struct {
	// Servers are the job servers, host[:port].
	Servers []string
	// Timeout bounds a whole command; 0 (default) lets each command
	// take its own default (none for a foreground or batch submit).
	Timeout time.Duration
	// DialTimeout bounds each connection attempt. 0 (default) means
	// client.DefaultDialTimeout.
	DialTimeout time.Duration
	// Stdin is read for the payload "-"; Stdout receives results,
	// Stderr progress, warnings and errors. Required.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Clock tells the time of --at +DURATION, batch rates and ping
	// round trips. Default: the wall clock.
	Clock clock.Clock
}

// Default timeouts of the commands, when App.Timeout is 0.
const (
	backgroundTimeout = 30 * time.Second // submit without --wait or --batch
	statusTimeout     = 10 * time.Second // status, and admin on each server
	pingTimeout       = 5 * time.Second  // ping, on each server
)

func (a *App) now() time.Time {
	if a.Clock == nil {
		return time.Now()
	}
	return a.Clock.Now()
}

// dial connects to servers with the configured dial timeout.
func (a *App) dial(servers []string) (*client.Client, error) {
	return client.New(servers, client.WithDialTimeout(a.DialTimeout))
}

func (a *App) client() (*client.Client, error) { return a.dial(a.Servers) }

// ctx applies Timeout (or def when it is unset) to ctx.
func (a *App) ctx(ctx context.Context, def time.Duration) (context.Context, context.CancelFunc) {
	d := a.Timeout
	if d <= 0 {
		d = def
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
