package client

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/sirupsen/logrus"
)

// reply is what the reader hands to a waiting request.
type reply struct {
	pkt protocol.Packet // owned copy
	err error
}

// pending is one request waiting for its reply. Replies to requests come
// back in the order the requests were written (gearmand answers each
// connection in order), so the reader pops pendings from the head of a
// FIFO. A pending whose caller gave up stays in the FIFO: its reply is
// read and dropped, so no later request can receive it.
type pending struct {
	want protocol.Type // JOB_CREATED, ECHO_RES, STATUS_RES, ...
	ch   chan reply    // capacity 1: the reader never blocks on it
	job  *Job          // foreground submit: registered on JOB_CREATED
	// abandoned is set (under conn.mu) when the caller stopped waiting.
	abandoned bool
}

// conn is one connection to a server: any number of goroutines write
// requests; one reader goroutine (started by dialConn, ended when the
// connection fails or is closed) reads every reply.
//
// Lock order: conn.mu, then Job.mu.
type conn struct {
	addr string
	nc   net.Conn
	log  logrus.FieldLogger

	mu      sync.Mutex
	err     error      // set once, when the connection is done
	pending []*pending // FIFO of requests awaiting a reply
	jobs    map[string][]*Job
	wbuf    []byte // requests not yet written
	spare   []byte
	writing bool // a goroutine is writing wbuf out

	done chan struct{} // closed when the reader exits
	dead atomic.Bool
}

func newConn(addr string, nc net.Conn, cfg *config, readers *sync.WaitGroup) *conn {
	c := &conn{
		addr: addr,
		nc:   nc,
		log:  cfg.logger.WithField("server", addr),
		jobs: make(map[string][]*Job),
		done: make(chan struct{}),
	}
	go func() {
		defer readers.Done()
		c.readLoop(cfg.limits)
	}()
	return c
}

// enqueue queues pkt for writing and p (if any) for its reply, in one
// step, so that the FIFO order is the wire order. Concurrent callers'
// packets are written in batches by whichever caller found the writer
// idle (group commit): pipelining without a writer goroutine.
func (c *conn) enqueue(pkt []byte, p *pending) error {
	c.mu.Lock()
	if err := c.appendLocked(pkt, p); err != nil {
		c.mu.Unlock()
		return err
	}
	c.writeLocked()
	return nil
}

// hold queues pkt and p as enqueue does, without writing: the caller
// calls flush after its last one (SubmitBackgroundBatch: one write for a
// batch instead of one a job).
func (c *conn) hold(pkt []byte, p *pending) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.appendLocked(pkt, p)
}

// flush writes what is queued, unless another caller is writing it.
func (c *conn) flush() {
	c.mu.Lock()
	c.writeLocked()
}

// appendLocked queues pkt and p; c.mu is held.
func (c *conn) appendLocked(pkt []byte, p *pending) error {
	if c.err != nil {
		return c.err
	}
	if p != nil {
		c.pending = append(c.pending, p)
	}
	c.wbuf = append(c.wbuf, pkt...)
	return nil
}

