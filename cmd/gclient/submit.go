package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

type submitFlags struct {
	prio   string
	unique string
	at     string
	wait   bool
	batch  string
	json   bool
}

func (a *app) submitCmd() *cobra.Command {
	var f submitFlags
	cmd := &cobra.Command{
		Use:   "submit FUNCTION [FILE|-]",
		Short: "Submit a job (background by default; --wait runs it in the foreground)",
		Long: `Submit a job to FUNCTION. The payload is the content of FILE, or stdin
with -, or empty when neither is given.

By default the job runs in the background and gclient prints its handle.
With --wait it runs in the foreground: the worker's data is streamed to
stdout, its status and warnings to stderr, and gclient exits non-zero when
the job fails or raises an exception.

With --batch FILE.jsonl every line is one background job, submitted
pipelined. A line that is a JSON object with a "payload" key is a job
description
  {"payload": "...", "unique": "...", "prio": "high", "at": "...", "function": "..."}
(payload may be any JSON value; a non-string value is sent as its JSON text;
the other keys are optional and override the flags; any other key is an
error). Any other line, a JSON object without "payload" included, is the
payload itself, sent as written: a file of one resize request per line
submits each request. Handles are printed one per line, a summary at the end;
a run of lines failing with the same error is reported once.

With --wait on a terminal, a result that does not end with a newline gets one.

--at takes an RFC 3339 time, a unix time in seconds, or a delay such as +10m.`,
		Example: `  gclient submit resize photo.json --prio high
  echo hello | gclient submit reverse - --wait
  gclient submit mail --batch mails.jsonl --prio low`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return &usageError{"submit needs FUNCTION and at most one FILE"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.submit(cmd.Context(), args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.prio, "prio", "normal", "priority: high, normal or low")
	fl.StringVar(&f.unique, "unique", "", "unique id (jobs with the same one coalesce)")
	fl.StringVar(&f.at, "at", "", "run at this time (background only)")
	fl.BoolVar(&f.wait, "wait", false, "run in the foreground and stream the result")
	fl.StringVar(&f.batch, "batch", "", "submit one background job per line of this JSON-lines file")
	fl.BoolVar(&f.json, "json", false, "print the handle and server as JSON")
	return cmd
}

func (a *app) submitOptions(prio, unique, at string) ([]client.SubmitOption, error) {
	p, err := protocol.ParsePriority(strings.ToLower(prio))
	if err != nil {
		return nil, err
	}
	opts := []client.SubmitOption{client.Priority(p)}
	if unique != "" {
		opts = append(opts, client.Unique(unique))
	}
	if at != "" {
		t, err := parseAt(at, time.Now())
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
			return time.Time{}, &usageError{fmt.Sprintf("--at %q: %v", s, err)}
		}
		return now.Add(dur), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &usageError{fmt.Sprintf("--at %q: want an RFC 3339 time, unix seconds or +DURATION", s)}
	}
	return t, nil
}

func (a *app) readPayload(arg string) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(a.stdin)
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

func (a *app) submit(ctx context.Context, args []string, f submitFlags) error {
	fn := args[0]
	opts, err := a.submitOptions(f.prio, f.unique, f.at)
	if err != nil {
		return err
	}
	if f.batch != "" {
		if len(args) > 1 || f.wait {
			return &usageError{"--batch takes no FILE argument and cannot be combined with --wait"}
		}
		return a.submitBatch(ctx, fn, f)
	}
	if f.wait && f.at != "" {
		return &usageError{"--at works for background jobs only; drop --wait"}
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
	if !f.wait {
		ctx, cancel := a.ctx(ctx, 30*time.Second)
		defer cancel()
		h, err := c.SubmitBackground(ctx, fn, payload, opts...)
		if err != nil {
			return err
		}
		if f.json {
			return a.printJSON(h)
		}
		_, err = fmt.Fprintln(a.stdout, h.ID)
		return err
	}
	ctx, cancel := a.ctx(ctx, 0)
	defer cancel()
	job, err := c.Submit(ctx, fn, payload, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "job %s on %s\n", job.Handle, job.Server)
	// The output is the worker's bytes, as gearman prints them; on a
	// terminal a missing final newline is added, so that the prompt
	// does not follow the result on its line.
	var last byte = '\n'
	defer func() {
		if last != '\n' && isTerminal(a.stdout) {
			fmt.Fprintln(a.stdout)
		}
	}()
	for ev := range job.Events(ctx) {
		switch ev.Kind {
		case client.EventData, client.EventComplete:
			if _, err := a.stdout.Write(ev.Data); err != nil {
				return err
			}
			if len(ev.Data) > 0 {
				last = ev.Data[len(ev.Data)-1]
			}
		case client.EventStatus:
			fmt.Fprintf(a.stderr, "status %d/%d\n", ev.Numerator, ev.Denominator)
		case client.EventWarning:
			fmt.Fprintf(a.stderr, "warning: %s\n", ev.Data)
		}
	}
	_, err = job.Wait(ctx)
	var ex *client.ExceptionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ex):
		fmt.Fprintf(a.stderr, "gclient: job %s raised an exception: %s\n", job.Handle, ex.Data)
		return &jobError{err}
	case errors.Is(err, client.ErrJobFailed):
		fmt.Fprintf(a.stderr, "gclient: job %s failed\n", job.Handle)
		return &jobError{err}
	}
	return err
}

// batchLine is one line of a --batch file.
type batchLine struct {
	Function string          `json:"function"`
	Payload  json.RawMessage `json:"payload"`
	Unique   string          `json:"unique"`
	Prio     string          `json:"prio"`
	At       string          `json:"at"`
}

