package worker

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/protocol"
)

// serve is the loop for one server, one goroutine per server, owned by
// Run. It connects, registers, grabs and sleeps, reconnects with backoff
// when the connection fails, and returns when the worker stops grabbing
// and the jobs held on its connection are reported.
func (w *Worker) serve(ctx context.Context, addr string) {
	log := w.log.WithField("server", addr)
	failures := 0
	for {
		if w.stopping(ctx) {
			return
		}
		s, err := w.connect(ctx, addr)
		if err == nil {
			failures = 0
			w.setConnected(addr, true)
			log.Info("registered with server")
			w.emit(Event{Kind: Connected, Server: addr})
			err = w.loop(ctx, s, log)
			w.setConnected(addr, false)
			if err == nil { // stopping: finish this connection's jobs first
				w.drain(s)
				return
			}
			w.closeSession(s)
			log.WithError(err).Warn("lost server, reconnecting")
			w.emit(Event{Kind: Disconnected, Server: addr, Err: err})
		} else if !w.stopping(ctx) {
			// The first failure warns; the retries that follow it, with
			// backoff, would fill the log: debug.
			l := log.WithError(err).WithField("attempt", failures+1)
			if failures == 0 {
				l.Warn("cannot connect to server, retrying with backoff")
			} else {
				l.Debug("cannot connect to server, retrying with backoff")
			}
		}
		failures++
		t := w.opts.Clock.NewTimer(w.opts.Backoff.policy().Delay(failures, nil))
		select {
		case <-t.C():
		case <-ctx.Done():
		case <-w.stopCh:
		}
		t.Stop()
	}
}

func (w *Worker) setConnected(addr string, ok bool) {
	w.mu.Lock()
	w.connected[addr] = ok
	w.mu.Unlock()
}

// connect dials addr and registers every function.
func (w *Worker) connect(ctx context.Context, addr string) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, w.opts.DialTimeout)
	defer cancel()
	conn, err := w.opts.Dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newSession(addr, conn, w.opts.Clock.Now)
	w.mu.Lock()
	w.sessions[s] = struct{}{}
	w.mu.Unlock()
	select {
	case <-w.abortCh:
		w.closeSession(s)
		return nil, ErrConnClosed
	default:
	}

	if w.opts.ClientID != "" {
		if err := s.send(dctx, protocol.SetClientID, []byte(w.opts.ClientID)); err != nil {
			w.closeSession(s)
			return nil, err
		}
	}
	names := make([]string, 0, len(w.opts.Functions))
	for name := range w.opts.Functions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fc := w.opts.Functions[name]
		if fc.Timeout > 0 && !fc.TimeoutFails {
			ms := max(fc.Timeout.Milliseconds(), 1)
			err = s.send(dctx, protocol.CanDoTimeout, []byte(name), []byte(strconv.FormatInt(ms, 10)))
		} else {
			err = s.send(dctx, protocol.CanDo, []byte(name))
		}
		if err != nil {
			w.closeSession(s)
			return nil, err
		}
	}
	return s, nil
}

func (w *Worker) closeSession(s *session) {
	s.close()
	w.mu.Lock()
	delete(w.sessions, s)
	w.mu.Unlock()
}

// drain waits until the jobs held on s are reported (or the server goes
// away, or the drain timeout aborts them), then closes s.
func (w *Worker) drain(s *session) {
	done := make(chan struct{})
	go func() { // exits when the session's jobs end; Run waits for those
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-s.readDone:
	case <-w.abortCh:
	}
	w.closeSession(s)
}

