package server

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// Size bounds of gearmand (docs/PROTOCOL.md section 2).
const (
	maxUnique   = 64  // accepted whole (section 0)
	maxHandle   = 63  // GEARMAND_JOB_HANDLE_SIZE 64 with its NUL
	maxOption   = 63  // option names
	maxClientID = 127 // SET_CLIENT_ID is truncated to this
	maxTimeout  = 20  // CAN_DO_TIMEOUT digits
)

// bgCtx is the context of the calls the server makes on its own behalf
// (to the store, and Shutdown for the admin command); no client cancels
// them. Store calls get their deadline from store.WithTimeout
// (Options.StoreTimeout), which New wraps around the store.
func bgCtx() context.Context { return context.Background() }

// packet handles one binary packet. It returns false when the connection
// must be closed.
func (h *handler) packet(p *protocol.Packet) bool {
	c := h.c
	if p.Magic != protocol.Req {
		c.sendError(protocol.CodeInvalidMagic, protocol.TextRequestMagicExpected)
		return true
	}
	if !p.Type.IsRequest() {
		c.sendError(protocol.CodeInvalidCommand, protocol.TextCommandNotExpected)
		return true
	}
	if want := p.Type.Args(); want > 1 && len(p.Args) < want {
		c.sendError(protocol.CodeInvalidPacket, textTooFewArgs)
		return true
	}
	if sub, ok := p.Type.Submit(); ok {
		h.submit(p, sub)
		return true
	}
	switch p.Type {
	case protocol.EchoReq:
		c.sendPacket(protocol.EchoRes, false, p.Arg(0))
	case protocol.CanDo:
		h.canDo(p.Arg(0), 0)
	case protocol.CanDoTimeout:
		h.canDoTimeout(p.Args[0], p.Args[1])
	case protocol.CantDo:
		h.cantDo(p.Arg(0))
	case protocol.ResetAbilities:
		h.resetAbilities()
	case protocol.PreSleep:
		h.preSleep()
	case protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll:
		h.grabJob(p.Type)
	case protocol.WorkStatus, protocol.WorkComplete, protocol.WorkFail, protocol.WorkException,
		protocol.WorkData, protocol.WorkWarning:
		h.work(p)
	case protocol.GetStatus:
		h.getStatus(p.Arg(0))
	case protocol.GetStatusUnique:
		h.getStatusUnique(p.Arg(0))
	case protocol.OptionReq:
		h.option(p.Arg(0))
	case protocol.SetClientID:
		id := p.Arg(0)
		if len(id) > maxClientID {
			id = id[:maxClientID]
		}
		s := string(id)
		h.s.mu.Lock()
		c.clientID = s
		h.s.mu.Unlock()
	default:
		c.sendError(protocol.CodeInvalidCommand, protocol.TextCommandNotExpected)
	}
	return true
}

