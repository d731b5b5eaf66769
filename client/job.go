package client

import (
	"context"
	"io"
	"iter"
	"strconv"
	"sync"

	"github.com/gworkerd/gworkerd/protocol"
)

// EventKind says what a worker sent for a foreground job.
type EventKind int

// Event kinds. Complete, Fail, Exception and Error end a job.
const (
	EventData      EventKind = iota + 1 // WORK_DATA: a chunk of output
	EventWarning                        // WORK_WARNING
	EventStatus                         // WORK_STATUS: progress
	EventComplete                       // WORK_COMPLETE: the result
	EventFail                           // WORK_FAIL
	EventException                      // WORK_EXCEPTION
	EventError                          // the connection broke; see Job.Wait
)

var kindNames = [...]string{"", "data", "warning", "status", "complete", "fail", "exception", "error"}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Terminal reports whether an event of kind k ends the job.
func (k EventKind) Terminal() bool { return k >= EventComplete }

// Event is one packet a worker sent for a foreground job.
type Event struct {
	Kind EventKind
	// Data is the payload of data, warning, complete and exception events.
	Data []byte
	// Numerator and Denominator are the progress of a status event.
	Numerator, Denominator int
}

func eventOf(p *protocol.Packet) Event {
	switch p.Type {
	case protocol.WorkData:
		return Event{Kind: EventData, Data: clone(p.Arg(1))}
	case protocol.WorkWarning:
		return Event{Kind: EventWarning, Data: clone(p.Arg(1))}
	case protocol.WorkStatus:
		n, _ := strconv.Atoi(string(p.Arg(1)))
		d, _ := strconv.Atoi(string(p.Arg(2)))
		return Event{Kind: EventStatus, Numerator: n, Denominator: d}
	case protocol.WorkComplete:
		return Event{Kind: EventComplete, Data: clone(p.Arg(1))}
	case protocol.WorkException:
		return Event{Kind: EventException, Data: clone(p.Arg(1))}
	}
	return Event{Kind: EventFail}
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append([]byte(nil), b...)
}

// Job is a foreground job. Its events arrive from the connection's reader
// and are kept in order: read them one by one with Next or Events, or
// wait for the end with Wait. A Job is safe for concurrent use, but Next
// and Events share one read position.
type Job struct {
	// Handle is the job handle the server assigned.
	Handle string
	// Server is the address of the server running the job.
	Server string

	conn *conn

	mu     sync.Mutex
	events []Event
	next   int           // read position of Next
	notify chan struct{} // closed and replaced when events grow
	done   chan struct{} // closed by finish
	err    error         // set by finish
}

func newJob() *Job {
	return &Job{notify: make(chan struct{}), done: make(chan struct{})}
}

// add appends a non-terminal event. Called by the reader goroutine.
func (j *Job) add(ev Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.done:
		return
	default:
	}
	j.events = append(j.events, ev)
	close(j.notify)
	j.notify = make(chan struct{})
}

// finish appends the terminal event and ends the job.
func (j *Job) finish(ev Event, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.done:
		return
	default:
	}
	switch {
	case err != nil:
	case ev.Kind == EventFail:
		err = ErrJobFailed
	case ev.Kind == EventException:
		err = &ExceptionError{Data: ev.Data}
	}
	j.events = append(j.events, ev)
	j.err = err
	close(j.notify)
	j.notify = make(chan struct{})
	close(j.done)
}

// Done is closed when the job has ended.
func (j *Job) Done() <-chan struct{} { return j.done }

// Next returns the next event. After the terminal event it returns
// io.EOF; when ctx ends first, ctx's error.
func (j *Job) Next(ctx context.Context) (Event, error) {
	for {
		j.mu.Lock()
		if j.next < len(j.events) {
			ev := j.events[j.next]
			j.next++
			j.mu.Unlock()
			return ev, nil
		}
		ended := j.done
		notify := j.notify
		j.mu.Unlock()
		select {
		case <-ended:
			j.mu.Lock()
			more := j.next < len(j.events)
			j.mu.Unlock()
			if !more {
				return Event{}, io.EOF
			}
		case <-notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Events returns an iterator over the job's events up to and including
// the terminal one. It stops early when ctx ends; Wait then reports why.
func (j *Job) Events(ctx context.Context) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for {
			ev, err := j.Next(ctx)
			if err != nil || !yield(ev) {
				return
			}
		}
	}
}

// Result is everything a foreground job sent.
type Result struct {
	// Data is the WORK_COMPLETE payload.
	Data []byte
	// Chunks are the WORK_DATA payloads, in order.
	Chunks [][]byte
	// Warnings are the WORK_WARNING payloads, in order.
	Warnings [][]byte
	// Numerator and Denominator are the last WORK_STATUS.
	Numerator, Denominator int
	// Statuses counts the WORK_STATUS packets.
	Statuses int
}

// Output returns the WORK_DATA chunks followed by the WORK_COMPLETE data.
func (r *Result) Output() []byte {
	var out []byte
	for _, c := range r.Chunks {
		out = append(out, c...)
	}
	return append(out, r.Data...)
}

// Wait waits for the job to end and returns what it sent. The error is
// nil after WORK_COMPLETE, ErrJobFailed after WORK_FAIL, an
// *ExceptionError after WORK_EXCEPTION, wraps ErrConnLost when the
// connection broke, or is ctx's error. The Result is filled in all cases
// but the last.
func (j *Job) Wait(ctx context.Context) (*Result, error) {
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	r := &Result{}
	for _, ev := range j.events {
		switch ev.Kind {
		case EventData:
			r.Chunks = append(r.Chunks, ev.Data)
		case EventWarning:
			r.Warnings = append(r.Warnings, ev.Data)
		case EventStatus:
			r.Numerator, r.Denominator = ev.Numerator, ev.Denominator
			r.Statuses++
		case EventComplete:
			r.Data = ev.Data
		}
	}
	return r, j.err
}

// Detach stops delivery of the job's events; the job keeps running on the
// server. The job ends with ErrDetached unless it had already ended.
func (j *Job) Detach() {
	if j.conn != nil {
		j.conn.detach(j)
	}
	j.finish(Event{Kind: EventError}, ErrDetached)
}