// loop grabs and sleeps on one connection. It returns nil when the worker
// stops grabbing, or the connection's error.
//
// With one server, the loop keeps up to Concurrency grabs in flight (the
// replies come in order) and jobs ending hand their slot over to a grab
// sent with their result (handOver), so that a worker with several slots
// keeps them busy over one connection. With several servers it keeps one
// in flight, and the servers take turns.
func (w *Worker) loop(ctx context.Context, s *session, log logrus.FieldLogger) error {
	maxInflight := 1
	if len(w.opts.Servers) == 1 {
		maxInflight = w.opts.Concurrency
	}
	// booked, while not nil, is closed when a MaxJobs reservation frees.
	var booked <-chan struct{}
	// silent fires when the oldest grab in flight has waited GrabTimeout
	// (silentFor is that grab's time).
	var silent clock.Timer
	var silentFor time.Time
	defer func() {
		if silent != nil {
			silent.Stop()
		}
	}()
	for {
		inflight, noJob, at := s.state()
		var silentC <-chan time.Time
		if inflight > 0 {
			// Silent since the grab was sent: bytes arriving (a large
			// JOB_ASSIGN on a slow link) count as an answer under way.
			if h := s.lastHeard(); h.After(at) {
				at = h
			}
			wait := at.Add(w.opts.GrabTimeout).Sub(w.opts.Clock.Now())
			if wait <= 0 {
				log.WithField("grab_timeout", w.opts.GrabTimeout).Warn("no answer to a grab: the server or the network is down; reconnecting")
				return w.leave(s, ErrNoAnswer)
			}
			if silent == nil {
				silent = w.opts.Clock.NewTimer(wait)
			} else if !at.Equal(silentFor) {
				silent.Reset(wait)
			}
			silentFor = at
			silentC = silent.C()
		}
		stopping := w.stopping(ctx)
		if inflight == 0 {
			if stopping && s.leaveIfIdle() {
				return nil
			}
			if noJob {
				// 3. Nothing to do: sleep until a NOOP (or the poll interval).
				if stop, err := w.idle(ctx, s, log); stop || err != nil {
					return w.leave(s, err)
				}
				continue
			}
		}

		// 1. A free slot (Concurrency bounds the jobs held on all servers)
		// for one more grab; 2. the replies.
		var slots chan struct{}
		if !stopping && booked == nil && inflight < maxInflight && !noJob {
			slots = w.slots
		}
		var ctxDone <-chan struct{}
		var stopCh chan struct{}
		if !stopping {
			ctxDone, stopCh = ctx.Done(), w.stopCh
		}
		if inflight == 0 {
			s.park(&w.idleLoops)
		}
		select {
		case slots <- struct{}{}:
			s.unpark(&w.idleLoops)
			changed, err := w.sendGrab(s)
			if err != nil {
				return w.leave(s, err)
			}
			booked = changed
		case <-booked:
			s.unpark(&w.idleLoops)
			booked = nil
		case p := <-s.frames:
			s.unpark(&w.idleLoops)
			w.reply(s, p, log)
		case <-ctxDone:
			s.unpark(&w.idleLoops)
		case <-stopCh:
			s.unpark(&w.idleLoops)
		case <-s.readDone:
			s.unpark(&w.idleLoops)
			return w.leave(s, s.err())
		case <-silentC:
			s.unpark(&w.idleLoops)
			silentFor = time.Time{} // fired: rearm on the next pass
		}
	}
}

// sendGrab books the slot just taken against MaxJobs and sends a grab.
// When MaxJobs is booked by grabs in flight, it gives the slot back and
// returns a channel closed when one of them comes back empty.
func (w *Worker) sendGrab(s *session) (booked <-chan struct{}, err error) {
	ok, changed := w.reserve()
	if !ok {
		<-w.slots
		return changed, nil
	}
	recorded, err := s.grab(context.Background(), nil, nil)
	if !recorded {
		w.release()
		if err == nil {
			err = ErrConnClosed // given up: the loop does not grab after that
		}
	}
	return nil, err
}