// submit handles every SUBMIT_* variant.
func (h *handler) submit(p *protocol.Packet, sub protocol.SubmitInfo) {
	s, c := h.s, h.c
	fname, unique := p.Args[0], p.Args[1]
	if !h.validName(fname) {
		return
	}
	var reducer []byte
	var when int64
	data := p.Args[len(p.Args)-1]
	switch {
	case sub.Reduce:
		reducer = p.Args[2]
		// gearmand checks the reducer's size where it means the unique's;
		// we check the unique, as the other submits do.
	case sub.Epoch:
		w, ok := strtoll(p.Args[2])
		if !ok {
			c.logger().WithField("function", string(fname)).Info("SUBMIT_JOB_EPOCH: epoch out of range, ignored")
			return
		}
		when = w
	}
	if len(unique) > maxUnique {
		h.flushBatch()
		c.sendError(protocol.CodeArgumentTooLarge, protocol.TextUniqueTooLarge)
		return
	}

	// A reply other than a batched JOB_CREATED must wait for the batch
	// before it, so that replies keep the order of the requests.
retry:
	s.mu.Lock()
	s.unreserve(c) // the payload is here: the job's memory replaces it
	fn := s.function(fname)
	var existing *job
	batched := false // the unique matches a background submit of this connection's batch
	if len(unique) > 0 {
		key := uniqKeyBytes(unique, data)
		existing = fn.uniq[key]
		batched = existing == nil && h.batchHas(fn, key)
	}
	if batched && !(sub.Background && s.store != nil) {
		// Only a background submit joins the batch's entry (queueSubmit):
		// the others coalesce with the job once it exists.
		s.mu.Unlock()
		h.flushBatch()
		goto retry
	}
	if existing != nil && len(h.batch) > 0 {
		s.mu.Unlock()
		h.flushBatch()
		goto retry
	}
	if existing != nil {
		switch {
		case !sub.Background:
			if !existing.cancelled {
				s.attach(existing, c)
			}
		case s.store != nil && existing.key() == "":
			// A background submit makes a job that is not stored (a
			// foreground one) durable: JOB_CREATED after the write.
			h.joinStored(existing)
			return
		default:
			existing.bg = true
		}
		h.replyCreated(existing.id)
		s.mu.Unlock()
		return
	}
	// maxqueue refuses only a submit that would add a job: one whose
	// unique matches a queued or running job joined it above, as in
	// gearmand (gearman_server_job_add_reducer checks the limit only when
	// no job has the unique). The limit counts every job of the function,
	// of every priority, queued or running (gearmand's job_total).
	if lim := fn.max[sub.Priority]; lim > 0 && !batched && fn.total+h.batchCount(fn) >= lim {
		s.mu.Unlock()
		if len(h.batch) > 0 {
			h.flushBatch()
			goto retry
		}
		c.sendError(protocol.CodeQueueError, protocol.TextQueueFull)
		return
	}

	if s.memoryFull(jobMemory(len(unique), len(data), isDash(unique))) {
		s.mu.Unlock()
		if len(h.batch) > 0 {
			h.flushBatch()
			goto retry
		}
		h.refuseMemory(fname)
		return
	}
	if sub.Background && s.store != nil {
		h.queueSubmit(fn, unique, data, sub, when, reducer)
		s.mu.Unlock()
		return
	}
	j := s.newJob(fn, string(unique), h.payload(data), sub.Priority, sub.Background)
	if when != 0 || len(reducer) > 0 {
		x := j.x()
		x.when = when
		x.reducer = string(reducer)
	}
	if !sub.Background {
		s.attach(j, c)
	}
	h.replyCreated(j.id)
	s.enqueue(j, s.clk.Now())
	s.mu.Unlock()
}

func isDash(unique []byte) bool { return len(unique) == 1 && unique[0] == '-' }

// refuseMemory answers a submit refused by Options.MaxQueueMemory, and
// logs the first refusal since memory was last well below the bound.
func (h *handler) refuseMemory(fname []byte) {
	s := h.s
	s.mu.Lock()
	first := !s.memFull
	s.memFull = true
	s.counters.refusedMemory++
	mem := s.mem
	s.mu.Unlock()
	if first {
		s.log.WithFields(map[string]any{"conn_id": h.c.id, "function": string(fname), "queue_memory": mem,
			"max_queue_memory": s.opts.MaxQueueMemory}).Warn("queue memory bound reached: refusing new jobs with QUEUE_ERROR")
	}
	h.c.sendError(protocol.CodeQueueError, textMemoryFull)
}

func uniqKeyBytes(unique, data []byte) string {
	if isDash(unique) {
		return "\x00" + string(data)
	}
	return string(unique)
}

// storeKey returns the storage key of a job with this unique. Jobs with
// an empty unique, and with "-" (coalesced by payload, so several may
// exist), get a fresh key each; after a replay a "-" job has an empty
// unique.
func (s *Server) storeKey(unique string) string {
	if unique != "" && unique != "-" {
		return unique
	}
	s.keySeq++
	return store.NewKey(s.clk.Now(), s.keySeq)
}

// nextVersion returns a store version above every one given before, for
// a record about to be added (store.Job.Version) or a delete just decided
// (store.Ref.Version): a delete then removes the records added before it
// was decided and never one added after, however late the store applies
// it. Both are taken under s.mu, where the decisions are made. Called
// with s.mu held.
func (s *Server) nextVersion() int64 {
	s.version++
	return s.version
}

// deleteRef returns the store deletion of the record of fn stored under
// key, versioned now. Called with s.mu held.
func (s *Server) deleteRef(fn, key string) storeRef {
	return storeRef{fn: fn, key: key, version: s.nextVersion()}
}

