package server

import (
	"unsafe"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// Background submits with a Store are written before JOB_CREATED is sent,
// on every path: a new job (queueSubmit, flushBatch) and one that joins a
// job not stored yet (joinStored). If the write fails, the submit gets
// ERROR QUEUE_ERROR instead. The consecutive new ones that arrive in one
// read are written with a single Store.Add, outside the server lock, so
// that a client pipelining submits and many concurrent clients all share
// the store's commits.

// pendingSubmit is a background submit waiting for its Store.Add.
type pendingSubmit struct {
	fn     *function
	rec    store.Job
	unique string
	prio   protocol.Priority
	dupOf  int // index of an earlier entry with the same (function, unique), or -1
	ukey   string
	// data is the payload, shared by rec.Data (not a copy, see
	// readOnlyBytes); mem is what it counts in Server.mem until the job
	// is created or the submit fails (entries with dupOf < 0 only).
	data string
	mem  int64
}

// batchable reports whether frame f may join the pending batch.
func (h *handler) batchable(f *protocol.Frame) bool {
	if f.Text || f.Packet.Magic != protocol.Req {
		return false
	}
	sub, ok := f.Packet.Type.Submit()
	return ok && sub.Background && len(f.Packet.Args) >= f.Packet.Type.Args()
}

// batchCount counts the pending submits of fn. Called with s.mu held.
func (h *handler) batchCount(fn *function) int {
	n := 0
	for i := range h.batch {
		if h.batch[i].fn == fn && h.batch[i].dupOf < 0 {
			n++
		}
	}
	return n
}

// batchHas reports whether the batch holds a submit of fn with the unique
// key ukey (uniqKey). Called with s.mu held.
func (h *handler) batchHas(fn *function, ukey string) bool {
	for i := range h.batch {
		if h.batch[i].fn == fn && h.batch[i].dupOf < 0 && h.batch[i].ukey == ukey {
			return true
		}
	}
	return false
}

// queueSubmit adds a background submit to the batch. Called with s.mu held.
func (h *handler) queueSubmit(fn *function, unique, data []byte, sub protocol.SubmitInfo, when int64, reducer []byte) {
	p := pendingSubmit{fn: fn, unique: string(unique), prio: sub.Priority, dupOf: -1}
	if len(unique) > 0 {
		p.ukey = uniqKeyBytes(unique, data)
		for i := range h.batch {
			if h.batch[i].fn == fn && h.batch[i].dupOf < 0 && h.batch[i].ukey == p.ukey {
				p.dupOf = i
				break
			}
		}
	}
	if p.dupOf < 0 {
		// One copy of the payload serves the record and then the job.
		p.data = h.payload(data)
		p.mem = jobMemory(len(unique), len(data), isDash(unique))
		h.s.mem += p.mem
		p.rec = store.Job{
			Function: fn.name,
			Key:      h.s.storeKey(p.unique),
			Priority: int(sub.Priority),
			Data:     readOnlyBytes(p.data),
			When:     when,
			Reducer:  string(reducer),
			Version:  h.s.nextVersion(),
		}
		h.s.beginAdd(p.rec, p.unique)
	}
	h.batch = append(h.batch, p)
}

// readOnlyBytes returns the bytes of s without copying them, for a
// store.Job's Data: stores never modify it (store.Store.Add).
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// beginAdd and endAdd bracket a Store.Add of rec, a record of a job with
// this unique, in Server.adding. Called with s.mu held.
func (s *Server) beginAdd(rec store.Job, unique string) {
	if rec.Key == unique {
		s.adding[rec.Ref()]++
	}
}

func (s *Server) endAdd(rec store.Job, unique string) {
	if rec.Key != unique {
		return
	}
	r := rec.Ref()
	if s.adding[r]--; s.adding[r] <= 0 {
		delete(s.adding, r)
	}
}

// joinStored handles a background submit of a job that is not stored (a
// foreground job with the same unique): it writes the job's record, then
// answers JOB_CREATED, or ERROR QUEUE_ERROR when the write failed. While
// the Add is in flight the job counts as background, so that it stays
// when its clients leave; if the Add fails and no other submit stored it,
// it is a foreground job again (and goes if nobody waits for it any more).
// Called with s.mu held; returns with it released.
func (h *handler) joinStored(j *job) {
	s, c := h.s, h.c
	rec := j.record()
	rec.Key = s.storeKey(j.unique)
	rec.Version = s.nextVersion()
	x := j.x()
	x.joining++
	j.bg = true
	s.beginAdd(rec, j.unique)
	s.mu.Unlock()

	s.del.waitFor([]store.Job{rec})
	err := s.store.Add(bgCtx(), rec)

	s.mu.Lock()
	x.joining--
	s.endAdd(rec, j.unique)
	alive := s.jobs[j.id] == j
	if err != nil {
		if x.joining == 0 && x.key == "" {
			j.bg = false
			if alive && j.nclients == 0 && j.state != stRunning {
				s.free(j, h)
			}
		}
		s.mu.Unlock()
		h.flushDeletes()
		s.logAddFailed(err, logrus.Fields{"conn_id": c.id, "function": rec.Function})
		c.sendError(protocol.CodeQueueError, textStoreFailed)
		return
	}
	switch {
	case alive && x.key == "":
		x.key = rec.Key // the job is stored now
	case alive && x.key == rec.Key:
		// Stored meanwhile by another submit, under the same key.
	default:
		// The job finished while its record was written, or it was
		// stored under another (fresh) key meanwhile: the record is
		// nobody's, unless the key is shared and another job holds it
		// or is about to.
		shared := rec.Key == j.unique
		if !shared || (s.adding[rec.Ref()] == 0 && !s.holds(j.fn, j.unique, rec.Key)) {
			h.deletes = append(h.deletes, s.deleteRef(rec.Function, rec.Key))
		}
	}
	h.replyCreated(j.id)
	s.mu.Unlock()
	h.flushDeletes()
}

// holds reports whether a job of fn with this unique (not "-") is stored
// under key. Called with s.mu held.
func (s *Server) holds(fn *function, unique, key string) bool {
	o := fn.uniq[unique]
	return o != nil && o.key() == key
}

// flushBatch stores the pending submits with one Store.Add, then creates
// the jobs and answers each submit in order.
func (h *handler) flushBatch() {
	if len(h.batch) == 0 {
		return
	}
	s, c := h.s, h.c
	recs := make([]store.Job, 0, len(h.batch))
	for i := range h.batch {
		if h.batch[i].dupOf < 0 {
			recs = append(recs, h.batch[i].rec)
		}
	}
	s.del.waitFor(recs)
	err := s.store.Add(bgCtx(), recs...)
	s.mu.Lock()
	for i := range h.batch {
		if p := &h.batch[i]; p.dupOf < 0 {
			s.endAdd(p.rec, p.unique)
			s.mem -= p.mem // the job created below counts it again
		}
	}
	if err != nil {
		s.mu.Unlock()
		s.logAddFailed(err, logrus.Fields{"conn_id": c.id})
		for range h.batch {
			c.sendError(protocol.CodeQueueError, textStoreFailed)
		}
		h.clearBatch()
		return
	}
	ids := make([]uint64, len(h.batch))
	now := s.clk.Now()
	for i := range h.batch {
		p := &h.batch[i]
		if p.dupOf >= 0 {
			ids[i] = ids[p.dupOf]
			h.replyCreated(ids[i])
			continue
		}
		if p.ukey != "" {
			if ex := p.fn.uniq[p.ukey]; ex != nil {
				// Created meanwhile by another connection: coalesce.
				ex.bg = true
				switch k := ex.key(); {
				case k == "":
					ex.x().key = p.rec.Key
				case k != p.rec.Key:
					// Stored under another fresh key ("-"): ours is spare.
					h.deletes = append(h.deletes, s.deleteRef(p.rec.Function, p.rec.Key))
				}
				ids[i] = ex.id
				h.replyCreated(ex.id)
				continue
			}
		}
		j := s.newJob(p.fn, p.unique, p.data, p.prio, true)
		x := j.x()
		x.key = p.rec.Key
		x.when = p.rec.When
		x.reducer = p.rec.Reducer
		ids[i] = j.id
		h.replyCreated(j.id)
		if s.fenced {
			// Stored before the fence: the record is served by whoever
			// owns it when the fence ends (fleet.go).
			s.free(j, nil)
			continue
		}
		s.enqueue(j, now)
	}
	s.mu.Unlock()
	h.clearBatch()
	h.flushDeletes()
}

func (h *handler) clearBatch() {
	clear(h.batch)
	if cap(h.batch) > 1024 {
		h.batch = nil
		return
	}
	h.batch = h.batch[:0]
}
