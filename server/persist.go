package server

import (
	"context"
	"fmt"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// replay loads every stored job as a background job. Jobs get new handles
// and keep their storage keys; duplicate (function, unique) records
// coalesce into the first.
func (s *Server) replay(ctx context.Context) error {
	n := 0
	err := s.store.Replay(ctx, func(r store.Job) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		fn := s.function([]byte(r.Function))
		unique := store.UniqueOf(r.Key)
		if unique != "" {
			if ex := fn.uniq[uniqKey(unique, string(r.Data))]; ex != nil {
				return nil
			}
		}
		prio := protocol.Priority(r.Priority)
		if prio < protocol.High || prio > protocol.Low {
			prio = protocol.Normal
		}
		j := s.newJob(fn, unique, string(r.Data), prio, true)
		x := j.x()
		x.key = r.Key
		x.when = r.When
		x.reducer = r.Reducer
		s.enqueue(j, s.clk.Now())
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("server: replay store: %w", err)
	}
	s.log.WithField("jobs", n).Info("replayed stored jobs")
	return nil
}
