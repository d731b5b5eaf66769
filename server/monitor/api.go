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
	// Workers lists the first maxSnapshotWorkers connections that
	// registered a function, each with at most maxWorkerList functions
	// and running jobs; WorkersTotal counts them all.
	Workers      []server.WorkerInfo `json:"workers"`
	WorkersTotal int                 `json:"workers_total"`
}

// maxSnapshotWorkers bounds the workers sent with each event, and
// maxWorkerList the functions and running jobs listed per worker there.
const (
	maxSnapshotWorkers = 200
	maxWorkerList      = 20
)

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
	workers, nworkers := []server.WorkerInfo{}, 0
	if src != nil {
		st = src.Stats()
		workers, nworkers = src.Workers(server.WorkerQuery{Limit: maxSnapshotWorkers, MaxList: maxWorkerList})
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
		Workers:      workers,
		WorkersTotal: nworkers,
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

// Pages of GET /api/v1/functions and /api/v1/workers: a scrape of
// 100,000 functions or 20,000 connections must not build a body of 50 MB.
const (
	defaultPage = 1000
	maxPage     = 10000
)

// page is the ?offset=&limit= of a paged listing.
type page struct{ offset, limit int }

// pageParams reads ?offset=&limit= (limit default defaultPage, at most
// maxPage), or answers 400 and reports false.
func pageParams(w http.ResponseWriter, r *http.Request) (page, bool) {
	q := r.URL.Query()
	offset, err := intParam(q.Get("offset"), 0, 1<<31-1)
	if err != nil {
		writeError(w, http.StatusBadRequest, "offset: "+err.Error())
		return page{}, false
	}
	limit, err := intParam(q.Get("limit"), 1, maxPage)
	if err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return page{}, false
	}
	if limit == 0 {
		limit = defaultPage
	}
	return page{offset: offset, limit: limit}, true
}

// setTotal sets X-Total-Count, the number of rows of all pages.
func setTotal(w http.ResponseWriter, total int) {
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
}

// handleFunctions is GET /api/v1/functions?offset=&limit=: one page of
// the functions, in the order the server created them (pageParams).
// X-Total-Count says how many there are.
func (m *Monitor) handleFunctions(w http.ResponseWriter, r *http.Request) {
	pg, ok := pageParams(w, r)
	if !ok {
		return
	}
	fns := m.snapshot().Functions
	setTotal(w, len(fns))
	fns = fns[min(pg.offset, len(fns)):]
	writeJSON(w, http.StatusOK, fns[:min(pg.limit, len(fns))])
}

func writeJSON(w http.ResponseWriter, code int, v any) { httpapi.WriteJSON(w, code, v) }

func writeError(w http.ResponseWriter, code int, msg string) { httpapi.WriteError(w, code, msg) }
