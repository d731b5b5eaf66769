package server

import (
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// Background submits with a Store are written before JOB_CREATED is sent.
// The consecutive ones that arrive in one read are written with a single
// Store.Add, outside the server lock, so that a client pipelining submits
// and many concurrent clients all share the store's commits.

// pendingSubmit is a background submit waiting for its Store.Add.
type pendingSubmit struct {
	fn     *function
	rec    store.Job
	unique string
	prio   protocol.Priority
	dupOf  int // index of an earlier entry with the same (function, unique), or -1
	ukey   string
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
		p.rec = store.Job{
			Function: fn.name,
			Key:      h.s.storeKey(p.unique),
			Priority: int(sub.Priority),
			Data:     append([]byte(nil), data...),
			When:     when,
			Reducer:  string(reducer),
		}
	}
	h.batch = append(h.batch, p)
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
	if err != nil {
		s.log.WithError(err).WithField("conn_id", c.id).Error("store: add failed")
		for range h.batch {
			c.sendError(protocol.CodeQueueError, textStoreFailed)
		}
		h.clearBatch()
		return
	}
	ids := make([]uint64, len(h.batch))
	s.mu.Lock()
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
				if ex.key() == "" {
					ex.x().key = p.rec.Key
				}
				ids[i] = ex.id
				h.replyCreated(ex.id)
				continue
			}
		}
		j := s.newJob(p.fn, p.unique, string(p.rec.Data), p.prio, true)
		x := j.x()
		x.key = p.rec.Key
		x.when = p.rec.When
		x.reducer = p.rec.Reducer
		ids[i] = j.id
		h.replyCreated(j.id)
		s.enqueue(j, now)
	}
	s.mu.Unlock()
	h.clearBatch()
}

func (h *handler) clearBatch() {
	clear(h.batch)
	if cap(h.batch) > 1024 {
		h.batch = nil
		return
	}
	h.batch = h.batch[:0]
}
