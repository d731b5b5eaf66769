package supervise

// State is the lifecycle state of one child slot, after supervisord.
type State int

// The states. Every change goes through Supervisor.transition, which logs
// the move from one to the other.
const (
	// StateStopped: not running and not meant to run (function stopped).
	StateStopped State = iota
	// StateStarting: the process runs but has not reported ready yet.
	StateStarting
	// StateRunning: the process reported ready and serves jobs.
	StateRunning
	// StateBackoff: the process exited unexpectedly; it restarts when the
	// backoff delay is over.
	StateBackoff
	// StateStopping: the process was asked to exit after its current job; its
	// process group is killed when the grace period is over.
	StateStopping
	// StateExited: the process is gone and the slot is being removed.
	StateExited
	// StateFatal: the process failed to start too many times in a row
	// (FunctionSpec.FatalAfter); it is not restarted until asked.
	StateFatal
)

var stateNames = [...]string{"stopped", "starting", "running", "backoff", "stopping", "exited", "fatal"}

func (s State) String() string {
	if int(s) < len(stateNames) && s >= 0 {
		return stateNames[s]
	}
	return "unknown"
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	*s = -1
	return nil
}
