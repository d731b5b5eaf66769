package worker

import (
	"context"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

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
			log.WithError(err).WithField("attempt", failures+1).Info("cannot connect to server")
		}
		failures++
		t := w.opts.Clock.NewTimer(w.backoff(failures))
		select {
		case <-t.C():
		case <-ctx.Done():
		case <-w.stopCh:
		}
		t.Stop()
	}
}

// backoff returns the wait before reconnection attempt n (n >= 1).
func (w *Worker) backoff(n int) time.Duration {
	b := w.opts.Backoff
	d := float64(b.Initial)
	for i := 1; i < n && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	if b.Jitter > 0 {
		d *= 1 + b.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
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
	s := newSession(addr, conn)
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
func (w *Worker) loop(ctx context.Context, s *session, log logrus.FieldLogger) error {
	bg := context.Background()
	for {
		// 1. A free slot (Concurrency bounds the jobs held on all servers)
		// and a reservation against MaxJobs; or a job ending on this
		// connection has sent the grab with its result (handOver).
		grabbed, first, stop, err := w.acquire(ctx, s, log)
		if stop || err != nil {
			return err
		}

		// 2. Ask for a job.
		if !grabbed {
			if err := s.send(bg, protocol.GrabJobUniq); err != nil {
				w.release()
				return err
			}
		}
		assigned := false
	reply:
		for {
			var p protocol.Packet
			if first != nil {
				p, first = *first, nil
			} else {
				select {
				case p = <-s.frames:
				case <-s.readDone:
					w.release()
					return s.err()
				}
			}
			switch p.Type {
			case protocol.JobAssignUniq, protocol.JobAssign:
				w.startJob(s, p)
				assigned = true
				break reply
			case protocol.NoJob:
				w.release()
				break reply
			default:
				w.unexpected(p, log)
			}
		}
		if assigned {
			continue
		}

		// 3. Nothing to do: sleep until a NOOP (or the poll interval).
		if w.stopping(ctx) {
			return nil
		}
		if s.timed.Load() > 0 {
			// PRE_SLEEP would cancel the server's CAN_DO_TIMEOUT timer of
			// the job we hold (gearmand does, and so does gserverd): poll
			// with GRAB instead while such a job runs.
			if stop, err := w.pause(ctx, s, timedPoll, log); stop || err != nil {
				return err
			}
			continue
		}
		if err := s.send(bg, protocol.PreSleep); err != nil {
			return err
		}
		if stop, err := w.sleep(ctx, s, log); stop || err != nil {
			return err
		}
	}
}

// acquire takes a slot and a MaxJobs reservation, consuming stray packets
// meanwhile. stop is true when the worker stops grabbing. grabbed is true
// when a job ending on s took the loop's turn instead (handOver): its
// slot and reservation pass to the loop and a GRAB_JOB_UNIQ is in flight;
// first, if not nil, is a packet read meanwhile, maybe the reply.
func (w *Worker) acquire(ctx context.Context, s *session, log logrus.FieldLogger) (grabbed bool, first *protocol.Packet, stop bool, err error) {
	for {
		var (
			slot, dead bool
			p          *protocol.Packet
		)
		s.park(&w.idleLoops)
		select {
		case w.slots <- struct{}{}:
			slot = true
		case <-s.handed: // handOver cleared parked
			return true, nil, false, nil
		case <-ctx.Done():
			stop = true
		case <-w.stopCh:
			stop = true
		case f := <-s.frames:
			p = &f
		case <-s.readDone:
			dead = true
		}
		if !s.unpark(&w.idleLoops) {
			// A job took the turn as we woke: its grab is in flight, and
			// its reply comes first once the job has ended (a dead
			// connection: the reply wait sees readDone).
			<-s.handed
			if slot {
				<-w.slots
			}
			return true, p, false, nil
		}
		switch {
		case stop:
			return false, nil, true, nil
		case dead:
			return false, nil, false, s.err()
		case p != nil:
			w.unexpected(*p, log)
			continue
		}
		if w.stopping(ctx) {
			<-w.slots
			return false, nil, true, nil
		}
		ok, changed := w.reserve()
		if ok {
			return false, nil, false, nil
		}
		// MaxJobs is booked by grabs in flight on other connections: wait
		// for one of them to come back empty, or for the stop.
		<-w.slots
		select {
		case <-changed:
		case <-ctx.Done():
			return false, nil, true, nil
		case <-w.stopCh:
			return false, nil, true, nil
		case <-s.readDone:
			return false, nil, false, s.err()
		}
	}
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
