package server

import (
	"testing"
	"time"
)

// logLimit lets one line a second through and counts the rest.
func TestLogLimit(t *testing.T) {
	var l logLimit
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at        time.Duration
		wantOK    bool
		wantN     uint64
		wantTotal uint64
	}{
		{0, true, 1, 1},                       // the first is logged
		{100 * time.Millisecond, false, 0, 2}, // then held back
		{900 * time.Millisecond, false, 0, 3},
		{time.Second, true, 3, 4}, // a second later: stands for the three since
		{1500 * time.Millisecond, false, 0, 5},
		{5 * time.Second, true, 2, 6},
	}
	for i, s := range steps {
		n, total, ok := l.hit(t0.Add(s.at))
		if ok != s.wantOK || n != s.wantN || total != s.wantTotal {
			t.Errorf("step %d at %v: hit = %d, %d, %v; want %d, %d, %v", i, s.at, n, total, ok, s.wantN, s.wantTotal, s.wantOK)
		}
	}
}
