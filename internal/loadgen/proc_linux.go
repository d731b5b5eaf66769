package loadgen

import "syscall"

// sysProcAttr puts a server in its own process group and has the kernel
// send it SIGTERM when the bench dies, so no server outlives a killed
// bench. (Pdeathsig follows the forking thread; the bench never locks
// goroutines to threads, so the runtime keeps that thread alive.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
