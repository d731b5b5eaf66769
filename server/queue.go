package server

import (
	"container/heap"
	"runtime/debug"
	"slices"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// job is one job in memory. All fields are guarded by Server.mu.
type job struct {
	id     uint64
	fn     *function
	unique string
	data   string
	// clients lists the attached foreground clients, oldest first
	// (links.go); nclients counts their submits, nconns the connections.
	clients  attachList
	nclients int
	nconns   int32
	worker   *conn // the connection running it, nil when not running
	// links in fn.queues while state == stQueued, in the running list
	// of the worker's ability of fn while stRunning (links.go).
	prev, next *job
	ext        *jobExt // rarely used fields; nil for most jobs
	// since is when the job was last queued (stQueued) or assigned
	// (stRunning), in Unix nanoseconds of the server's clock.
	since     int64
	num, den  uint32
	retries   uint16
	gen       uint16 // bumped at every assignment; stale timers compare it
	prio      uint8  // protocol.Priority
	state     jobState
	bg        bool // background: no client needs to wait for it
	cancelled bool // admin `cancel job` on a running job
}

// jobExt holds the fields few jobs use, to keep job small (a queued
// 100-byte job costs about 300 bytes in all).
type jobExt struct {
	reducer string
	// key is the job's storage key when it is persisted ("" otherwise).
	key     string
	when    int64
	timer   clock.Timer
	heapIdx int32
	// armedOn is the connection whose armed list (conn.armed) holds
	// the job while timer is set; armPrev and armNext link that list.
	armedOn          *conn
	armPrev, armNext *job

	// claim is the fleet claim the job was adopted from, until it is
	// first handed out (fleet.go).
	claim *claimRec

	// fenced: the job ran when the fleet fenced this server, and its
	// record may have been claimed since: it is not requeued (fleet.go).
	fenced bool

	// joining counts the background submits coalesced into this unstored
	// job whose Store.Add is in flight (batch.go, joinStored).
	joining int

	// byConn finds the attachment of a client connection when the job
	// has more than smallClients of them (links.go).
	byConn map[*conn]*attachment
}

func (j *job) x() *jobExt {
	if j.ext == nil {
		j.ext = &jobExt{heapIdx: -1}
	}
	return j.ext
}

func (j *job) when() int64 {
	if j.ext == nil {
		return 0
	}
	return j.ext.when
}

func (j *job) reducer() string {
	if j.ext == nil {
		return ""
	}
	return j.ext.reducer
}

func (j *job) key() string {
	if j.ext == nil {
		return ""
	}
	return j.ext.key
}

// arm sets the job's CAN_DO_TIMEOUT timer and lists it in c's armed
// jobs, so that PRE_SLEEP stops exactly those.
func (j *job) arm(c *conn, t clock.Timer) {
	x := j.x()
	x.timer, x.armedOn, x.armPrev, x.armNext = t, c, nil, c.armed
	if c.armed != nil {
		c.armed.ext.armPrev = j
	}
	c.armed = j
}

// stopTimer stops the job's timer, if set, and takes it off its
// connection's armed list.
func (j *job) stopTimer() {
	x := j.ext
	if x == nil || x.timer == nil {
		return
	}
	x.timer.Stop()
	x.timer = nil
	if x.armPrev != nil {
		x.armPrev.ext.armNext = x.armNext
	} else {
		x.armedOn.armed = x.armNext
	}
	if x.armNext != nil {
		x.armNext.ext.armPrev = x.armPrev
	}
	x.armedOn, x.armPrev, x.armNext = nil, nil, nil
}

type jobState uint8

const (
	stNew     jobState = iota // not in any list
	stQueued                  // in fn.queues[prio]
	stWaiting                 // epoch job in Server.future
	stRunning                 // assigned to worker
)

// uniqKey is the coalescing key of a job within its function: the unique,
// or for unique "-" the payload (NUL cannot occur in a unique).
func uniqKey(unique, data string) string {
	if unique == "-" {
		return "\x00" + data
	}
	return unique
}

// jobList is an intrusive FIFO of jobs.
type jobList struct{ head, tail *job }

func (l *jobList) push(j *job) {
	j.prev, j.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = j
	} else {
		l.head = j
	}
	l.tail = j
}