// reply handles a packet read on s: the reply to the oldest grab in
// flight (a job to start, or NO_JOB), or a stray packet.
func (w *Worker) reply(s *session, p protocol.Packet, log logrus.FieldLogger) {
	switch p.Type {
	case protocol.JobAssignUniq, protocol.JobAssign, protocol.NoJob:
		done, ok := s.popGrab()
		if !ok {
			w.unexpected(p, log)
			return
		}
		if done != nil {
			<-done // the job that sent the grab has ended and been counted
		}
		if p.Type == protocol.NoJob {
			w.release()
			s.setNoJob()
			return
		}
		w.startJob(s, p)
	default:
		w.unexpected(p, log)
	}
}

// idle is the loop's step 3, once every grab came back and one was
// empty: it sleeps until a NOOP after PRE_SLEEP, or polls while a job
// with a CAN_DO_TIMEOUT runs (PRE_SLEEP would cancel the server's timer
// of that job: gearmand does, and so does gserverd). No job hands a grab
// over meanwhile.
func (w *Worker) idle(ctx context.Context, s *session, log logrus.FieldLogger) (stop bool, err error) {
	if w.stopping(ctx) {
		return false, nil // the loop leaves once nothing is in flight
	}
	if s.timed.Load() > 0 {
		stop, err = w.pause(ctx, s, timedPoll, log)
		s.clearNoJob()
		return stop, err
	}
	if !s.startSleep() {
		return false, nil // a job's grab is in flight: its reply first
	}
	defer s.endSleep()
	if err := s.send(context.Background(), protocol.PreSleep); err != nil {
		return false, err
	}
	return w.sleep(ctx, s, log)
}

// leave gives s up after err (nil: the worker stops): the slots and
// reservations of the grabs in flight are released, as their replies
// will not be read.
func (w *Worker) leave(s *session, err error) error {
	for range s.dropGrabs() {
		w.release()
	}
	return err
}

// release gives back a slot and a reservation after NO_JOB or a failure.
func (w *Worker) release() {
	<-w.slots
	w.unreserve()
}

// sleep waits for a NOOP after PRE_SLEEP. It also wakes up every
// PollInterval to grab anyway, in case a wake-up was lost.
func (w *Worker) sleep(ctx context.Context, s *session, log logrus.FieldLogger) (stop bool, err error) {
	return w.wait(ctx, s, w.opts.PollInterval, true, log)
}

// timedPoll is how often a connection that holds a job with a
// CAN_DO_TIMEOUT asks for work, since it must not PRE_SLEEP.
const timedPoll = 500 * time.Millisecond

// pause waits d without PRE_SLEEP, consuming stray packets.
func (w *Worker) pause(ctx context.Context, s *session, d time.Duration, log logrus.FieldLogger) (stop bool, err error) {
	return w.wait(ctx, s, d, false, log)
}

// wait waits d, or until a NOOP when noop is set, or until the worker
// stops or the connection ends; other packets are logged as unexpected.
func (w *Worker) wait(ctx context.Context, s *session, d time.Duration, noop bool, log logrus.FieldLogger) (stop bool, err error) {
	t := w.opts.Clock.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case p := <-s.frames:
			if noop && p.Type == protocol.Noop {
				return false, nil
			}
			w.unexpected(p, log)
		case <-t.C():
			return false, nil
		case <-ctx.Done():
			return true, nil
		case <-w.stopCh:
			return true, nil
		case <-s.readDone:
			return false, s.err()
		}
	}
}

// unexpected logs a packet the loop was not waiting for. ERROR replies
// (a late result for a requeued job gives JOB_NOT_FOUND) land here.
func (w *Worker) unexpected(p protocol.Packet, log logrus.FieldLogger) {
	switch p.Type {
	case protocol.Noop:
		// A wake-up while we were busy: we grab anyway.
	case protocol.Error:
		e := protocol.ParseError(&p)
		log.WithFields(logrus.Fields{"code": e.Code, "text": e.Text}).Warn("server error")
	default:
		log.WithField("packet", p.Type.String()).Warn("unexpected packet")
	}
}
