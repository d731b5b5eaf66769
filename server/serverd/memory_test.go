package serverd

import (
	"testing"
)

// TestMaxQueueMemoryResolve: --max-queue-memory auto (-1) is a quarter of
// the memory limit, unlimited without one; explicit values are kept.
func TestMaxQueueMemoryResolve(t *testing.T) {
	t.Parallel()
	lim := memLimit{bytes: 1536 << 20, source: "memory.max"}
	tests := []struct {
		flag int64
		ok   bool
		want int64
	}{
		{-1, true, 384 << 20},
		{-1, false, 0},
		{0, true, 0},
		{1 << 20, true, 1 << 20},
	}
	for _, tt := range tests {
		if got := maxQueueMemory(tt.flag, lim, tt.ok); got != tt.want {
			t.Errorf("maxQueueMemory(%d, %d, %v) = %d, want %d", tt.flag, lim.bytes, tt.ok, got, tt.want)
		}
	}
}
