package server

import "time"

// This file holds the two many-to-many relations between connections and
// the rest of the state, built so that one client cannot make the server
// do more than O(1) work under Server.mu per packet it sends:
//
//   - ability: a connection's registration of a function (CAN_DO). A
//     duplicate CAN_DO only counts (ability.n); it is stored once.
//   - attachment: a client waiting for a foreground job. A duplicate
//     submit of the same unique on the same connection only counts
//     (attachment.n); it is stored once.
//
// Both are linked from both sides, so that either side removes one in
// O(1). Everything here is guarded by Server.mu.

// ability is one connection's registration of a function, made by one or
// more CAN_DO or CAN_DO_TIMEOUT packets.
type ability struct {
	c       *conn
	fn      *function
	timeout time.Duration // of the newest CAN_DO; 0 = none
	n       int           // CAN_DOs counted (duplicates included)
	widx    int           // index in fn.workers; -1 once unregistered
	// running lists the jobs of fn that c runs (linked through job.prev
	// and job.next). An ability is removed only once it is empty.
	running jobList
	// prev and next link c's registrations, oldest first.
	prev, next *ability
	// ready links c.ready[p] while fn has a queued job of priority p
	// and a is registered (widx >= 0).
	ready [3]readyLink
}

// readyLink is an ability's place in one of its connection's ready
// lists; in tells whether it is in.
type readyLink struct {
	prev, next *ability
	in         bool
}

// readyList lists the registrations of a connection whose function has a
// queued job of one priority, so that GRAB_JOB and PRE_SLEEP cost O(1)
// however many functions the connection registered. Rotating the head to
// the tail at each grab serves functions of equal priority round-robin.
type readyList struct{ head, tail *ability }

func (l *readyList) add(a *ability, p int) {
	r := &a.ready[p]
	if r.in {
		return
	}
	r.in, r.prev, r.next = true, l.tail, nil
	if l.tail != nil {
		l.tail.ready[p].next = a
	} else {
		l.head = a
	}
	l.tail = a
}

func (l *readyList) remove(a *ability, p int) {
	r := &a.ready[p]
	if !r.in {
		return
	}
	if r.prev != nil {
		r.prev.ready[p].next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.ready[p].prev = r.prev
	} else {
		l.tail = r.prev
	}
	*r = readyLink{}
}

// rotate moves the head to the tail.
func (l *readyList) rotate(p int) {
	if a := l.head; a != nil && a != l.tail {
		l.remove(a, p)
		l.add(a, p)
	}
}

// queueFilled and queueEmptied keep the ready lists of fn's workers
// when fn's queue of priority p gains its first job or loses its last:
// O(workers of fn), as the wake-up that goes with a new job already is.
func queueFilled(fn *function, p int) {
	for _, a := range fn.workers {
		a.c.ready[p].add(a, p)
	}
}

func queueEmptied(fn *function, p int) {
	for _, a := range fn.workers {
		a.c.ready[p].remove(a, p)
	}
}

// addAbility registers fn for c (CAN_DO with timeout, 0 for none). A
// duplicate registration counts and updates the timeout.
func (s *Server) addAbility(c *conn, fn *function, timeout time.Duration) {
	fn.nworkers++
	if a := c.abil[fn]; a != nil {
		a.n++
		a.timeout = timeout
		return
	}
	a := &ability{c: c, fn: fn, timeout: timeout, n: 1, widx: len(fn.workers)}
	if c.abil == nil {
		c.abil = make(map[*function]*ability)
	}
	c.abil[fn] = a
	a.prev = c.abilTail
	if c.abilTail != nil {
		c.abilTail.next = a
	} else {
		c.abilHead = a
	}
	c.abilTail = a
	fn.workers = append(fn.workers, a)
	for p := range fn.queues {
		if fn.queues[p].head != nil {
			c.ready[p].add(a, p)
		}
	}
}

