package server

import (
	"context"
	"slices"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// A fleet is several servers sharing one store (store.Fleet: the
// postgres store with a member id). The store keeps the lease and makes
// the claims; the server's part is here: it serves the records the store
// hands it (Adopt) and forgets the stored jobs it holds when its lease is
// not confirmed (Fence), so that a member cut off from the database
// stops serving jobs another member may have claimed.

// maxClaimsKept is how many claims FleetInfo lists.
const maxClaimsKept = 16

// adoptChunk is how many records Adopt queues per hold of the lock.
const adoptChunk = 1024

// claimRec is one claim in FleetInfo; jobs adopted by it point to it
// until they are first handed out, to measure the takeover.
type claimRec struct {
	info store.ClaimInfo
}

// fleetRun is the goroutine that runs the store's fleet for the server.
type fleetRun struct {
	f      store.Fleet
	cancel context.CancelFunc
	done   chan struct{}
}

// startFleet hands the store's claims to the server until Close.
func (s *Server) startFleet(f store.Fleet) {
	ctx, cancel := context.WithCancel(context.Background())
	s.fleet = &fleetRun{f: f, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.fleet.done)
		if err := f.RunFleet(ctx, fleetHandler{s}); err != nil {
			s.log.WithError(err).Error("fleet stopped")
		}
	}()
}

func (s *Server) stopFleet() {
	if s.fleet == nil {
		return
	}
	s.fleet.cancel()
	<-s.fleet.done
}

// fleetHandler is the server as a store.FleetHandler.
type fleetHandler struct{ s *Server }

// Fence forgets every stored job that is queued or waiting for its
// time: their records stay in the store for whoever owns them now. Their
// attached foreground clients get WORK_FAIL. Running jobs go on.
func (h fleetHandler) Fence() {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fenced = true
	if s.fencedFreed == nil {
		s.fencedFreed = make(map[store.Ref]struct{})
	}
	n := 0
	for _, j := range s.jobs {
		if j.key() == "" {
			continue
		}
		if j.state == stRunning {
			// Its worker may finish it (the delete then spares a record
			// claimed meanwhile); if it comes back, it is not requeued
			// unless Adopt finds the record still ours.
			j.ext.fenced = true
			continue
		}
		s.sendToClients(j, protocol.WorkFail, nil, nil)
		s.free(j, nil) // no delete: the record is not ours to remove
		n++
	}
	s.counters.fenced += uint64(n)
	s.log.WithField("jobs", n).Warn("fleet: lease not confirmed: forgot the stored jobs not running")
}

// Adopt queues claimed records (or, for c.Own, the records this member
// still owns after a fence, except those it holds).
func (h fleetHandler) Adopt(c store.Claim) {
	s := h.s
	rec := &claimRec{info: store.ClaimInfo{From: c.From, Jobs: len(c.Jobs), At: c.At, Expired: c.Expired}}
	var held map[store.Ref]*job
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if c.Own {
		held = make(map[store.Ref]*job)
		for _, j := range s.jobs {
			if k := j.key(); k != "" {
				held[store.Ref{Function: j.fn.name, Key: k}] = j
			}
		}
		// Jobs that ended while fenced: their records may still be in
		// the re-read (their deletes are under way), but they are done.
		for r := range s.fencedFreed {
			held[r] = nil
		}
	} else {
		s.claims = append(s.claims, rec)
		if len(s.claims) > maxClaimsKept {
			s.claims = slices.Delete(s.claims, 0, len(s.claims)-maxClaimsKept)
		}
	}
	s.mu.Unlock()
	var unkeyed []*job
	n := 0
	for start := 0; start < len(c.Jobs); start += adoptChunk {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if s.fenced && !c.Own {
			// Claimed, but fenced meanwhile: the records are this
			// member's in the database, and the re-read after the fence
			// hands them over again if they still are.
			s.mu.Unlock()
			s.log.WithField("from", c.From).Warn("fleet: fenced while claiming: claimed jobs left to the re-read")
			return
		}
		now := s.clk.Now()
		// Claimed jobs are older than this server's queued ones: they go
		// first, in their own order (the last chunk is queued first).
		end := len(c.Jobs) - start
		for i := end - 1; i >= max(0, end-adoptChunk); i-- {
			r := c.Jobs[i]
			if hj, ok := held[r.Ref()]; ok {
				if hj != nil {
					hj.ext.fenced = false // still ours: requeued if it comes back
				}
				continue
			}
			j := s.adoptRecord(r, now, true)
			if j == nil {
				continue
			}
			if !c.Own {
				j.x().claim = rec
			}
			if r.Key == "" {
				unkeyed = append(unkeyed, j)
			}
			n++
		}
		s.mu.Unlock()
	}
	if c.Own {
		s.mu.Lock()
		s.fenced = false
		s.fencedFreed = nil
		s.mu.Unlock()
	}
	if len(unkeyed) > 0 {
		if err := s.rekey(context.Background(), unkeyed); err != nil {
			s.log.WithError(err).Error("fleet: re-key adopted records with an empty key")
		}
	}
	s.log.WithField("from", c.From).WithField("jobs", n).WithField("own", c.Own).Info("fleet: adopted stored jobs")
}