// record returns the store record of j (without its key).
func (j *job) record() store.Job {
	return store.Job{
		Function: j.fn.name,
		Priority: int(j.prio),
		Data:     readOnlyBytes(j.data),
		When:     j.when(),
		Reducer:  j.reducer(),
	}
}

func (h *handler) replyCreated(id uint64) {
	c, s := h.c, h.s
	buf := c.beginOut()
	buf = protocol.AppendHeader(buf, protocol.Res, protocol.JobCreated, s.handleLen(id))
	buf = s.appendHandle(buf, id)
	c.endOut(buf, false)
}

// validName reports whether name may name a function; if not, it answers
// ERROR INVALID_FUNCTION_NAME (after the pending batch, so that replies
// keep the order of the requests).
func (h *handler) validName(name []byte) bool {
	if protocol.ValidFunctionName(name) {
		return true
	}
	h.flushBatch()
	h.c.sendError(protocol.CodeInvalidFunctionName, protocol.TextInvalidFunctionName)
	return false
}

func (h *handler) canDo(name []byte, timeout time.Duration) {
	if !h.validName(name) {
		return
	}
	s, c := h.s, h.c
	s.mu.Lock()
	s.addAbility(c, s.function(name), timeout)
	s.mu.Unlock()
}

func (h *handler) canDoTimeout(name, t []byte) {
	if !h.validName(name) {
		return
	}
	if len(t) > maxTimeout {
		h.c.logger().WithField("function", string(name)).Info("CAN_DO_TIMEOUT: timeout too long, ignored")
		return
	}
	ms := strtol(t)
	var d time.Duration
	switch {
	case ms <= 0:
	case ms < 1000:
		d = time.Second
	default:
		d = time.Duration(ms) * time.Millisecond
	}
	h.canDo(name, d)
}

func (h *handler) cantDo(name []byte) {
	s := h.s
	s.mu.Lock()
	if fn := s.funcs[string(name)]; fn != nil {
		h.release(fn, false)
	}
	s.mu.Unlock()
	h.flushDeletes()
}

func (h *handler) resetAbilities() {
	s := h.s
	s.mu.Lock()
	h.release(nil, false)
	s.mu.Unlock()
	h.flushDeletes()
}

// cleanupChunk bounds the steps (a registration removed, a job requeued,
// a client detached) done in one hold of Server.mu while a connection
// gives up functions or goes away, whatever it had piled up: the lock is
// released between chunks so that other connections are served meanwhile.
const cleanupChunk = 256

// release removes the connection's registration of fn (of every function
// when fn is nil) and requeues the jobs of it the connection runs; with
// detach, it also detaches the connection from the jobs it waits for
// (queued foreground jobs nobody waits for any more are removed). It
// works in chunks of at most cleanupChunk steps and releases s.mu between
// them. Called with s.mu held, returns with it held. Only the
// connection's reader calls it, so that the connection gains nothing new
// meanwhile.
func (h *handler) release(fn *function, detach bool) {
	s := h.s
	for !h.releaseSome(fn, detach) {
		s.mu.Unlock()
		h.flushDeletes()
		runtime.Gosched()
		s.mu.Lock()
	}
}

// releaseSome does at most cleanupChunk steps of release and reports
// whether it is done. Called with s.mu held.
func (h *handler) releaseSome(fn *function, detach bool) bool {
	s, c := h.s, h.c
	steps := 0
	defer func() { s.cleanup.observe(steps) }()
	for ; steps < cleanupChunk; steps++ {
		a := c.abilHead
		if fn != nil {
			a = c.abil[fn]
		}
		switch {
		case a != nil && a.widx >= 0:
			s.unregister(a) // counted and woken no more
		case a != nil && a.running.head != nil:
			s.requeue(a.running.head, h) // removes it from a.running
		case a != nil:
			s.removeAbility(a)
		case detach && c.attached.head != nil:
			at := c.attached.head
			j := at.j
			s.detach(at)
			if j.nclients == 0 && !j.bg && j.state != stRunning {
				s.free(j, h)
			}
		default:
			return true
		}
	}
	return false
}

