package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// CPUTime is the processor time a process has used, all its threads
// together (those that exited included).
type CPUTime struct {
	User, System time.Duration
}

// Total returns user plus system time.
func (c CPUTime) Total() time.Duration { return c.User + c.System }

// Sub returns c minus an earlier reading.
func (c CPUTime) Sub(earlier CPUTime) CPUTime {
	return CPUTime{User: c.User - earlier.User, System: c.System - earlier.System}
}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK)): 100 on every architecture Linux and Go share.
// The kernel scales the two to the scheduler's exact run time before it
// rounds them to ticks, so their sum is exact to a tick or two.
const clockTicks = 100

// CPUResolution is how finely CPU reads processor time: one clock tick
// for each of user and system time.
const CPUResolution = time.Second / clockTicks

// CPU returns the processor time the process has used so far, from
// utime and stime of /proc/<pid>/stat (Linux).
func (p *Proc) CPU() (CPUTime, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat")
	if err != nil {
		return CPUTime{}, fmt.Errorf("loadgen: cpu: %w", err)
	}
	return parseStatCPU(b)
}

// errStat reports a /proc/<pid>/stat line that cannot be read.
var errStat = errors.New("loadgen: cpu: bad /proc stat line")

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses
// and may hold spaces and parentheses itself, so the fields are counted
// from the last ')'.
func parseStatCPU(b []byte) (CPUTime, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return CPUTime{}, fmt.Errorf("%w: no command name", errStat)
	}
	fields := bytes.Fields(b[end+1:])
	// fields[0] is field 3 (state): utime is fields[11], stime fields[12].
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return CPUTime{}, fmt.Errorf("%w: %d fields after the command name, want more than %d", errStat, len(fields), stime)
	}
	ticks := func(f []byte) (time.Duration, error) {
		n, err := strconv.ParseUint(string(f), 10, 63)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", errStat, err)
		}
		if n > uint64(1<<63-1)/uint64(CPUResolution) {
			return 0, fmt.Errorf("%w: %d ticks out of range", errStat, n)
		}
		return time.Duration(n) * CPUResolution, nil
	}
	u, err := ticks(fields[utime])
	if err != nil {
		return CPUTime{}, err
	}
	s, err := ticks(fields[stime])
	if err != nil {
		return CPUTime{}, err
	}
	return CPUTime{User: u, System: s}, nil
}