// adoptRecord queues one stored record as a background job, as replay
// does (first: before the queued jobs); a record whose (function, unique)
// a job already holds joins that job. Called with s.mu held.
func (s *Server) adoptRecord(r store.Job, now time.Time, first bool) *job {
	fn := s.function([]byte(r.Function))
	unique := store.UniqueOf(r.Key)
	if r.Version > s.version {
		s.version = r.Version
	}
	if unique != "" {
		if ex := fn.uniq[uniqKey(unique, string(r.Data))]; ex != nil {
			if ex.key() == "" {
				// A foreground job: it becomes the stored background job
				// (its clients leaving must not drop it), and its end
				// deletes the record.
				ex.x().key = r.Key
				ex.bg = true
			}
			return nil
		}
	}
	prio := protocol.Priority(r.Priority)
	if prio < protocol.High || prio > protocol.Low {
		prio = protocol.Normal
	}
	j := s.newJob(fn, unique, string(r.Data), prio, true)
	x := j.x()
	x.key = r.Key
	x.when = r.When
	x.reducer = r.Reducer
	if first {
		s.enqueueFront(j, now)
	} else {
		s.enqueue(j, now)
	}
	return j
}

// served records the takeover time of the claim a job came from when it
// is the claim's first job handed out. Called with s.mu held.
func (s *Server) served(j *job) {
	rec := j.ext.claim
	j.ext.claim = nil
	if rec.info.Takeover == 0 {
		rec.info.Takeover = max(rec.info.Expired+s.clk.Now().Sub(rec.info.At), time.Nanosecond)
		s.log.WithField("from", rec.info.From).WithField("takeover", rec.info.Takeover.String()).Info("fleet: first adopted job handed out")
	}
}

// FleetInfo is the fleet as this member sees it.
type FleetInfo struct {
	store.FleetStatus
	// Fenced counts the stored jobs this server forgot when its lease
	// was not confirmed.
	FencedJobs uint64 `json:"fenced_jobs"`
}

// fleetInfo describes the fleet the server's store belongs to; nil when
// the store is not a fleet's. Called with s.mu held (the store's status
// takes only the store's own lock, which the store never holds while it
// calls the server).
func (s *Server) fleetInfo() *FleetInfo {
	if s.fleet == nil {
		return nil
	}
	fi := &FleetInfo{FleetStatus: s.fleet.f.FleetStatus(), FencedJobs: s.counters.fenced}
	fi.Claims = make([]store.ClaimInfo, len(s.claims))
	for i, c := range s.claims {
		fi.Claims[i] = c.info
	}
	return fi
}