// unregister takes a out of its function's workers: the function counts
// it no more and wakes it no more. The connection keeps it (and the jobs
// it runs) until removeAbility.
func (s *Server) unregister(a *ability) {
	if a.widx < 0 {
		return
	}
	fn := a.fn
	fn.nworkers -= a.n
	for p := range a.ready {
		a.c.ready[p].remove(a, p)
	}
	last := len(fn.workers) - 1
	moved := fn.workers[last]
	fn.workers[a.widx] = moved
	moved.widx = a.widx
	fn.workers[last] = nil
	fn.workers = fn.workers[:last]
	if len(fn.workers) == 0 && cap(fn.workers) > 64 {
		fn.workers = nil
	}
	a.widx = -1
}

// removeAbility removes every registration a stands for. Its running
// list must be empty (requeue its jobs first).
func (s *Server) removeAbility(a *ability) {
	c := a.c
	s.unregister(a)
	s.moveCursorsAbil(a)
	delete(c.abil, a.fn)
	if a.prev != nil {
		a.prev.next = a.next
	} else {
		c.abilHead = a.next
	}
	if a.next != nil {
		a.next.prev = a.prev
	} else {
		c.abilTail = a.prev
	}
	*a = ability{}
}

// attachment is one client connection waiting for one foreground job,
// made by one or more submits of that job on the connection.
type attachment struct {
	j *job
	c *conn
	n int // submits counted (duplicates included)
	// jprev and jnext link j's clients, oldest first; cprev and cnext
	// link c's jobs.
	jprev, jnext *attachment
	cprev, cnext *attachment
}

// attachList is a list of attachments, through either pair of links.
type attachList struct{ head, tail *attachment }

// smallClients is the number of distinct client connections of a job
// found by walking its list; beyond it, a map finds them.
const smallClients = 8

// attach makes c wait for j. A duplicate attachment counts.
func (s *Server) attach(j *job, c *conn) {
	j.nclients++
	if a := j.attachmentOf(c); a != nil {
		a.n++
		return
	}
	a := &attachment{j: j, c: c, n: 1}
	a.jprev = j.clients.tail
	if j.clients.tail != nil {
		j.clients.tail.jnext = a
	} else {
		j.clients.head = a
	}
	j.clients.tail = a
	a.cprev = c.attached.tail
	if c.attached.tail != nil {
		c.attached.tail.cnext = a
	} else {
		c.attached.head = a
	}
	c.attached.tail = a
	c.nattached++
	j.nconns++
	switch x := j.ext; {
	case x != nil && x.byConn != nil:
		x.byConn[c] = a
	case j.nconns > smallClients:
		m := make(map[*conn]*attachment, j.nconns)
		for b := j.clients.head; b != nil; b = b.jnext {
			m[b.c] = b
		}
		j.x().byConn = m
	}
}

// attachmentOf returns c's attachment to j, or nil.
func (j *job) attachmentOf(c *conn) *attachment {
	if j.ext != nil && j.ext.byConn != nil {
		return j.ext.byConn[c]
	}
	// At most smallClients steps: beyond, byConn exists.
	for a := j.clients.tail; a != nil; a = a.jprev {
		if a.c == c {
			return a
		}
	}
	return nil
}

// detach removes the attachment a (all of its submits).
func (s *Server) detach(a *attachment) {
	j, c := a.j, a.c
	j.nclients -= a.n
	j.nconns--
	if x := j.ext; x != nil && x.byConn != nil {
		delete(x.byConn, c)
		if j.nconns == 0 {
			x.byConn = nil
		}
	}
	if a.jprev != nil {
		a.jprev.jnext = a.jnext
	} else {
		j.clients.head = a.jnext
	}
	if a.jnext != nil {
		a.jnext.jprev = a.jprev
	} else {
		j.clients.tail = a.jprev
	}
	if a.cprev != nil {
		a.cprev.cnext = a.cnext
	} else {
		c.attached.head = a.cnext
	}
	if a.cnext != nil {
		a.cnext.cprev = a.cprev
	} else {
		c.attached.tail = a.cprev
	}
	c.nattached--
	*a = attachment{}
}

// detachAll removes every client of j, in O(its distinct clients).
func (s *Server) detachAll(j *job) {
	for j.clients.head != nil {
		s.detach(j.clients.head)
	}
}
