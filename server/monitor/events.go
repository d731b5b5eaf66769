package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/server"
)

// Delta is every event of /api/v1/events after the first "snapshot": what
// changed since the event before. A client applies it to its copy of the
// functions: each entry of Functions replaces (or adds) the function of
// that name, each name of Removed goes.
type Delta struct {
	// Time is when the figures were taken, in Unix milliseconds.
	Time   int64      `json:"time"`
	Server ServerInfo `json:"server"`
	// Functions are the functions added or changed since the previous
	// event (queued, running, workers, maxqueue or the oldest queued
	// job); the histograms are left out. OldestWaitSeconds is as of Time:
	// a function with waiting jobs is not resent only because they age.
	Functions []FunctionInfo `json:"functions"`
	// Removed names the functions gone since the previous event.
	Removed []string `json:"removed,omitempty"`
	// Workers is as in Snapshot when it changed, absent (nil) when not.
	Workers      []server.WorkerInfo `json:"workers,omitzero"`
	WorkersTotal int                 `json:"workers_total"`
}

// Event names of /api/v1/events.
const (
	eventSnapshot = "snapshot"
	eventDelta    = "delta"
)

// streamBuffer is how many events a stream may fall behind before it is
// sent a fresh snapshot instead of the deltas it missed.
const streamBuffer = 8

// eventWriteTimeout bounds each write of an event: a client that stopped
// reading loses its stream (and frees its slot) after it.
const eventWriteTimeout = 10 * time.Second

var (
	errTooManyStreams = errors.New("too many event streams")
	errHubClosed      = errors.New("monitor stopping")
)

// handleEvents streams a "snapshot" event, then one "delta" per
// EventInterval, until the client leaves or the monitor stops. Beyond
// MaxEventStreams open streams it answers 503.
func (m *Monitor) handleEvents(w http.ResponseWriter, r *http.Request) {
	s, err := m.hub.subscribe()
	switch {
	case errors.Is(err, errTooManyStreams):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"too many event streams: %d are open, the most allowed (--http-max-streams); close one or retry later", m.opts.MaxEventStreams))
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer m.hub.unsubscribe(s)
	es := httpapi.NewEventStream(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-m.done:
			return
		case b := <-s.ch:
			_ = es.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
			if err := es.Raw(b); err != nil {
				return
			}
		}
	}
}

// hub takes the figures once per interval while at least one stream is
// open, works out what changed, encodes that once and hands the same bytes
// to every stream: an event costs each stream O(changes), whatever the
// number of functions. Only a stream that joins (or fell behind) costs a
// full snapshot, and the snapshot of one tick is encoded once for all.
//
// The loop goroutine (run) is started by the first subscribe and ends at
// the first tick without streams, or when done is closed; wg tracks it.
type hub struct {
	snapshot func() Snapshot
	interval time.Duration
	max      int
	done     <-chan struct{}
	wg       sync.WaitGroup

	// mu guards the fields below; the loop holds it only to publish.
	mu      sync.Mutex
	subs    map[*stream]struct{}
	running bool
	closed  bool
	// last is the state the next delta applies to (nil before the first
	// tick of a run); full its encoded "snapshot" event, built on demand.
	last *Snapshot
	full []byte
}

// stream is one subscriber. ch carries encoded events.
type stream struct {
	ch chan []byte
	// needFull (guarded by hub.mu) is set while the stream has no base a
	// delta could apply to: it joined before the first tick, or it fell
	// streamBuffer events behind. It is then sent the next full snapshot.
	needFull bool
}

func newHub(snapshot func() Snapshot, interval time.Duration, max int, done <-chan struct{}) *hub {
	return &hub{snapshot: snapshot, interval: interval, max: max, done: done, subs: map[*stream]struct{}{}}
}