// batchKeys are the keys of a job description line.
var batchKeys = map[string]bool{"function": true, "payload": true, "unique": true, "prio": true, "at": true}

// parseBatchLine turns one JSON line into a request. An object with a
// "payload" key is a job description, and then every key must be one of
// batchKeys; any other JSON value, objects without "payload" included,
// is the payload itself.
func (a *app) parseBatchLine(line []byte, fn string, f submitFlags) (client.Request, error) {
	req := client.Request{Function: fn}
	bl := batchLine{Prio: f.prio, Unique: f.unique, At: f.at}
	trimmed := bytes.TrimSpace(line)
	var keys map[string]json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '{' {
		if err := json.Unmarshal(trimmed, &keys); err != nil {
			return req, err
		}
	}
	if _, ok := keys["payload"]; ok {
		var unknown []string
		for k := range keys {
			if !batchKeys[k] {
				unknown = append(unknown, strconv.Quote(k))
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return req, fmt.Errorf("a job description (it has \"payload\") with unknown key %s: the keys are function, payload, unique, prio and at", strings.Join(unknown, ", "))
		}
		if err := json.Unmarshal(trimmed, &bl); err != nil {
			return req, err
		}
	} else {
		if !json.Valid(trimmed) {
			return req, fmt.Errorf("not JSON")
		}
		bl.Payload = trimmed
	}
	if bl.Function != "" {
		req.Function = bl.Function
	}
	var s string
	if len(bl.Payload) > 0 && bl.Payload[0] == '"' && json.Unmarshal(bl.Payload, &s) == nil {
		req.Payload = []byte(s)
	} else {
		req.Payload = []byte(bl.Payload)
	}
	opts, err := a.submitOptions(bl.Prio, bl.Unique, bl.At)
	if err != nil {
		return req, err
	}
	req.Options = opts
	return req, nil
}

const batchWindow = 256

func (a *app) submitBatch(ctx context.Context, fn string, f submitFlags) error {
	file, err := os.Open(f.batch)
	if err != nil {
		return &fileError{path: f.batch, err: err}
	}
	defer file.Close()
	var total int64
	if st, err := file.Stat(); err == nil {
		total = st.Size()
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := a.ctx(ctx, 0)
	defer cancel()

	bar := newProgress(a.stderr, isTerminal(a.stderr), total)
	start := time.Now()
	var ok, failed, lineNo int
	var lastErr error
	errs := repeatedErrors{w: a.stderr}
	defer errs.flush()
	var reqs []client.Request
	var lines []int
	var read int64
	flush := func() error {
		if len(reqs) == 0 {
			return nil
		}
		for i, r := range c.SubmitBackgroundBatch(ctx, reqs) {
			if r.Err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failed++
				lastErr = r.Err
				errs.report(lines[i], oneLine(r.Err.Error()))
				continue
			}
			ok++
			fmt.Fprintln(a.stdout, r.Handle.ID)
		}
		reqs, lines = reqs[:0], lines[:0]
		bar.update(read, ok+failed)
		return nil
	}
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), protocol.DefaultMaxPayload)
	for sc.Scan() {
		lineNo++
		read += int64(len(sc.Bytes())) + 1
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		req, err := a.parseBatchLine(sc.Bytes(), fn, f)
		if err != nil {
			var pe *protocol.PriorityError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s line %d: %w", f.batch, lineNo, err)
			}
			failed++
			lastErr = err
			errs.report(lineNo, err.Error())
			continue
		}
		reqs = append(reqs, req)
		lines = append(lines, lineNo)
		if len(reqs) == batchWindow {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return &fileError{path: f.batch, err: err}
	}
	if err := flush(); err != nil {
		return err
	}
	errs.flush()
	bar.done()
	el := time.Since(start)
	fmt.Fprintf(a.stderr, "submitted %d jobs, %d failed, in %v (%.0f jobs/s)\n", ok, failed, el.Round(time.Millisecond), float64(ok)/max(el.Seconds(), 1e-9))
	if failed > 0 {
		if ok == 0 && lastErr != nil {
			return lastErr
		}
		return &jobError{fmt.Errorf("%d of %d jobs failed", failed, ok+failed)}
	}
	return nil
}

// progress draws a progress bar on a terminal; elsewhere it is silent.
type progress struct {
	w     io.Writer
	on    bool
	total int64
}

func newProgress(w io.Writer, on bool, total int64) *progress {
	return &progress{w: w, on: on && total > 0, total: total}
}

func (p *progress) update(read int64, jobs int) {
	if !p.on {
		return
	}
	const width = 40
	frac := min(float64(read)/float64(p.total), 1)
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %d jobs", strings.Repeat("#", n), strings.Repeat(" ", width-n), frac*100, jobs)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// repeatedErrors prints the errors of batch lines, one line each, but a
// run of lines failing with the same error (every line, when the servers
// are down) as its first line and one summary.
type repeatedErrors struct {
	w   io.Writer
	msg string // the error of the current run
	end int    // its last line
	n   int    // how many lines of the run are not printed yet
}

func (r *repeatedErrors) report(line int, msg string) {
	if msg == r.msg {
		r.n++
		r.end = line
		return
	}
	r.flush()
	fmt.Fprintf(r.w, "gclient: line %d: %s\n", line, msg)
	r.msg, r.end, r.n = msg, line, 0
}

// flush prints the summary of the current run, if lines were held back.
func (r *repeatedErrors) flush() {
	if r.n > 0 {
		fmt.Fprintf(r.w, "gclient: %d more lines up to line %d failed with the same error\n", r.n, r.end)
	}
	r.n = 0
	r.msg = ""
}
