package monitor

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/server"
)

// ServerInfo is GET /api/v1/server.
type ServerInfo struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// UptimeSeconds is the monitor's uptime, which starts with gserverd.
	UptimeSeconds float64 `json:"uptime_seconds"`
	Ready         bool    `json:"ready"`
	Functions     int     `json:"functions"`
	Connections   int     `json:"connections"`
	Jobs          int     `json:"jobs"`
	Running       int     `json:"running"`
	Submitted     uint64  `json:"submitted"`
	Completed     uint64  `json:"completed"`
	Failed        uint64  `json:"failed"`
	Exceptions    uint64  `json:"exceptions"`
	Requeued      uint64  `json:"requeued"`
	TimedOut      uint64  `json:"timed_out"`
	Dropped       uint64  `json:"dropped"`
	// Fleet is the fleet of servers sharing the -q postgres table: this
	// member, the members' leases, the claims this member made and their
	// takeover times; absent when the store is not a fleet's.
	Fleet *server.FleetInfo `json:"fleet,omitempty"`
}

// FunctionInfo is one row of GET /api/v1/functions.
type FunctionInfo struct {
	server.FunctionStats
	// Queued is High+Normal+Low; Total adds Running (gearmand's status).
	Queued int `json:"queued"`
	Total  int `json:"total"`
	// OldestWaitSeconds is how long the oldest queued job has waited; 0
	// when none waits.
	OldestWaitSeconds float64 `json:"oldest_wait_seconds"`
}

// Snapshot is the first event of /api/v1/events ("snapshot"), and the
// one sent to a stream that fell behind; the events between are Deltas.
type Snapshot struct {
	// Time is when the snapshot was taken, in Unix milliseconds.
	Time      int64          `json:"time"`
	Server    ServerInfo     `json:"server"`
	Functions []FunctionInfo `json:"functions"`
	// Workers lists up to maxSnapshotWorkers connections that registered
	// a function, each with at most maxWorkerList functions and running
	// jobs; WorkersTotal counts them all.
	Workers      []WorkerSummary `json:"workers"`
	WorkersTotal int             `json:"workers_total"`
}

// maxSnapshotWorkers bounds the workers sent with each event.
const maxSnapshotWorkers = 200

// Snapshot returns the server's state now; the zero figures and Ready
// false while no server is attached. The histograms are left out (they
// are in /metrics and /api/v1/functions).
func (m *Monitor) Snapshot() Snapshot {
	snap := m.snapshot()
	for i := range snap.Functions {
		snap.Functions[i].Wait = server.Histogram{}
		snap.Functions[i].Run = server.Histogram{}
	}
	return snap
}

func (m *Monitor) snapshot() Snapshot {
	now := time.Now()
	src, ready := m.source()
	var st server.Stats
	workers := []server.WorkerInfo{}
	if src != nil {
		st = src.Stats()
		workers = src.Workers(true)
	}
	snap := Snapshot{
		Time: now.UnixMilli(),
		Server: ServerInfo{
			Version:       m.opts.Version,
			Started:       m.started,
			UptimeSeconds: now.Sub(m.started).Seconds(),
			Ready:         ready,
			Functions:     len(st.Functions),
			Connections:   st.Connections,
			Jobs:          st.Jobs,
			Running:       st.Running,
			Submitted:     st.Submitted,
			Completed:     st.Completed,
			Failed:        st.Failed,
			Exceptions:    st.Exceptions,
			Requeued:      st.Requeued,
			TimedOut:      st.TimedOut,
			Dropped:       st.Dropped,
			Fleet:         st.Fleet,
		},
		Functions:    make([]FunctionInfo, 0, len(st.Functions)),
		Workers:      summarize(workers[:min(len(workers), maxSnapshotWorkers)]),
		WorkersTotal: len(workers),
	}
	for _, f := range st.Functions {
		q := f.High + f.Normal + f.Low
		fi := FunctionInfo{FunctionStats: f, Queued: q, Total: q + f.Running}
		if !f.OldestQueued.IsZero() {
			fi.OldestWaitSeconds = max(0, now.Sub(f.OldestQueued).Seconds())
		}
		snap.Functions = append(snap.Functions, fi)
	}
	return snap
}

func (m *Monitor) handleServer(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, m.Snapshot().Server)
}

// Pages of GET /api/v1/functions: a scrape of 100,000 functions must not
// build a body of 50 MB.
const (
	defaultFunctionsPage = 1000
	maxFunctionsPage     = 10000
)

// handleFunctions is GET /api/v1/functions?offset=&limit=: one page of
// the functions, in the order the server created them, limit of them
// (default defaultFunctionsPage, at most maxFunctionsPage) from offset.
// X-Total-Count says how many there are.
func (m *Monitor) handleFunctions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, err := intParam(q.Get("offset"), 0, 1<<31-1)
	if err != nil {
		writeError(w, http.StatusBadRequest, "offset: "+err.Error())
		return
	}
	limit, err := intParam(q.Get("limit"), 1, maxFunctionsPage)
	if err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	if limit == 0 {
		limit = defaultFunctionsPage
	}
	fns := m.snapshot().Functions
	w.Header().Set("X-Total-Count", strconv.Itoa(len(fns)))
	fns = fns[min(offset, len(fns)):]
	writeJSON(w, http.StatusOK, fns[:min(limit, len(fns))])
}

func writeJSON(w http.ResponseWriter, code int, v any) { httpapi.WriteJSON(w, code, v) }

func writeError(w http.ResponseWriter, code int, msg string) { httpapi.WriteError(w, code, msg) }