// pushFront puts j before every job of l.
func (l *jobList) pushFront(j *job) {
	j.prev, j.next = nil, l.head
	if l.head != nil {
		l.head.prev = j
	} else {
		l.tail = j
	}
	l.head = j
}

func (l *jobList) remove(j *job) {
	if j.prev != nil {
		j.prev.next = j.next
	} else {
		l.head = j.next
	}
	if j.next != nil {
		j.next.prev = j.prev
	} else {
		l.tail = j.prev
	}
	j.prev, j.next = nil, nil
}

// function is one function name. All fields are guarded by Server.mu.
type function struct {
	name    string
	seq     uint64 // creation order: Server.funcOrder is sorted by it
	queues  [3]jobList
	queued  [3]int // queued per priority, epoch jobs not yet due included
	running int
	total   int // every job of the function (queued, waiting, running)
	// workers are the registrations of the function, one per connection
	// (links.go); nworkers counts CAN_DOs, duplicates included, as
	// gearmand's worker_count does.
	workers  []*ability
	nworkers int
	wake     int // rotation start for wake-ups
	uniq     map[string]*job
	// uniqPeak is the largest len(uniq) since the map was last rebuilt.
	uniqPeak int
	max      [3]int // maxqueue per priority; 0 = unlimited
	wait     hist   // seconds from queued to assigned
	run      hist   // seconds from assigned to the final WORK_* packet
}

func (s *Server) function(name []byte) *function {
	if f := s.funcs[string(name)]; f != nil {
		return f
	}
	s.funcSeq++
	f := &function{name: string(name), seq: s.funcSeq, uniq: make(map[string]*job),
		wait: newHist(latencyBounds()), run: newHist(latencyBounds())}
	s.funcs[f.name] = f
	s.funcOrder = append(s.funcOrder, f)
	return f
}

// newJob creates a job of fn (not yet queued).
func (s *Server) newJob(fn *function, unique, data string, prio protocol.Priority, bg bool) *job {
	s.nextJob++
	j := &job{id: s.nextJob, fn: fn, unique: unique, data: data, prio: uint8(prio), bg: bg}
	s.jobs[j.id] = j
	s.mem += jobMemory(len(unique), len(data), unique == "-")
	if len(s.jobs) > s.jobsPeak {
		s.jobsPeak = len(s.jobs)
	}
	fn.total++
	if unique != "" {
		fn.uniq[uniqKey(unique, data)] = j
		if n := len(fn.uniq); n > fn.uniqPeak {
			fn.uniqPeak = n
			if n == bigUniq {
				s.bigUniq[fn] = struct{}{}
			}
		}
	}
	s.counters.submitted++
	return j
}

// jobOverhead is what JobMemory counts for a job beside its payload and
// unique: the job, its entries in the server's maps and lists, its
// handle (a queued 100-byte job costs about 300 bytes in all).
const jobOverhead = 256

// jobMemory is the memory Options.MaxQueueMemory counts for a job with
// a unique and a payload of these lengths: both, a fixed overhead, and
// the payload again for unique "-" (dash), whose coalescing key is the
// payload.
func jobMemory(unique, data int, dash bool) int64 {
	n := int64(jobOverhead + unique + data)
	if dash {
		n += int64(1 + data)
	}
	return n
}

// memoryFull reports whether a new job of this much memory would take
// the server beyond Options.MaxQueueMemory. Called with s.mu held.
func (s *Server) memoryFull(n int64) bool {
	lim := s.opts.MaxQueueMemory
	return lim > 0 && s.mem+n > lim
}

// enqueue puts a job that is not running into its queue, or into the
// future heap when its epoch is ahead, and wakes sleeping workers.
func (s *Server) enqueue(j *job, t time.Time) {
	if j.when() > t.Unix() {
		j.state = stWaiting
		j.fn.queued[j.prio]++
		heap.Push(&s.future, j)
		s.armEpoch()
		return
	}
	j.state = stQueued
	j.since = t.UnixNano()
	j.fn.queued[j.prio]++
	q := &j.fn.queues[j.prio]
	q.push(j)
	if q.head == j {
		queueFilled(j.fn, int(j.prio))
	}
	s.wakeWorkers(j.fn)
}