// holdStats records the largest chunk of cleanup steps done in one hold
// of Server.mu (tests check the bound).
type holdStats struct {
	chunks   uint64 // chunks done
	maxSteps int    // most steps in one chunk
}

func (hs *holdStats) observe(steps int) {
	hs.chunks++
	hs.maxSteps = max(hs.maxSteps, steps)
}

func (h *handler) preSleep() {
	s, c := h.s, h.c
	s.mu.Lock()
	c.sleeping = true
	for c.armed != nil {
		c.armed.stopTimer()
	}
	if !c.noopSent && !s.draining && s.hasWork(c) {
		c.noopSent = true
		c.sendPacket(protocol.Noop, false)
	}
	s.mu.Unlock()
}

func (h *handler) grabJob(t protocol.Type) {
	s, c := h.s, h.c
	s.mu.Lock()
	c.sleeping = false
	c.noopSent = false
	j := s.grab(c)
	buf := c.beginOut()
	if j == nil {
		buf = protocol.AppendHeader(buf, protocol.Res, protocol.NoJob, 0)
		c.endOut(buf, false)
		s.mu.Unlock()
		return
	}
	hl := s.handleLen(j.id)
	fn := j.fn.name
	switch {
	case t == protocol.GrabJob:
		buf = protocol.AppendHeader(buf, protocol.Res, protocol.JobAssign, hl+1+len(fn)+1+len(j.data))
		buf = s.appendHandle(buf, j.id)
		buf = append(buf, 0)
		buf = append(buf, fn...)
		buf = append(buf, 0)
	case t == protocol.GrabJobAll && j.reducer() != "":
		buf = protocol.AppendHeader(buf, protocol.Res, protocol.JobAssignAll,
			hl+1+len(fn)+1+len(j.unique)+1+len(j.reducer())+1+len(j.data))
		buf = s.appendHandle(buf, j.id)
		buf = append(buf, 0)
		buf = append(buf, fn...)
		buf = append(buf, 0)
		buf = append(buf, j.unique...)
		buf = append(buf, 0)
		buf = append(buf, j.reducer()...)
		buf = append(buf, 0)
	default:
		buf = protocol.AppendHeader(buf, protocol.Res, protocol.JobAssignUniq, hl+1+len(fn)+1+len(j.unique)+1+len(j.data))
		buf = s.appendHandle(buf, j.id)
		buf = append(buf, 0)
		buf = append(buf, fn...)
		buf = append(buf, 0)
		buf = append(buf, j.unique...)
		buf = append(buf, 0)
	}
	buf = append(buf, j.data...)
	c.endOut(buf, false)
	s.mu.Unlock()
}

// work handles WORK_STATUS, _DATA, _WARNING, _COMPLETE, _FAIL, _EXCEPTION.
func (h *handler) work(p *protocol.Packet) {
	s, c := h.s, h.c
	handle := p.Args[0]
	if p.Type == protocol.WorkFail && len(handle) > maxHandle {
		c.sendError(protocol.CodeArgumentTooLarge, protocol.TextHandleTooLarge)
		return
	}
	s.mu.Lock()
	j := s.lookup(handle)
	if j == nil || j.worker != c {
		s.mu.Unlock()
		switch p.Type {
		case protocol.WorkData, protocol.WorkWarning:
			c.sendError(protocol.CodeJobNotFound, protocol.TextJobDoesNotExist)
		case protocol.WorkException:
			c.sendError(protocol.CodeJobNotFound, protocol.TextExceptionNotFound)
		default:
			c.sendError(protocol.CodeJobNotFound, protocol.TextWorkResultNotFound)
		}
		return
	}
	rest := p.Args[1:]
	switch p.Type {
	case protocol.WorkStatus:
		j.num = uint32(atoi(p.Args[1]))
		j.den = uint32(atoi(p.Args[2]))
		s.sendToClients(j, p.Type, rest, c)
	case protocol.WorkData, protocol.WorkWarning:
		s.sendToClients(j, p.Type, rest, c)
	default:
		switch p.Type {
		case protocol.WorkComplete:
			s.counters.completed++
		case protocol.WorkFail:
			s.counters.failed++
		case protocol.WorkException:
			// An exception is how a job fails (gworkerd's scripts,
			// pecl's GearmanWorker): it counts as failed too.
			s.counters.failed++
			s.counters.exceptions++
		}
		j.fn.run.observeDuration(time.Duration(s.clk.Now().UnixNano() - j.since))
		s.sendToClients(j, p.Type, rest, c)
		s.free(j, h)
	}
	s.mu.Unlock()
	h.flushDeletes()
}

