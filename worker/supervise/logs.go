package supervise

import (
	"context"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
)

// LogLine is one line a child wrote to its stdout or stderr.
type LogLine struct {
	// Seq numbers the lines of all functions, from 1, in the order kept.
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Function string    `json:"function"`
	Child    int       `json:"child"`
	Pid      int       `json:"pid"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	// Line is the text without its line end, at most 16 KiB.
	Line string `json:"line"`
}

// subscriberQueue and subscriberBytes bound the lines waiting for one
// slow subscriber (in number and in bytes of text); more are dropped and
// counted.
const (
	subscriberQueue = 512
	subscriberBytes = 1 << 20
)

// logHub keeps the last lines of each function in a ring and hands new
// lines to subscribers. Writers (the children's output copiers) never
// block on a subscriber: a full queue drops the line and counts it.
//
// Lock order: logHub.mu, then LogSubscription.mu.
type logHub struct {
	clk  clock.Clock
	size int // lines kept per function

	mu    sync.Mutex
	seq   uint64
	rings map[string]*ring
	subs  map[string]map[*LogSubscription]struct{}
}

// ring is a bounded buffer of the last lines of a function.
type ring struct {
	lines []LogLine // len <= size
	next  int       // where the next line goes once full
}

func newLogHub(clk clock.Clock, size int) *logHub {
	return &logHub{clk: clk, size: size, rings: map[string]*ring{}, subs: map[string]map[*LogSubscription]struct{}{}}
}

// add keeps one line and hands it to the subscribers of its function.
func (h *logHub) add(fn string, child, pid int, stream, line string) {
	if h == nil {
		return
	}
	now := h.clk.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	l := LogLine{Seq: h.seq, Time: now, Function: fn, Child: child, Pid: pid, Stream: stream, Line: line}
	r := h.rings[fn]
	if r == nil {
		r = &ring{}
		h.rings[fn] = r
	}
	if len(r.lines) < h.size {
		r.lines = append(r.lines, l)
	} else if h.size > 0 {
		r.lines[r.next] = l
		r.next = (r.next + 1) % h.size
	}
	for sub := range h.subs[fn] {
		sub.push(l)
	}
}

// backlog returns the kept lines of fn, oldest first. h.mu is held.
func (h *logHub) backlog(fn string) []LogLine {
	r := h.rings[fn]
	if r == nil {
		return nil
	}
	out := make([]LogLine, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}

func (h *logHub) subscribe(fn string) ([]LogLine, *LogSubscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := &LogSubscription{hub: h, fn: fn, notify: make(chan struct{}, 1)}
	if h.subs[fn] == nil {
		h.subs[fn] = map[*LogSubscription]struct{}{}
	}
	h.subs[fn][sub] = struct{}{}
	return h.backlog(fn), sub
}

func (h *logHub) unsubscribe(sub *LogSubscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[sub.fn], sub)
	if len(h.subs[sub.fn]) == 0 {
		delete(h.subs, sub.fn)
	}
}

// LogSubscription receives the new lines of one function. Next is meant
// for one goroutine; Close may be called from any, more than once.
type LogSubscription struct {
	hub    *logHub
	fn     string
	notify chan struct{} // cap 1: lines or a drop are waiting

	mu      sync.Mutex
	queue   []LogLine // at most subscriberQueue lines, subscriberBytes of text
	bytes   int       // of text in queue
	dropped int
	closed  bool
}

func (s *LogSubscription) push(l LogLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.queue) >= subscriberQueue || s.bytes+len(l.Line) > subscriberBytes {
		s.dropped++
	} else {
		s.queue = append(s.queue, l)
		s.bytes += len(l.Line)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next waits for new lines and returns them with the number of lines
// dropped before them because the subscriber was too slow. It returns
// ctx's error when ctx ends first.
func (s *LogSubscription) Next(ctx context.Context) ([]LogLine, int, error) {
	for {
		s.mu.Lock()
		lines, dropped := s.queue, s.dropped
		s.queue, s.bytes, s.dropped = nil, 0, 0
		s.mu.Unlock()
		if len(lines) > 0 || dropped > 0 {
			return lines, dropped, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-s.notify:
		}
	}
}

// Close ends the subscription.
func (s *LogSubscription) Close() {
	s.hub.unsubscribe(s)
	s.mu.Lock()
	s.closed, s.queue = true, nil
	s.mu.Unlock()
}

// SubscribeLogs returns the last lines kept for a function (oldest first)
// and a subscription to the lines that follow, with none missed or
// repeated in between. The caller must Close it.
func (s *Supervisor) SubscribeLogs(ctx context.Context, function string) ([]LogLine, *LogSubscription, error) {
	err := s.call(ctx, func() error {
		_, err := s.group(function)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	backlog, sub := s.logs.subscribe(function)
	return backlog, sub, nil
}