// writeLocked writes the queued packets until none is left, unless
// someone is writing already. Called with c.mu held; returns with it
// released.
func (c *conn) writeLocked() {
	if c.writing || len(c.wbuf) == 0 {
		c.mu.Unlock()
		return
	}
	c.writing = true
	// Let the goroutines ready to run (typically those the reader just
	// woke with their replies) add their requests first, so that one
	// write carries them all: without it a write rarely carried more
	// than its own request (issue 14: gbench 7a, 256 goroutines on one
	// Client, 116k -> 171k submits/s on a quiet machine).
	c.mu.Unlock()
	runtime.Gosched()
	c.mu.Lock()
	for len(c.wbuf) > 0 && c.err == nil {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		if cap(buf) <= maxSpare {
			c.spare = buf[:0]
		}
		if err != nil {
			c.writing = false
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: write: %w", ErrConnLost, err))
			return // the pendings receive the error
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// maxSpare bounds the write buffer a connection keeps for reuse, so one
// large payload does not pin its memory.
const maxSpare = 1 << 20

// abandon marks p as given up by its caller. If its foreground job was
// already registered, the job is detached.
func (c *conn) abandon(p *pending) {
	c.mu.Lock()
	p.abandoned = true
	c.mu.Unlock()
	if p.job != nil {
		c.detach(p.job)
	}
}

// detach stops delivering events to j.
func (c *conn) detach(j *Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := j.Handle
	list := c.jobs[h]
	for i, x := range list {
		if x == j {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.jobs, h)
	} else {
		c.jobs[h] = list
	}
}

// fail ends the connection with err: every waiting request and every
// foreground job on it receives err.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.dead.Store(true)
	pend := c.pending
	jobs := c.jobs
	c.pending = nil
	c.jobs = nil
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, p := range pend {
		p.ch <- reply{err: err}
	}
	for _, list := range jobs {
		for _, j := range list {
			j.finish(Event{Kind: EventError}, err)
		}
	}
}

func (c *conn) readLoop(l protocol.Limits) {
	defer close(c.done)
	r := protocol.NewReader(c.nc, l)
	for {
		f, err := r.Next()
		if err != nil {
			c.fail(fmt.Errorf("%w: read: %w", ErrConnLost, err))
			return
		}
		if f.Text {
			c.fail(fmt.Errorf("%w: unexpected text line %q", ErrProtocol, f.Line))
			return
		}
		if err := c.handle(&f.Packet); err != nil {
			c.log.WithError(err).Warn("closing connection")
			c.fail(err)
			return
		}
	}
}

func (c *conn) handle(p *protocol.Packet) error {
	switch p.Type {
	case protocol.JobCreated, protocol.EchoRes, protocol.StatusRes,
		protocol.StatusResUnique, protocol.OptionRes, protocol.Error:
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			if p.Type == protocol.Error {
				return fmt.Errorf("%w: unsolicited %w", ErrProtocol, protocol.ParseError(p))
			}
			return fmt.Errorf("%w: unsolicited %s", ErrProtocol, p.Type)
		}
		head := c.pending[0]
		if p.Type != protocol.Error && p.Type != head.want {
			c.mu.Unlock()
			return fmt.Errorf("%w: got %s while waiting for %s", ErrProtocol, p.Type, head.want)
		}
		c.pending[0] = nil
		c.pending = c.pending[1:]
		if p.Type == protocol.JobCreated && head.job != nil && !head.abandoned {
			// Register before any WORK_* for this handle can be read.
			h := string(p.Arg(0))
			head.job.Handle = h
			c.jobs[h] = append(c.jobs[h], head.job)
		}
		c.mu.Unlock()
		head.ch <- reply{pkt: p.Clone()}
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		// gearmand sends WORK_FAIL "HANDLE\0" for exceptions to clients
		// that did not ask for them.
		h := string(bytes.TrimSuffix(p.Arg(0), []byte{0}))
		ev := eventOf(p)
		c.mu.Lock()
		list := c.jobs[h]
		if ev.Kind.Terminal() {
			delete(c.jobs, h)
		}
		c.mu.Unlock()
		for _, j := range list {
			if ev.Kind.Terminal() {
				j.finish(ev, nil)
			} else {
				j.add(ev)
			}
		}
	case protocol.Noop:
	default:
		c.log.WithField("packet", p.Type.String()).Debug("ignoring packet")
	}
	return nil
}

// request writes pkt and returns the pending that will receive its reply.
func (c *conn) request(pkt []byte, want protocol.Type, j *Job) (*pending, error) {
	p := newPending(want, j)
	if err := c.enqueue(pkt, p); err != nil {
		return nil, err
	}
	return p, nil
}

func newPending(want protocol.Type, j *Job) *pending {
	return &pending{want: want, ch: make(chan reply, 1), job: j}
}
