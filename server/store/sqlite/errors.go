package sqlite

import (
	"fmt"
	"syscall"
)

// ErrNoSpace is returned by Add when the filesystem of the database file
// has less free space than Options.Headroom plus the jobs: the headroom
// is kept for Deletes, which SQLite's rollback journal needs room for.
// It wraps syscall.ENOSPC.
var ErrNoSpace = fmt.Errorf("sqlite: not enough free space: %w", syscall.ENOSPC)
