package server

import (
	"context"
	"fmt"

	"github.com/gworkerd/gworkerd/server/store"
)

// replay loads every stored job as a background job. Jobs get new handles
// and keep their storage keys; duplicate (function, unique) records
// coalesce into the first.
func (s *Server) replay(ctx context.Context) error {
	n := 0
	var unkeyed []*job // records stored under an empty key (gearmand's empty unique)
	err := s.store.Replay(ctx, func(r store.Job) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		j := s.adoptRecord(r, s.clk.Now(), false)
		if j == nil {
			return nil
		}
		if r.Key == "" {
			unkeyed = append(unkeyed, j)
		}
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("server: replay store: %w", err)
	}
	if err := s.rekey(ctx, unkeyed); err != nil {
		return err
	}
	s.log.WithField("jobs", n).Info("replayed stored jobs")
	return nil
}

// rekey moves replayed jobs whose record has an empty key to a fresh key
// (store.NewKey). gearmand stores a job under its unique, so a job it took
// with an empty unique has an empty key; the server takes an empty key
// for "not stored" and would never delete that record, replaying the job
// after every restart. The new record is written before the old one is
// deleted: a crash in between replays the job twice, never zero times.
// Called before the server accepts connections.
func (s *Server) rekey(ctx context.Context, jobs []*job) error {
	for _, j := range jobs {
		s.mu.Lock()
		rec := j.record()
		rec.Key = s.storeKey("")
		rec.Version = s.nextVersion()
		del := store.Ref{Function: rec.Function, Version: s.nextVersion()}
		s.mu.Unlock()
		if err := s.store.Add(ctx, rec); err != nil {
			return fmt.Errorf("server: replay store: re-key %s job with an empty unique: %w", rec.Function, err)
		}
		if err := s.store.Delete(ctx, del); err != nil {
			return fmt.Errorf("server: replay store: delete %s job with an empty key: %w", rec.Function, err)
		}
		s.mu.Lock()
		j.x().key = rec.Key
		s.mu.Unlock()
	}
	return nil
}