func (h *handler) getStatus(handle []byte) {
	s, c := h.s, h.c
	if len(handle) > maxHandle {
		c.logger().Info("GET_STATUS: handle too long, no reply")
		return
	}
	s.mu.Lock()
	j := s.lookup(handle)
	buf := c.beginOut()
	if j == nil {
		buf = protocol.AppendPacket(buf, protocol.Res, protocol.StatusRes, handle, zero, zero, zero, zero)
	} else {
		var nb, db [10]byte
		num := strconv.AppendUint(nb[:0], uint64(j.num), 10)
		den := strconv.AppendUint(db[:0], uint64(j.den), 10)
		buf = protocol.AppendPacket(buf, protocol.Res, protocol.StatusRes, handle, one, boolArg(j.state == stRunning), num, den)
	}
	c.endOut(buf, false)
	s.mu.Unlock()
}

var (
	zero = []byte("0")
	one  = []byte("1")
)

func boolArg(b bool) []byte {
	if b {
		return one
	}
	return zero
}

func (h *handler) getStatusUnique(unique []byte) {
	s, c := h.s, h.c
	if len(unique) > maxUnique {
		c.logger().Info("GET_STATUS_UNIQUE: unique too long, no reply")
		return
	}
	s.mu.Lock()
	var j *job
	if len(unique) > 0 {
		w := s.walk()
		w.functions(func(fn *function) bool {
			j = fn.uniq[string(unique)]
			return j == nil
		})
		w.end()
	}
	buf := c.beginOut()
	if j == nil {
		buf = protocol.AppendPacket(buf, protocol.Res, protocol.StatusResUnique, unique, zero, zero, zero, zero, zero)
	} else {
		var nb, db, cb [10]byte
		num := strconv.AppendUint(nb[:0], uint64(j.num), 10)
		den := strconv.AppendUint(db[:0], uint64(j.den), 10)
		cnt := strconv.AppendUint(cb[:0], uint64(j.nclients), 10)
		buf = protocol.AppendPacket(buf, protocol.Res, protocol.StatusResUnique, unique, one, boolArg(j.state == stRunning), num, den, cnt)
	}
	c.endOut(buf, false)
	s.mu.Unlock()
}

func (h *handler) option(name []byte) {
	c := h.c
	if len(name) > maxOption || !strings.EqualFold(string(name), "exceptions") {
		c.sendError(protocol.CodeUnknownOption, protocol.TextUnknownOption)
		return
	}
	h.s.mu.Lock()
	c.exceptions = true
	h.s.mu.Unlock()
	c.sendPacket(protocol.OptionRes, false, name)
}

// dropConn removes a closed connection: jobs it ran are requeued, jobs it
// waited for lose it as a client (queued foreground jobs nobody waits for
// any more are removed at once), its registrations go away. This happens
// in bounded chunks (release): the connection is gone from the listings
// at once, its registrations and attachments soon after.
func (s *Server) dropConn(c *conn) {
	h := handler{s: s, c: c}
	c.kill()
	s.mu.Lock()
	if c.gone {
		s.mu.Unlock()
		return
	}
	c.gone = true
	if c.local == nil { // an in-process submit is in no list
		s.moveCursorsConn(c)
		s.conns.remove(c)
	}
	s.unreserve(c)
	h.release(nil, true)
	s.mu.Unlock()
	h.flushDeletes()
}

// atoi is C's atoi: optional space and sign, then digits; garbage gives 0.
func atoi(b []byte) int64 {
	v, _ := parseC(b)
	return v
}

// strtol is atoi for CAN_DO_TIMEOUT values.
func strtol(b []byte) int64 { return atoi(b) }

// strtoll parses like C strtoll: ok is false when the value overflows
// (errno ERANGE). Garbage gives 0, true.
func strtoll(b []byte) (int64, bool) { return parseC(b) }

func parseC(b []byte) (int64, bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	var v uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
		if v > 1<<63 {
			return 0, false
		}
	}
	if !neg && v > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}
