package server

import (
	"runtime"
	"slices"
	"sort"
)

// This file holds the listings (status, prioritystatus, workers, show
// jobs, Stats, Workers, Jobs, ...): each visits many elements of the
// state (functions, connections, registrations, running jobs, jobs), as
// many as the clients made. A walk visits at most walkChunk of them per
// hold of Server.mu and releases the lock between chunks, so that no
// listing freezes the other connections, however big the state.
//
// What a listing shows: every element present for the whole listing is
// listed exactly once, in the listing's order, and each row is read in
// one hold of the lock (its figures are consistent with each other). An
// element created or removed while the listing runs may or may not be
// listed; a connection that goes away while its row is being read is
// left out. Rows read in different chunks are from different instants:
// the sum of a column may differ from a total read at another instant.
//
// Positions survive the lock's release as follows:
//   - functions: Server.funcOrder is in creation order (function.seq
//     grows); a walk resumes after the seq it saw last.
//   - connections, a connection's registrations and a registration's
//     running jobs are linked lists; while a walk waits for the lock,
//     its cursor is in Server.cursors, and whatever unlinks the element a
//     cursor points at first moves that cursor to the next element
//     (moveCursors*). Elements are only ever added at the end a walk
//     moves towards, so nothing present is skipped.
//   - jobs: the job map is ranged over across releases (Go's range
//     tolerates changes of the map); since shrink may replace the map,
//     every job is checked to be still in Server.jobs.

// walkChunk bounds the elements a listing visits in one hold of
// Server.mu.
const walkChunk = 256

// cursor is a walk's position in the linked lists: each field is the
// next element to visit, nil when there is none.
type cursor struct {
	conn *conn    // next connection, in id order
	abil *ability // next registration of the current connection, newest first
	job  *job     // next running job of the current registration, oldest first
}

// walk is one listing in progress. Create it with s.walk() with s.mu
// held; call end before releasing s.mu.
type walk struct {
	s     *Server
	cur   cursor
	steps int
}

func (s *Server) walk() *walk { return &walk{s: s} }

// step counts one element visited. After walkChunk of them it releases
// s.mu, lets others run, takes s.mu back and reports true: the state may
// have changed meanwhile (w.cur was kept valid).
func (w *walk) step() bool {
	w.steps++
	if w.steps < walkChunk {
		return false
	}
	s := w.s
	s.walkHolds.observe(w.steps)
	w.steps = 0
	s.cursors = append(s.cursors, &w.cur)
	hook := s.walkPaused
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	runtime.Gosched()
	s.mu.Lock()
	s.cursors = slices.DeleteFunc(s.cursors, func(c *cursor) bool { return c == &w.cur })
	return true
}

// end records the last chunk. s.mu is held.
func (w *walk) end() {
	if w.steps > 0 {
		w.s.walkHolds.observe(w.steps)
		w.steps = 0
	}
}

// functions calls visit for every function in listing order (creation
// order) until visit returns false.
func (w *walk) functions(visit func(f *function) bool) {
	s := w.s
	for i := 0; i < len(s.funcOrder); {
		f := s.funcOrder[i]
		if !visit(f) {
			return
		}
		i++
		if w.step() {
			seq := f.seq
			i = sort.Search(len(s.funcOrder), func(k int) bool { return s.funcOrder[k].seq > seq })
		}
	}
}

// jobs calls visit for every job, in no order.
func (w *walk) jobs(visit func(j *job)) {
	s := w.s
	for id, j := range s.jobs {
		if s.jobs[id] != j {
			continue // the map was rebuilt by shrink, and j freed since
		}
		visit(j)
		w.step()
	}
}

// connVisitor receives a walk over connections and their registrations.
// conn starts a connection's row and reports whether to read its
// registrations; abil and job add to the row; done ends it, gone drops
// it (the connection went away meanwhile).
type connVisitor struct {
	conn func(c *conn) bool
	abil func(a *ability)
	job  func(j *job) // nil: running jobs are not visited
	done func(c *conn)
	gone func(c *conn)
}

// conns walks the connections in id order, each one's registrations
// newest first and, with v.job, each registration's running jobs.
func (w *walk) conns(v connVisitor) {
	s := w.s
	w.cur.conn = s.conns.head
	for w.cur.conn != nil {
		c := w.cur.conn
		w.cur.conn = c.next
		w.cur.abil = nil
		if !v.conn(c) {
			w.step()
			continue
		}
		w.cur.abil = c.abilTail
		if w.step() && c.gone {
			v.gone(c)
			continue
		}
		for w.cur.abil != nil && !c.gone {
			a := w.cur.abil
			w.cur.abil = a.prev
			v.abil(a)
			paused := w.step()
			if v.job == nil {
				continue
			}
			if paused && a.c != c {
				continue // removed meanwhile: its jobs went first
			}
			for w.cur.job = a.running.head; w.cur.job != nil && !c.gone; {
				j := w.cur.job
				w.cur.job = j.next
				v.job(j)
				w.step()
			}
			w.cur.job = nil
		}
		if c.gone {
			v.gone(c)
			continue
		}
		v.done(c)
	}
}

// moveCursorsConn moves the walks pointing at c, which leaves the
// connection list, to the next connection.
func (s *Server) moveCursorsConn(c *conn) {
	for _, cur := range s.cursors {
		if cur.conn == c {
			cur.conn = c.next
		}
	}
}

// moveCursorsAbil moves the walks pointing at a, which is removed, to
// the next registration (the older one).
func (s *Server) moveCursorsAbil(a *ability) {
	for _, cur := range s.cursors {
		if cur.abil == a {
			cur.abil = a.prev
		}
	}
}

// moveCursorsJob moves the walks pointing at j, which leaves its
// running list, to the next running job.
func (s *Server) moveCursorsJob(j *job) {
	for _, cur := range s.cursors {
		if cur.job == j {
			cur.job = j.next
		}
	}
}

// connList lists the connections in id order (the order of their
// acceptance).
type connList struct {
	head, tail *conn
	n          int
}

func (l *connList) push(c *conn) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
	l.n++
}

func (l *connList) remove(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
	l.n--
}
