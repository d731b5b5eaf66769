package server

import (
	"cmp"
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
// job under the state lock: an operator's tool, not a hot path.
func (s *Server) Jobs(q JobQuery) ([]JobInfo, int) {
	if q.Limit <= 0 || q.Limit > MaxJobsPage {
		q.Limit = MaxJobsPage
	}
	q.Offset = max(q.Offset, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*job
	if q.Function != "" {
		fn := s.funcs[q.Function]
		if fn == nil {
			return []JobInfo{}, 0
		}
		match = make([]*job, 0, min(fn.total, 1<<16))
	}
	for _, j := range s.jobs {
		if q.Function != "" && j.fn.name != q.Function {
			continue
		}
		if q.State != "" && stateName(j.state) != q.State {
			continue
		}
		match = append(match, j)
	}
	slices.SortFunc(match, func(a, b *job) int { return cmp.Compare(a.id, b.id) })
	total := len(match)
	out := []JobInfo{}
	for i := q.Offset; i < total && len(out) < q.Limit; i++ {
		out = append(out, s.jobInfo(match[i]))
	}
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
// connections that registered a function (workers, not clients).
func (s *Server) Workers(workersOnly bool) []WorkerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if workersOnly && c.abilHead == nil {
			continue
		}
		conns = append(conns, c)
	}
	sortConns(conns)
	out := make([]WorkerInfo, 0, len(conns))
	for _, c := range conns {
		w := WorkerInfo{ID: c.id, IP: c.ip, ClientID: c.clientID, Sleeping: c.sleeping,
			Functions: []string{}, Running: []string{}, Waiting: c.nattached}
		for a := c.abilHead; a != nil; a = a.next {
			w.Functions = append(w.Functions, a.fn.name)
		}
		slices.SortFunc(w.Functions, strings.Compare)
		for a := c.abilHead; a != nil; a = a.next {
			for j := a.running.head; j != nil; j = j.next {
				w.Running = append(w.Running, s.handleString(j.id))
			}
		}
		slices.Sort(w.Running)
		out = append(out, w)
	}
	return out
}