// enqueueFront is enqueue for a job older than the queued ones (adopted
// from a fleet member): it goes before them, unless its epoch is ahead.
func (s *Server) enqueueFront(j *job, t time.Time) {
	if j.when() > t.Unix() {
		s.enqueue(j, t)
		return
	}
	j.state = stQueued
	j.since = t.UnixNano()
	j.fn.queued[j.prio]++
	q := &j.fn.queues[j.prio]
	wasEmpty := q.head == nil
	q.pushFront(j)
	if wasEmpty {
		queueFilled(j.fn, int(j.prio))
	}
	s.wakeWorkers(j.fn)
}

// unlink takes a job out of whatever list holds it, without freeing it.
func (s *Server) unlink(j *job) {
	switch j.state {
	case stQueued:
		q := &j.fn.queues[j.prio]
		q.remove(j)
		if q.head == nil {
			queueEmptied(j.fn, int(j.prio))
		}
		j.fn.queued[j.prio]--
	case stWaiting:
		heap.Remove(&s.future, int(j.ext.heapIdx))
		j.fn.queued[j.prio]--
	case stRunning:
		w := j.worker
		if len(s.cursors) > 0 {
			s.moveCursorsJob(j)
		}
		w.abil[j.fn].running.remove(j)
		w.nrunning--
		j.worker = nil
		j.fn.running--
		s.running--
		j.stopTimer()
		if s.running == 0 && s.drained != nil {
			select {
			case <-s.drained:
			default:
				close(s.drained)
			}
		}
	}
	j.state = stNew
}

// free removes a job from the server entirely and returns its storage
// reference, if it has one, for the caller to delete outside the lock.
func (s *Server) free(j *job, h *handler) {
	s.unlink(j)
	s.detachAll(j)
	delete(s.jobs, j.id)
	s.mem -= jobMemory(len(j.unique), len(j.data), j.unique == "-")
	if lim := s.opts.MaxQueueMemory; s.memFull && s.mem <= lim-lim/8 {
		s.memFull = false
		s.log.WithField("queue_memory", s.mem).Info("queue memory well below its bound again")
	}
	if s.jobsPeak >= shrinkPeak && len(s.jobs) <= s.jobsPeak/64 {
		s.shrink()
	}
	j.fn.total--
	if j.unique != "" {
		k := uniqKey(j.unique, j.data)
		if j.fn.uniq[k] == j {
			delete(j.fn.uniq, k)
		}
	}
	// While another submit's Add of the same key is in flight, the
	// record is left to the job that Add creates or joins (if that Add
	// fails, the record stays: the job may run again after a restart).
	if k := j.key(); k != "" {
		if s.fenced {
			s.fencedFreed[store.Ref{Function: j.fn.name, Key: k}] = struct{}{}
		}
		if h != nil && s.adding[store.Ref{Function: j.fn.name, Key: k}] == 0 {
			h.deletes = append(h.deletes, s.deleteRef(j.fn.name, k))
		}
	}
}

// shrinkPeak is the job count above which a drained server rebuilds its
// maps and gives memory back to the OS (Go maps never shrink).
const shrinkPeak = 1 << 16

// bigUniq is the size from which a function's unique map is rebuilt by
// shrink (smaller ones waste little): shrink visits only those, not every
// function.
const bigUniq = 1 << 10

// shrink rebuilds the job map and the big unique maps at their current
// size, and returns freed memory to the OS in the background.
func (s *Server) shrink() {
	jobs := make(map[uint64]*job, len(s.jobs))
	for id, j := range s.jobs {
		jobs[id] = j
	}
	s.jobs = jobs
	s.jobsPeak = len(jobs)
	for f := range s.bigUniq {
		u := make(map[string]*job, len(f.uniq))
		for k, j := range f.uniq {
			u[k] = j
		}
		f.uniq = u
		f.uniqPeak = len(u)
		if len(u) < bigUniq {
			delete(s.bigUniq, f)
		}
	}
	if len(s.future) == 0 {
		s.future = nil
	}
	if s.releasing || s.closed {
		return
	}
	s.releasing = true
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		debug.FreeOSMemory()
		s.mu.Lock()
		s.releasing = false
		s.mu.Unlock()
	}()
}

