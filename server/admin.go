package server

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/gworkerd/gworkerd/protocol"
)

// text handles one admin text line (without its terminator). Replies are
// byte for byte gearmand's (docs/PROTOCOL.md section 3), with the section 0
// decisions. It returns false when the connection must be closed.
func (h *handler) text(line []byte) bool {
	c := h.c
	// gearmand splits on runs of spaces; a leading space gives an empty
	// command name.
	args := splitSpaces(string(line))
	if len(line) > 0 && line[0] == ' ' {
		args = append([]string{""}, args...)
	}
	reply := h.admin(args)
	if reply == "" {
		reply = protocol.ReplyUnknownError
	}
	c.sendText(reply, false)
	if h.shutdown != nil {
		// Write the OK before the shutdown closes this connection.
		graceful := *h.shutdown
		h.shutdown = nil
		c.flush()
		h.s.adminShutdown(graceful)
	}
	return true
}

// splitSpaces splits on runs of spaces only (tabs belong to words), as
// gearmand does.
func splitSpaces(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' })
}

func (h *handler) admin(args []string) string {
	s, c := h.s, h.c
	if len(args) == 0 {
		return protocol.ReplyUnknownCommand("")
	}
	name := args[0]
	argc := len(args)
	switch {
	case strings.EqualFold(name, "workers"):
		return s.adminWorkers()
	case strings.EqualFold(name, "status"):
		return s.adminStatus()
	case strings.EqualFold(name, "prioritystatus"):
		return s.adminPriorityStatus()
	case argc >= 3 && strings.EqualFold(name, "cancel"):
		if argc == 3 && strings.EqualFold(args[1], "job") {
			return h.cancelJob(args[2])
		}
		return ""
	case argc >= 2 && strings.EqualFold(name, "show"):
		switch {
		case argc == 3 && strings.EqualFold(args[1], "unique") && strings.EqualFold(args[2], "jobs"):
			return s.adminShowUnique()
		case argc == 2 && strings.EqualFold(args[1], "jobs"):
			return s.adminShowJobs()
		}
		return protocol.ReplyUnknownShowArgs
	case strings.EqualFold(name, "create"):
		if argc == 3 && strings.EqualFold(args[1], "function") {
			if !protocol.ValidFunctionName([]byte(args[2])) {
				return protocol.ReplyInvalidFunctionName
			}
			s.mu.Lock()
			s.function([]byte(args[2]))
			s.mu.Unlock()
			return protocol.ReplyOK
		}
		return protocol.ReplyInvalidArguments(name)
	case strings.EqualFold(name, "drop"):
		if argc == 3 && strings.EqualFold(args[1], "function") {
			return s.dropFunction(args[2])
		}
		return protocol.ReplyInvalidArguments(name)
	case strings.EqualFold(name, "maxqueue"):
		if argc == 1 {
			return protocol.ReplyInvalidArguments(name)
		}
		return s.maxQueue(args[1], args[2:])
	case strings.EqualFold(name, "getpid"):
		return "OK " + strconv.Itoa(s.pid) + "\n"
	case strings.EqualFold(name, "verbose"):
		return "OK " + s.opts.VerboseName + "\n"
	case strings.EqualFold(name, "version"):
		return "OK " + s.opts.Version + "\n"
	case strings.EqualFold(name, "shutdown") && s.opts.AdminShutdown && c.isLoopback():
		graceful := false
		switch {
		case argc == 1:
		case argc == 2 && strings.EqualFold(args[1], "graceful"):
			graceful = true
		default:
			return protocol.ReplyInvalidArguments(name)
		}
		c.logger().WithField("graceful", graceful).Warn("shutdown requested by admin command")
		h.shutdown = &graceful
		return protocol.ReplyOK
	}
	return protocol.ReplyUnknownCommand(name)
}

// adminShutdown runs the shutdown asked for by the admin command, in its
// own goroutine (it waits for connections, this one included).
func (s *Server) adminShutdown(graceful bool) {
	if f := s.opts.OnShutdown; f != nil {
		go f(graceful)
		return
	}
	go func() {
		if graceful {
			_ = s.Shutdown(bgCtx())
			return
		}
		_ = s.Close()
	}()
}

func (s *Server) adminStatus() string {
	var b []byte
	s.mu.Lock()
	w := s.walk()
	w.functions(func(f *function) bool {
		b = append(b, f.name...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(f.total), 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(f.running), 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(f.nworkers), 10)
		b = append(b, '\n')
		return true
	})
	w.end()
	s.mu.Unlock()
	return string(append(b, ".\n"...))
}

func (s *Server) adminPriorityStatus() string {
	var b []byte
	s.mu.Lock()
	w := s.walk()
	w.functions(func(f *function) bool {
		b = append(b, f.name...)
		for p := range 3 {
			b = append(b, '\t')
			b = strconv.AppendInt(b, int64(f.queued[p]), 10)
		}
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(f.nworkers), 10)
		b = append(b, '\n')
		return true
	})
	w.end()
	s.mu.Unlock()
	return string(append(b, ".\n"...))
}

