package workerd

import "fmt"

// NotRunningError says that the daemon does not run, and how that was
// seen.
type NotRunningError struct {
	PidFile string
	NoFile  bool // no pid file; else the file is not locked
}

func (e *NotRunningError) Error() string {
	if e.NoFile {
		return fmt.Sprintf("gworkerd is not running (no pid file at %s)", e.PidFile)
	}
	return fmt.Sprintf("gworkerd is not running (pid file %s is not locked)", e.PidFile)
}