// wakeWorkers sends NOOP to sleeping workers of fn that have not been
// woken yet: at most Options.WorkerWakeup of them (0 = all), starting at a
// rotating position so that wake-ups are spread out.
func (s *Server) wakeWorkers(fn *function) {
	n := len(fn.workers)
	if n == 0 || s.draining {
		return
	}
	limit := s.opts.WorkerWakeup
	woken := 0
	start := fn.wake % n
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		w := fn.workers[idx].c
		if !w.sleeping || w.noopSent {
			continue
		}
		w.noopSent = true
		w.sendPacket(protocol.Noop, true)
		woken++
		if limit > 0 && woken >= limit {
			fn.wake = idx + 1
			return
		}
	}
	if woken > 0 {
		fn.wake = start + 1
	}
}

// hasWork reports whether a job is runnable now for one of c's functions.
func (s *Server) hasWork(c *conn) bool {
	return c.ready[0].head != nil || c.ready[1].head != nil || c.ready[2].head != nil
}

// grab takes the next job for worker c: the highest priority over all of
// its functions, functions of equal priority served round-robin. O(1):
// c's ready lists hold exactly the registrations with a queued job.
func (s *Server) grab(c *conn) *job {
	if s.draining {
		return nil
	}
	for p := range c.ready {
		l := &c.ready[p]
		if a := l.head; a != nil {
			l.rotate(p)
			j := a.fn.queues[p].head
			s.assign(j, a)
			return j
		}
	}
	return nil
}

// assign hands a queued job of a.fn to worker a.c and arms its
// CAN_DO_TIMEOUT.
func (s *Server) assign(j *job, a *ability) {
	c := a.c
	s.unlink(j)
	now := s.clk.Now().UnixNano()
	j.fn.wait.observeDuration(time.Duration(now - j.since))
	j.since = now
	j.state = stRunning
	j.worker = c
	if j.ext != nil && j.ext.claim != nil {
		s.served(j)
	}
	j.gen++
	j.fn.running++
	s.running++
	a.running.push(j)
	c.nrunning++
	if d := a.timeout; d > 0 {
		id, gen := j.id, j.gen
		j.arm(c, s.clk.AfterFunc(d, func() { s.timeout(id, gen) }))
	}
}

// timeout is the CAN_DO_TIMEOUT timer of one assignment.
func (s *Server) timeout(id uint64, gen uint16) {
	h := handler{s: s}
	s.mu.Lock()
	j := s.jobs[id]
	if s.closed || j == nil || j.state != stRunning || j.gen != gen {
		s.mu.Unlock()
		return
	}
	j.stopTimer() // fired: this only takes it off the armed list
	s.counters.timedOut++
	s.log.WithFields(map[string]any{"function": j.fn.name, "job_handle": s.handleString(j.id)}).Info("job timed out, requeued")
	s.requeue(j, &h)
	s.mu.Unlock()
	h.flushDeletes()
}

// requeue puts a running job back after its worker left, gave up the
// function or timed out. It counts a retry; at the Options.JobRetries
// limit the job is dropped and its clients get WORK_FAIL.
func (s *Server) requeue(j *job, h *handler) {
	s.unlink(j)
	if j.cancelled || (!j.bg && j.nclients == 0) {
		s.free(j, h)
		return
	}
	if j.ext != nil && j.ext.fenced {
		// Its record may be another member's now, which serves it.
		s.sendToClients(j, protocol.WorkFail, nil, h.c)
		s.free(j, nil)
		return
	}
	if j.retries < 0xffff {
		j.retries++
	}
	if lim := s.opts.JobRetries; lim >= 0 && int(j.retries) >= lim {
		s.counters.dropped++
		s.counters.failed++
		s.log.WithFields(map[string]any{"function": j.fn.name, "job_handle": s.handleString(j.id)}).Warn("dropped job due to max retry count")
		s.sendToClients(j, protocol.WorkFail, nil, h.c)
		s.free(j, h)
		return
	}
	s.counters.requeued++
	j.num, j.den = 0, 0
	s.enqueue(j, s.clk.Now())
}