// subscribe opens a stream, with the current snapshot already queued when
// there is one. It fails with errTooManyStreams at the limit.
func (h *hub) subscribe() (*stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHubClosed
	}
	if len(h.subs) >= h.max {
		return nil, errTooManyStreams
	}
	s := &stream{ch: make(chan []byte, streamBuffer), needFull: true}
	if b := h.fullLocked(); b != nil {
		s.ch <- b
		s.needFull = false
	}
	h.subs[s] = struct{}{}
	if !h.running {
		h.running = true
		h.wg.Add(1)
		go h.run()
	}
	return s, nil
}

func (h *hub) unsubscribe(s *stream) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// close refuses new streams and waits for the loop to end (done must be
// closed first).
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
}

// fullLocked returns the encoded snapshot event of last, nil before the
// first tick.
func (h *hub) fullLocked() []byte {
	if h.last == nil {
		return nil
	}
	if h.full == nil {
		h.full = encodeEvent(eventSnapshot, h.last)
	}
	return h.full
}

// fnKey is what a delta compares of a function: the figures shown,
// without the histograms, and the oldest queued job's time (not its age).
type fnKey struct {
	high, normal, low, running, workers int
	maxQueue                            [3]int
	oldest                              int64
}

// fnSeen is a function of the previous tick; gen is the last tick that
// saw it.
type fnSeen struct {
	key fnKey
	gen uint64
}

func keyOf(f FunctionInfo) fnKey {
	k := fnKey{high: f.High, normal: f.Normal, low: f.Low, running: f.Running, workers: f.Workers, maxQueue: f.MaxQueue}
	if !f.OldestQueued.IsZero() {
		k.oldest = f.OldestQueued.UnixNano()
	}
	return k
}

func (h *hub) run() {
	defer h.wg.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	// prev and prevWorkers are the state of the previous tick; this
	// goroutine owns them.
	prev := map[string]*fnSeen{}
	var prevWorkers []byte
	for gen := uint64(1); ; gen++ {
		snap := h.snapshot()
		d := Delta{Time: snap.Time, Server: snap.Server, Functions: []FunctionInfo{}, WorkersTotal: snap.WorkersTotal}
		for _, f := range snap.Functions {
			k := keyOf(f)
			p, ok := prev[f.Name]
			if !ok {
				p = &fnSeen{}
				prev[f.Name] = p
			}
			if !ok || p.key != k {
				d.Functions = append(d.Functions, f)
			}
			p.key, p.gen = k, gen
		}
		for name, p := range prev {
			if p.gen != gen {
				d.Removed = append(d.Removed, name)
				delete(prev, name)
			}
		}
		workers, err := json.Marshal(snap.Workers)
		if err == nil && !bytes.Equal(workers, prevWorkers) {
			d.Workers = snap.Workers
			prevWorkers = workers
		}
		var delta []byte
		if gen > 1 { // on the first tick every stream needs a snapshot
			delta = encodeEvent(eventDelta, d)
		}

		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running, h.last, h.full = false, nil, nil
			h.mu.Unlock()
			return
		}
		h.last, h.full = &snap, nil
		for s := range h.subs {
			b := delta
			if s.needFull || b == nil {
				b = h.fullLocked()
			}
			select {
			case s.ch <- b:
				s.needFull = false
			default:
				s.needFull = true // fell behind: resync with a snapshot
			}
		}
		h.mu.Unlock()

		select {
		case <-h.done:
			h.mu.Lock()
			h.running, h.last, h.full = false, nil, nil
			h.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// encodeEvent encodes v as one server-sent event named name, in one
// buffer (a snapshot of many functions is large: no second copy).
func encodeEvent(name string, v any) []byte {
	var buf bytes.Buffer
	buf.WriteString("event: " + name + "\ndata: ")
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Snapshot and Delta hold only numbers, strings and slices of them.
		buf.Reset()
		buf.WriteString("event: " + name + "\ndata: {}\n")
	}
	buf.WriteByte('\n') // Encode ended the data line: this ends the event
	return buf.Bytes()
}
