package monitor

import (
	"net/http"
	"strconv"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
)

// JobsPage is GET /api/v1/jobs.
type JobsPage struct {
	// Total is the number of jobs that match, over all pages.
	Total  int              `json:"total"`
	Offset int              `json:"offset"`
	Limit  int              `json:"limit"`
	Jobs   []server.JobInfo `json:"jobs"`
}

// CancelResult is the body of POST /api/v1/jobs/{handle}/cancel.
type CancelResult struct {
	Handle    string `json:"handle"`
	Cancelled bool   `json:"cancelled"`
}

// MaxQueueResult is the body of POST /api/v1/functions/{function}/maxqueue.
type MaxQueueResult struct {
	Function string `json:"function"`
	// High, Normal and Low are the limits now in force (0 = unlimited).
	High   int `json:"high"`
	Normal int `json:"normal"`
	Low    int `json:"low"`
}

// maxWorkerRow bounds the functions and the running jobs listed in a row
// of GET /api/v1/workers: one worker that registered 100,000 functions
// must not make a row of megabytes. functions_total and running_total
// give the full counts; the admin command `workers` lists everything.
const maxWorkerRow = 100

// handleWorkers is GET /api/v1/workers?offset=&limit=: one page
// (pageParams) of the connections that registered a function, in id
// order; with ?all=1 of every connection, clients included. Each row
// lists its first maxWorkerRow functions and running jobs.
// X-Total-Count says how many connections there are.
func (m *Monitor) handleWorkers(w http.ResponseWriter, r *http.Request) {
	pg, ok := pageParams(w, r)
	if !ok {
		return
	}
	src, ok := m.ready(w)
	if !ok {
		return
	}
	ws, total := src.Workers(server.WorkerQuery{
		All: r.URL.Query().Get("all") == "1", Offset: pg.offset, Limit: pg.limit, MaxList: maxWorkerRow,
	})
	setTotal(w, total)
	writeJSON(w, http.StatusOK, ws)
}

// handleJobs is GET /api/v1/jobs?function=&state=&offset=&limit=: one
// page of jobs in handle order. state is queued, waiting or running;
// limit is at most server.MaxJobsPage (the default).
func (m *Monitor) handleJobs(w http.ResponseWriter, r *http.Request) {
	src, ok := m.ready(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	jq := server.JobQuery{Function: q.Get("function"), State: q.Get("state")}
	switch jq.State {
	case "", server.JobQueued, server.JobWaiting, server.JobRunning:
	default:
		writeError(w, http.StatusBadRequest, "state: want queued, waiting or running, got "+strconv.Quote(jq.State))
		return
	}
	var err error
	if jq.Offset, err = intParam(q.Get("offset"), 0, 1<<31-1); err != nil {
		writeError(w, http.StatusBadRequest, "offset: "+err.Error())
		return
	}
	if jq.Limit, err = intParam(q.Get("limit"), 1, server.MaxJobsPage); err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	if jq.Limit == 0 {
		jq.Limit = 100
	}
	jobs, total := src.Jobs(jq)
	writeJSON(w, http.StatusOK, JobsPage{Total: total, Offset: jq.Offset, Limit: jq.Limit, Jobs: jobs})
}

// handleJob is GET /api/v1/jobs/{handle}.
func (m *Monitor) handleJob(w http.ResponseWriter, r *http.Request) {
	src, ok := m.ready(w)
	if !ok {
		return
	}
	h := r.PathValue("handle")
	ji, found := src.Job(h)
	if !found {
		writeError(w, http.StatusNotFound, "no job with handle "+strconv.Quote(h))
		return
	}
	writeJSON(w, http.StatusOK, ji)
}

// handleJobByUnique is GET /api/v1/functions/{function}/unique/{unique}.
func (m *Monitor) handleJobByUnique(w http.ResponseWriter, r *http.Request) {
	src, ok := m.ready(w)
	if !ok {
		return
	}
	fn, u := r.PathValue("function"), r.PathValue("unique")
	ji, found := src.JobByUnique(fn, u)
	if !found {
		writeError(w, http.StatusNotFound, "no job of "+strconv.Quote(fn)+" with unique "+strconv.Quote(u))
		return
	}
	writeJSON(w, http.StatusOK, ji)
}

// handleCancel is POST /api/v1/jobs/{handle}/cancel, as the admin
// command `cancel job`.
func (m *Monitor) handleCancel(w http.ResponseWriter, r *http.Request) {
	src, ok := m.ready(w)
	if !ok {
		return
	}
	h := r.PathValue("handle")
	if !src.CancelJob(h) {
		writeError(w, http.StatusNotFound, "no job with handle "+strconv.Quote(h)+" to cancel")
		return
	}
	m.log.WithField("job_handle", h).Info("job cancelled over HTTP")
	writeJSON(w, http.StatusOK, CancelResult{Handle: h, Cancelled: true})
}

// handleMaxQueue is POST /api/v1/functions/{function}/maxqueue with
// either ?n=N (every priority, as `maxqueue <function> N`) or any of
// ?high=&normal=&low= (the others unlimited); 0 means unlimited.
func (m *Monitor) handleMaxQueue(w http.ResponseWriter, r *http.Request) {
	src, ok := m.ready(w)
	if !ok {
		return
	}
	fn := r.PathValue("function")
	if !protocol.ValidFunctionName([]byte(fn)) {
		writeError(w, http.StatusBadRequest, "function: "+protocol.TextInvalidFunctionName)
		return
	}
	q := r.URL.Query()
	var lim [3]int
	if q.Has("n") {
		n, err := intParam(q.Get("n"), 0, 1<<31-1)
		if err != nil {
			writeError(w, http.StatusBadRequest, "n: "+err.Error())
			return
		}
		lim = [3]int{n, n, n}
	} else {
		if !q.Has("high") && !q.Has("normal") && !q.Has("low") {
			writeError(w, http.StatusBadRequest, "give n, or high, normal and low")
			return
		}
		for i, k := range []string{"high", "normal", "low"} {
			n, err := intParam(q.Get(k), 0, 1<<31-1)
			if err != nil {
				writeError(w, http.StatusBadRequest, k+": "+err.Error())
				return
			}
			lim[i] = n
		}
	}
	src.SetMaxQueue(fn, lim)
	m.log.WithField("function", fn).WithField("max_queue", lim).Info("maxqueue set over HTTP")
	writeJSON(w, http.StatusOK, MaxQueueResult{Function: fn, High: lim[0], Normal: lim[1], Low: lim[2]})
}

// ready returns the source, or answers 503 while there is none.
func (m *Monitor) ready(w http.ResponseWriter) (Source, bool) {
	src, ok := m.source()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "server not ready")
		return nil, false
	}
	return src, true
}

// intParam parses an optional decimal parameter in [lo, hi]; "" is 0.
func intParam(s string, lo, hi int) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, &paramError{s: s, lo: lo, hi: hi}
	}
	return n, nil
}

type paramError struct {
	s      string
	lo, hi int
}

func (e *paramError) Error() string {
	return "want an integer from " + strconv.Itoa(e.lo) + " to " + strconv.Itoa(e.hi) + ", got " + strconv.Quote(e.s)
}