// sendToClients sends a packet about j to every attached client, newest
// first as gearmand does, once per submit (a client that submitted the
// job twice gets it twice, as from gearmand). args are the arguments
// after the handle.
func (s *Server) sendToClients(j *job, t protocol.Type, args [][]byte, cur *conn) {
	if j.clients.head == nil {
		return
	}
	hsize := s.handleLen(j.id) // the size of a WORK_FAIL
	full := hsize
	for _, a := range args {
		full += 1 + len(a)
	}
	for a := j.clients.tail; a != nil; a = a.jprev {
		c := a.c
		typ := t
		if t == protocol.WorkException && !c.exceptions {
			typ = protocol.WorkFail
		}
		buf := c.beginOut()
		if c.dead {
			c.endOut(buf, false)
			continue
		}
		size := full
		if typ == protocol.WorkFail {
			size = hsize
		}
		start := len(buf)
		buf = protocol.AppendHeader(buf, protocol.Res, typ, size)
		buf = s.appendHandle(buf, j.id)
		if typ != protocol.WorkFail {
			for _, a := range args {
				buf = append(buf, 0)
				buf = append(buf, a...)
			}
		}
		// The copies for duplicate submits: at most the output bound
		// (endOut drops a connection beyond it).
		if a.n > 1 {
			end := len(buf)
			one := end - start
			copies := min(a.n-1, (s.opts.MaxOutBuffer-len(buf))/one+1)
			if copies > 0 {
				buf = slices.Grow(buf, copies*one)
				for range copies {
					buf = append(buf, buf[start:end]...)
				}
			}
		}
		c.endOut(buf, c != cur)
	}
}

// futureHeap orders epoch jobs that are not due yet by their time.
type futureHeap []*job

func (h futureHeap) Len() int { return len(h) }
func (h futureHeap) Less(a, b int) bool {
	if wa, wb := h[a].when(), h[b].when(); wa != wb {
		return wa < wb
	}
	return h[a].id < h[b].id
}
func (h futureHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].ext.heapIdx = int32(a)
	h[b].ext.heapIdx = int32(b)
}
func (h *futureHeap) Push(x any) {
	j := x.(*job)
	j.x().heapIdx = int32(len(*h))
	*h = append(*h, j)
}
func (h *futureHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.ext.heapIdx = -1
	return j
}

// armEpoch arms the epoch timer for the earliest waiting job.
func (s *Server) armEpoch() {
	if len(s.future) == 0 || s.closed && !s.draining {
		return
	}
	at := s.future[0].when()
	if s.epochT != nil && s.epochAt <= at {
		return
	}
	if s.epochT != nil {
		s.epochT.Stop()
	}
	d := time.Unix(at, 0).Sub(s.clk.Now())
	if d < 0 {
		d = 0
	}
	s.epochAt = at
	s.epochT = s.clk.AfterFunc(d, s.epochDue)
}

// epochDue moves due epoch jobs to their queues; their functions' sleeping
// workers get NOOP.
func (s *Server) epochDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epochT = nil
	s.epochAt = 0
	if s.closed && !s.draining {
		return
	}
	now := s.clk.Now()
	for len(s.future) > 0 && s.future[0].when() <= now.Unix() {
		j := heap.Pop(&s.future).(*job)
		j.fn.queued[j.prio]--
		j.state = stNew
		s.enqueue(j, now)
	}
	s.armEpoch()
}

// storeRef is a store deletion to do outside the lock, versioned when it
// was decided (Server.deleteRef).
type storeRef struct {
	fn, key string
	version int64
}

func (h *handler) flushDeletes() {
	if len(h.deletes) == 0 {
		return
	}
	h.s.del.enqueue(h.deletes)
	clear(h.deletes)
	h.deletes = h.deletes[:0]
}
