//go:build !linux

package loadgen

import "time"

// lockThread is a no-op where sleepPrecise is the runtime's sleep.
func lockThread() func() { return func() {} }

// sleepPrecise sleeps d with the runtime's timers.
func sleepPrecise(d time.Duration) { time.Sleep(d) }
