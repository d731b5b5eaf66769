package store

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Gate is the open or closed state that the database-backed stores
// share: every call passes Enter, and Close shuts it once.
type Gate struct {
	closed atomic.Bool
}

// Enter returns ctx's error, or ErrClosed once the store is closed.
func (g *Gate) Enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if g.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Close marks the store closed; it reports whether this call did it, so
// that the connections are released once.
func (g *Gate) Close() bool { return g.closed.CompareAndSwap(false, true) }

// Rows is what ReplayRows needs of a database cursor (*sql.Rows,
// pgx.Rows).
type Rows interface {
	Next() bool
	Err() error
}

// ReplayRows calls fn with the job that scan reads from each row, stopping
// at fn's first error or when ctx ends. Scan and cursor errors are wrapped
// as "name: replay: ...".
func ReplayRows(ctx context.Context, name string, rows Rows, scan func() (Job, error), fn func(Job) error) error {
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		j, err := scan()
		if err != nil {
			return fmt.Errorf("%s: replay: %w", name, err)
		}
		if err := fn(j); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("%s: replay: %w", name, err)
	}
	return nil
}
