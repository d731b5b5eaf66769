package cli

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

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

// batchLine is one line of a --batch file.
type batchLine struct {
	Function string          `json:"function"`
	Payload  json.RawMessage `json:"payload"`
	Unique   string          `json:"unique"`
	Prio     string          `json:"prio"`
	At       string          `json:"at"`
}

// isBatchKey reports whether k is a key of a job description line.
func isBatchKey(k string) bool {
	switch k {
	case "function", "payload", "unique", "prio", "at":
		return true
	}
	return false
}

// parseBatchLine turns one JSON line into a request. An object with a
// "payload" key is a job description, and then every key must be a batch
// key (isBatchKey); any other JSON value, objects without "payload"
// included, is the payload itself.
func (a *App) parseBatchLine(line []byte, fn string, f SubmitFlags) (client.Request, error) {
	req := client.Request{Function: fn}
	bl := batchLine{Prio: f.Prio, Unique: f.Unique, At: f.At}
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
			if !isBatchKey(k) {
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

// batchWindow is how many jobs of a batch are in flight at once.
const batchWindow = 256

func (a *App) submitBatch(ctx context.Context, fn string, f SubmitFlags) error {
	file, err := os.Open(f.Batch)
	if err != nil {
		return &fileError{path: f.Batch, err: err}
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

	bar := newProgress(a.Stderr, isTerminal(a.Stderr), total)
	start := a.now()
	var ok, failed, lineNo int
	var lastErr error
	errs := repeatedErrors{w: a.Stderr}
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
			fmt.Fprintln(a.Stdout, r.Handle.ID)
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
				return fmt.Errorf("%s line %d: %w", f.Batch, lineNo, err)
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
		return &fileError{path: f.Batch, err: err}
	}
	if err := flush(); err != nil {
		return err
	}
	errs.flush()
	bar.done()
	el := a.now().Sub(start)
	fmt.Fprintf(a.Stderr, "submitted %d jobs, %d failed, in %v (%.0f jobs/s)\n", ok, failed, el.Round(time.Millisecond), float64(ok)/max(el.Seconds(), 1e-9))
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
