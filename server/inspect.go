package server

import (
	"cmp"
	"math"
	"slices"
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
	ID       uint64 `json:"id"`
	IP       string `json:"ip"`
	ClientID string `json:"client_id"`
	// Functions lists the functions the connection registered, in name
	// order; at most WorkerQuery.MaxList of them (the first).
	Functions []string `json:"functions"`
	// FunctionsTotal is how many functions it registered, listed or not.
	FunctionsTotal int `json:"functions_total"`
	// Running lists the handles of the jobs the connection runs, in
	// handle order (the order of creation); at most WorkerQuery.MaxList
	// of them (the first).
	Running []string `json:"running"`
	// RunningTotal is how many jobs it runs, listed or not.
	RunningTotal int  `json:"running_total"`
	Sleeping     bool `json:"sleeping"`
	// Waiting is the number of foreground jobs the connection waits for
	// as a client.
	Waiting int `json:"waiting"`
}

// WorkerQuery selects connections for Workers. The zero value selects
// every connection that registered a function, with all its functions
// and running jobs.
type WorkerQuery struct {
	// All lists every connection, clients included; by default only the
	// connections that registered a function (workers).
	All bool
	// Offset skips that many connections; Limit, when positive, bounds
	// the page (default: no bound).
	Offset, Limit int
	// MaxList, when positive, bounds the functions and the running jobs
	// listed in each row (default: no bound).
	MaxList int
}

// Workers returns one page of the connections q selects, in id order
// (the order of acceptance), and the number of connections it selects
// in all. It walks the connections in chunks (walk.go); it reads the
// registrations and running jobs of the connections of the page only,
// so it costs O(connections) steps of a few pointers plus O(the page's
// registrations and running jobs). A connection of the page that goes
// away meanwhile is left out (the page is then shorter than Limit).
func (s *Server) Workers(q WorkerQuery) ([]WorkerInfo, int) {
	q.Offset = max(q.Offset, 0)
	end := -1 // the index after the page; -1: no bound
	if q.Limit > 0 {
		end = q.Offset + min(q.Limit, math.MaxInt-q.Offset)
	}
	out := []WorkerInfo{}
	var (
		cur     *WorkerInfo
		fns     = firstN[string]{n: q.MaxList}
		running = firstN[uint64]{n: q.MaxList}
		total   int
	)
	s.mu.Lock()
	w := s.walk()
	w.conns(connVisitor{
		conn: func(c *conn) bool {
			if !q.All && c.abilHead == nil {
				return false
			}
			i := total
			total++
			if i < q.Offset || (end >= 0 && i >= end) {
				return false // counted, not read
			}
			cur = &WorkerInfo{ID: c.id, IP: c.ip, ClientID: c.clientID, Sleeping: c.sleeping, Waiting: c.nattached}
			fns.reset()
			running.reset()
			return true
		},
		abil: func(a *ability) { fns.add(a.fn.name) },
		job:  func(j *job) { running.add(j.id) },
		done: func(*conn) {
			cur.Functions, cur.FunctionsTotal = fns.list(), fns.total
			ids := running.list()
			cur.Running, cur.RunningTotal = make([]string, len(ids)), running.total
			for i, id := range ids {
				cur.Running[i] = s.handleString(id)
			}
			out = append(out, *cur)
		},
		gone: func(*conn) {},
	})
	w.end()
	s.mu.Unlock()
	return out, total
}

// firstN keeps the n smallest values added (all of them when n <= 0) in
// O(n) memory, and counts the values added.
type firstN[T cmp.Ordered] struct {
	n     int
	total int
	keep  []T
}

func (f *firstN[T]) reset() {
	f.total = 0
	f.keep = nil
}

func (f *firstN[T]) add(v T) {
	f.total++
	f.keep = append(f.keep, v)
	if f.n > 0 && len(f.keep) >= 2*f.n {
		slices.Sort(f.keep)
		f.keep = f.keep[:f.n]
	}
}

// list returns the values kept in order, never nil.
func (f *firstN[T]) list() []T {
	slices.Sort(f.keep)
	if f.n > 0 && len(f.keep) > f.n {
		f.keep = f.keep[:f.n]
	}
	if f.keep == nil {
		return []T{}
	}
	return f.keep
}