// adminWorkers lists every connection. The first column is the
// connection's id number (gearmand shows its file descriptor): a small
// integer, stable for the connection's life, counted from 1 per server.
func (s *Server) adminWorkers() string {
	var b []byte
	line := 0 // where the current row starts in b
	s.mu.Lock()
	w := s.walk()
	w.conns(connVisitor{
		conn: func(c *conn) bool {
			line = len(b)
			b = strconv.AppendUint(b, c.id, 10)
			b = append(b, ' ')
			b = append(b, c.ip...)
			b = append(b, ' ')
			b = append(b, c.clientID...)
			b = append(b, " :"...)
			return true
		},
		abil: func(a *ability) {
			b = append(b, ' ')
			b = append(b, a.fn.name...)
		},
		done: func(*conn) { b = append(b, '\n') },
		gone: func(*conn) { b = b[:line] },
	})
	w.end()
	s.mu.Unlock()
	return string(append(b, ".\n"...))
}

// jobRow is what `show jobs` and `show unique jobs` show of a job.
type jobRow struct {
	id        uint64
	unique    string
	retries   uint16
	cancelled bool
	bg        bool
}

// jobRows returns a row for every job, in handle order.
func (s *Server) jobRows() []jobRow {
	s.mu.Lock()
	rows := make([]jobRow, 0, len(s.jobs))
	w := s.walk()
	w.jobs(func(j *job) {
		rows = append(rows, jobRow{id: j.id, unique: j.unique, retries: j.retries, cancelled: j.cancelled, bg: j.bg})
	})
	w.end()
	s.mu.Unlock()
	slices.SortFunc(rows, func(a, b jobRow) int { return cmp.Compare(a.id, b.id) })
	return rows
}

func (s *Server) adminShowJobs() string {
	var b []byte
	for _, j := range s.jobRows() {
		b = s.appendHandle(b, j.id)
		b = append(b, '\t')
		b = strconv.AppendUint(b, uint64(j.retries), 10)
		b = append(b, '\t')
		b = append(b, boolDigit(j.cancelled)...)
		b = append(b, '\t')
		b = append(b, boolDigit(j.bg)...)
		b = append(b, '\n')
	}
	return string(append(b, ".\n"...))
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func (s *Server) adminShowUnique() string {
	var b []byte
	for _, j := range s.jobRows() {
		b = append(b, j.unique...)
		b = append(b, '\n')
	}
	return string(append(b, ".\n"...))
}

// cancelJob is `cancel job <handle>`: attached clients get WORK_FAIL once
// and are detached; a queued job is removed at once, a running one when
// its worker finishes (its results go nowhere); the job leaves the store.
func (h *handler) cancelJob(handle string) string {
	s := h.s
	s.mu.Lock()
	j := s.lookup([]byte(handle))
	if j == nil || j.cancelled {
		s.mu.Unlock()
		return protocol.ReplyUnknownJob
	}
	s.sendToClients(j, protocol.WorkFail, nil, h.c)
	s.detachAll(j)
	if j.state == stRunning {
		j.cancelled = true
		if j.unique != "" {
			k := uniqKey(j.unique, j.data)
			if j.fn.uniq[k] == j {
				delete(j.fn.uniq, k)
			}
		}
		if k := j.key(); k != "" {
			h.deletes = append(h.deletes, s.deleteRef(j.fn.name, k))
			j.ext.key = ""
		}
	} else {
		s.free(j, h)
	}
	s.mu.Unlock()
	h.flushDeletes()
	return protocol.ReplyOK
}

// dropFunction is `drop function <name>` (case-insensitive: the first
// function in listing order whose name matches). Unlike gearmand it
// refuses while jobs are queued instead of orphaning them.
func (s *Server) dropFunction(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply := protocol.ReplyFunctionNotFound
	w := s.walk()
	defer w.end()
	w.functions(func(f *function) bool {
		if !strings.EqualFold(f.name, name) {
			return true
		}
		switch {
		case f.nworkers > 0 || f.running > 0:
			reply = protocol.ReplyFunctionBusy
		case f.total > 0:
			reply = protocol.ReplyFunctionHasQueued
		default:
			delete(s.funcs, f.name)
			delete(s.bigUniq, f)
			i, _ := slices.BinarySearchFunc(s.funcOrder, f.seq, func(g *function, seq uint64) int { return cmp.Compare(g.seq, seq) })
			s.funcOrder = slices.Delete(s.funcOrder, i, i+1)
			reply = protocol.ReplyOK
		}
		return false
	})
	return reply
}

// maxQueue is `maxqueue <func> [high [normal [low]]]`, read as gearmand
// 1.1.20 reads it: no size or one size sets every priority to it; two or
// three set high, normal and low in that order, a missing one 0
// (unlimited); sizes after the third are ignored. Each size is C's atoi
// (int), a negative one 0. Unlike gearmand it creates an unknown function
// and keeps the limit.
func (s *Server) maxQueue(name string, sizes []string) string {
	var lim [3]int
	for p := range 3 {
		if p < len(sizes) {
			lim[p] = queueSize(sizes[p])
		}
	}
	if len(sizes) <= 1 {
		lim[1], lim[2] = lim[0], lim[0]
	}
	if !protocol.ValidFunctionName([]byte(name)) {
		return protocol.ReplyInvalidFunctionName
	}
	s.SetMaxQueue(name, lim)
	return protocol.ReplyOK
}

// queueSize is a maxqueue size as gearmand takes it: atoi (strtol cut to
// a C int), then a negative value is 0.
func queueSize(arg string) int {
	v := int32(atoi([]byte(arg)))
	return int(max(v, 0))
}
