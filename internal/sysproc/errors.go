package sysproc

import "fmt"

// RunningError says that the pid file is locked by a running process.
type RunningError struct {
	File string
	Pid  int // from the file's text; 0 when it could not be read
}

func (e *RunningError) Error() string {
	if e.Pid > 0 {
		return fmt.Sprintf("pid file %s is locked by running process %d", e.File, e.Pid)
	}
	return fmt.Sprintf("pid file %s is locked by another process", e.File)
}

// NotHolderError says that the pid file is locked, but neither the
// process on the control socket nor the one the file names holds the
// lock: nothing should be signalled.
type NotHolderError struct {
	File    string
	TextPid int
}

func (e *NotHolderError) Error() string {
	return fmt.Sprintf("pid file %s is locked, but neither the process on the control socket nor pid %d (the file's text) holds its lock: not signalling anything", e.File, e.TextPid)
}

// ExitedError says that the daemon exited during its start without
// reporting why; its log may say.
type ExitedError struct {
	Name string
	Pid  int
	Err  error // how it exited
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("%s (pid %d) exited during start-up: %v", e.Name, e.Pid, e.Err)
}
