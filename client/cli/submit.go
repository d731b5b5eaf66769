package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

// SubmitFlags are the flags of `gclient submit`.
type SubmitFlags struct {
	Prio   string // high, normal or low, in any case
	Unique string // the unique id; "" for none
	At     string // when to run: RFC 3339, unix seconds or +DURATION; "" for now
	Wait   bool   // run in the foreground and stream the result
	Batch  string // a JSON-lines file, one background job per line
	JSON   bool   // print the handle and server as JSON
}

func (a *App) submitOptions(prio, unique, at string) ([]client.SubmitOption, error) {
	p, err := protocol.ParsePriority(strings.ToLower(prio))
	if err != nil {
		return nil, err
	}
	opts := []client.SubmitOption{client.Priority(p)}
	if unique != "" {
		opts = append(opts, client.Unique(unique))
	}
	if at != "" {
		t, err := parseAt(at, a.now())
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.RunAt(t))
	}
	return opts, nil
}

// parseAt reads --at: RFC 3339, unix seconds, or +DURATION from now.
func parseAt(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutPrefix(s, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil {
			return time.Time{}, &UsageError{fmt.Sprintf("--at %q: %v", s, err)}
		}
		return now.Add(dur), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &UsageError{fmt.Sprintf("--at %q: want an RFC 3339 time, unix seconds or +DURATION", s)}
	}
	return t, nil
}

func (a *App) readPayload(arg string) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(a.Stdin)
		if err != nil {
			return nil, &fileError{path: "stdin", err: err}
		}
		return b, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return nil, &fileError{path: arg, err: err}
	}
	return b, nil
}

// Submit submits a job. args are the command line's: FUNCTION, then
// optionally FILE, whose content is the payload ("-" for Stdin). A
// background job's handle is printed; a foreground one (f.Wait) streams
// the worker's data to Stdout, its status and warnings to Stderr, and
// fails when the job does. With f.Batch, every line of that file is
// one background job.
func (a *App) Submit(ctx context.Context, args []string, f SubmitFlags) error {
	fn := args[0]
	opts, err := a.submitOptions(f.Prio, f.Unique, f.At)
	if err != nil {
		return err
	}
	if f.Batch != "" {
		if len(args) > 1 || f.Wait {
			return &UsageError{"--batch takes no FILE argument and cannot be combined with --wait"}
		}
		return a.submitBatch(ctx, fn, f)
	}
	if f.Wait && f.At != "" {
		return &UsageError{"--at works for background jobs only; drop --wait"}
	}
	var payload []byte
	if len(args) == 2 {
		if payload, err = a.readPayload(args[1]); err != nil {
			return err
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	defer c.Close()
	if !f.Wait {
		ctx, cancel := a.ctx(ctx, backgroundTimeout)
		defer cancel()
		h, err := c.SubmitBackground(ctx, fn, payload, opts...)
		if err != nil {
			return err
		}
		if f.JSON {
			return a.printJSON(h)
		}
		_, err = fmt.Fprintln(a.Stdout, h.ID)
		return err
	}
	ctx, cancel := a.ctx(ctx, 0)
	defer cancel()
	job, err := c.Submit(ctx, fn, payload, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Stderr, "job %s on %s\n", job.Handle, job.Server)
	// The output is the worker's bytes, as gearman prints them; on a
	// terminal a missing final newline is added, so that the prompt
	// does not follow the result on its line.
	var last byte = '\n'
	defer func() {
		if last != '\n' && isTerminal(a.Stdout) {
			fmt.Fprintln(a.Stdout)
		}
	}()
	for ev := range job.Events(ctx) {
		switch ev.Kind {
		case client.EventData, client.EventComplete:
			if _, err := a.Stdout.Write(ev.Data); err != nil {
				return err
			}
			if len(ev.Data) > 0 {
				last = ev.Data[len(ev.Data)-1]
			}
		case client.EventStatus:
			fmt.Fprintf(a.Stderr, "status %d/%d\n", ev.Numerator, ev.Denominator)
		case client.EventWarning:
			fmt.Fprintf(a.Stderr, "warning: %s\n", ev.Data)
		}
	}
	_, err = job.Wait(ctx)
	var ex *client.ExceptionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ex):
		fmt.Fprintf(a.Stderr, "gclient: job %s raised an exception: %s\n", job.Handle, ex.Data)
		return &jobError{err}
	case errors.Is(err, client.ErrJobFailed):
		fmt.Fprintf(a.Stderr, "gclient: job %s failed\n", job.Handle)
		return &jobError{err}
	}
	return err
}
