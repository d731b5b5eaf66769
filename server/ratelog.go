package server

import (
	"sync"
	"time"
)

// logLimit lets a repeated log line through at most once a second and
// counts the occurrences in between, so that a fault hit by every
// request (a full disk, a silent database, a connection flood) does not
// flood the log. Safe for concurrent use.
type logLimit struct {
	mu       sync.Mutex
	total    uint64 // since start
	unlogged uint64 // since the last line let through
	lastLog  time.Time
}

// hit counts one occurrence at now. When a line may be written, ok is
// true and n is how many occurrences it stands for (this one included);
// total counts every occurrence since start.
func (l *logLimit) hit(now time.Time) (n, total uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.unlogged++
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < time.Second {
		return 0, l.total, false
	}
	n, l.unlogged, l.lastLog = l.unlogged, 0, now
	return n, l.total, true
}
