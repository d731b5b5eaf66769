package server

import (
	"slices"
	"strings"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// JobState names where a job is, in JobInfo.State and JobQuery.State.
const (
	JobQueued  = "queued"  // in its function's queue, due
	JobWaiting = "waiting" // an epoch job not yet due
	JobRunning = "running" // assigned to a worker
)

// JobInfo describes one job. It carries the payload's size, not the payload.
type JobInfo struct {
	Handle     string `json:"handle"`
	Function   string `json:"function"`
	Unique     string `json:"unique"`
	Priority   string `json:"priority"` // "high", "normal" or "low"
	State      string `json:"state"`    // JobQueued, JobWaiting or JobRunning
	Background bool   `json:"background"`
	Size       int    `json:"size"`    // payload bytes
	Clients    int    `json:"clients"` // foreground clients waiting for it
	// Worker is the id number of the connection running the job (as in
	// the admin `workers` list), 0 when not running.
	Worker      uint64 `json:"worker,omitempty"`
	Numerator   uint32 `json:"numerator"`
	Denominator uint32 `json:"denominator"`
	Retries     int    `json:"retries"`
	Cancelled   bool   `json:"cancelled"` // cancelled while running
	Stored      bool   `json:"stored"`    // in the persistent store
	// Since is when the job was queued (queued) or assigned (running);
	// zero for waiting jobs.
	Since time.Time `json:"since,omitzero"`
	// When is the epoch a waiting job is due at; zero otherwise.
	When time.Time `json:"when,omitzero"`
}

// JobQuery selects jobs for Jobs. Zero fields select everything.
type JobQuery struct {
	// Function, when set, keeps the jobs of that function only.
	Function string
	// State, when set, keeps the jobs in that state (JobQueued,
	// JobWaiting or JobRunning).
	State string
	// Offset skips that many matches; Limit bounds the page (default
	// and maximum 1000).
	Offset, Limit int
}

// MaxJobsPage bounds JobQuery.Limit.
const MaxJobsPage = 1000

// Jobs returns one page of the jobs that match q, in handle order (the
// order of creation), and the number of matches in all. It walks every
// job, in chunks (walk.go): an operator's tool, not a hot path. A job
// of the page that ends between the walk and the reading of the page is
// left out (the page is then shorter than Limit).
func (s *Server) Jobs(q JobQuery) ([]JobInfo, int) {
	if q.Limit <= 0 || q.Limit > MaxJobsPage {
		q.Limit = MaxJobsPage
	}
	q.Offset = max(q.Offset, 0)
	s.mu.Lock()
	var match []uint64
	if q.Function != "" {
		fn := s.funcs[q.Function]
		if fn == nil {
			s.mu.Unlock()
			return []JobInfo{}, 0
		}
		match = make([]uint64, 0, min(fn.total, 1<<16))
	}
	w := s.walk()
	w.jobs(func(j *job) {
		if q.Function != "" && j.fn.name != q.Function {
			return
		}
		if q.State != "" && stateName(j.state) != q.State {
			return
		}
		match = append(match, j.id)
	})
	w.end()
	s.mu.Unlock()
	slices.Sort(match)
	total := len(match)
	page := match[min(q.Offset, total):min(q.Offset+q.Limit, total)]
	out := []JobInfo{}
	s.mu.Lock()
	for _, id := range page {
		if j := s.jobs[id]; j != nil {
			out = append(out, s.jobInfo(j))
		}
		w.step()
	}
	w.end()
	s.mu.Unlock()
	return out, total
}

// Job returns the job a handle names.
func (s *Server) Job(handle string) (JobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.lookup([]byte(handle))
	if j == nil {
		return JobInfo{}, false
	}
	return s.jobInfo(j), true
}

// JobByUnique returns the job of function with that unique ID (as
// GET_STATUS_UNIQUE finds it; "-" coalescing keys are not searchable).
func (s *Server) JobByUnique(function, unique string) (JobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.funcs[function]
	if fn == nil || unique == "" || unique == "-" {
		return JobInfo{}, false
	}
	j := fn.uniq[unique]
	if j == nil {
		return JobInfo{}, false
	}
	return s.jobInfo(j), true
}

func stateName(st jobState) string {
	switch st {
	case stQueued:
		return JobQueued
	case stWaiting:
		return JobWaiting
	case stRunning:
		return JobRunning
	}
	return "new"
}

func prioName(p uint8) string {
	switch protocol.Priority(p) {
	case protocol.High:
		return "high"
	case protocol.Low:
		return "low"
	}
	return "normal"
}

func (s *Server) jobInfo(j *job) JobInfo {
	ji := JobInfo{
		Handle:      s.handleString(j.id),
		Function:    j.fn.name,
		Unique:      j.unique,
		Priority:    prioName(j.prio),
		State:       stateName(j.state),
		Background:  j.bg,
		Size:        len(j.data),
		Clients:     j.nclients,
		Numerator:   j.num,
		Denominator: j.den,
		Retries:     int(j.retries),
		Cancelled:   j.cancelled,
		Stored:      j.key() != "",
	}
	if j.worker != nil {
		ji.Worker = j.worker.id
	}
	switch j.state {
	case stQueued, stRunning:
		ji.Since = time.Unix(0, j.since)
	case stWaiting:
		ji.When = time.Unix(j.when(), 0)
	}
	return ji
}

// CancelJob cancels the job a handle names, as the admin command `cancel
// job`: its clients get WORK_FAIL; a queued job goes at once, a running
// one when its worker ends it. It returns false when no such job exists
// (or it was cancelled already).
func (s *Server) CancelJob(handle string) bool {
	h := handler{s: s}
	ok := h.cancelJob(handle) == protocol.ReplyOK
	return ok
}

// SetMaxQueue sets the maxqueue limits of a function per priority (high,
// normal, low; 0 = unlimited), creating the function if needed, as the
// admin command `maxqueue <function> <high> <normal> <low>`. A name
// protocol.ValidFunctionName refuses is ignored: it would break the admin
// protocol's listings.
func (s *Server) SetMaxQueue(function string, limits [3]int) {
	if !protocol.ValidFunctionName([]byte(function)) {
		return
	}
	s.mu.Lock()
	s.function([]byte(function)).max = limits
	s.mu.Unlock()
}

// WorkerInfo describes one connection, as a row of the admin `workers`
// list with the jobs it runs.
type WorkerInfo struct {
	ID        uint64   `json:"id"`
	IP        string   `json:"ip"`
	ClientID  string   `json:"client_id"`
	Functions []string `json:"functions"`
	// Running lists the handles of the jobs the connection runs.
	Running  []string `json:"running"`
	Sleeping bool     `json:"sleeping"`
	// Waiting is the number of foreground jobs the connection waits for
	// as a client.
	Waiting int `json:"waiting"`
}

// Workers lists every connection in id order. With workersOnly, only the
// connections that registered a function (workers, not clients). It
// walks them in chunks (walk.go).
func (s *Server) Workers(workersOnly bool) []WorkerInfo {
	var out []WorkerInfo
	var cur *WorkerInfo
	s.mu.Lock()
	w := s.walk()
	w.conns(connVisitor{
		conn: func(c *conn) bool {
			if workersOnly && c.abilHead == nil {
				return false
			}
			cur = &WorkerInfo{ID: c.id, IP: c.ip, ClientID: c.clientID, Sleeping: c.sleeping,
				Functions: []string{}, Running: []string{}, Waiting: c.nattached}
			return true
		},
		abil: func(a *ability) { cur.Functions = append(cur.Functions, a.fn.name) },
		job:  func(j *job) { cur.Running = append(cur.Running, s.handleString(j.id)) },
		done: func(*conn) { out = append(out, *cur) },
		gone: func(*conn) {},
	})
	w.end()
	s.mu.Unlock()
	if out == nil {
		out = []WorkerInfo{}
	}
	for _, wi := range out {
		slices.SortFunc(wi.Functions, strings.Compare)
		slices.Sort(wi.Running)
	}
	return out
}
