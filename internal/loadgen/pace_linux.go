package loadgen

import (
	"runtime"
	"syscall"
	"time"
)

// lockThread gives the open-loop sender a thread of its own, so that its
// sleeps are the kernel's (nanosleep, tens of µs late) rather than the
// Go runtime's timers (about a millisecond late when the process is
// otherwise idle). It returns the unlock.
func lockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

// sleepPrecise sleeps d in the kernel; a signal may end it early, which
// the caller's loop absorbs.
func sleepPrecise(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	_ = syscall.Nanosleep(&ts, nil)
}
