package supervise

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/internal/rawio"
)

// ReportFD is the file descriptor of the report pipe in a child (the
// first of exec.Cmd.ExtraFiles).
const ReportFD = 3

// EnvReportFD is set in a child's environment to ReportFD when the master
// passed a report pipe.
const EnvReportFD = "GWORKERD_REPORT_FD"

// maxReportLine bounds one message read from a child.
const maxReportLine = 64 << 10

// Message kinds a child sends to the master.
const (
	MsgReady     = "ready"     // registered with the servers, serving
	MsgHeartbeat = "heartbeat" // alive; carries the child's memory (see Reporter.Heartbeat)
	MsgJobStart  = "job_start" // a job began (Handle, At)
	MsgJobEnd    = "job_end"   // a job ended (Handle, OK, Dur)
)

// Message is one line of the report pipe, JSON encoded.
type Message struct {
	Type   string `json:"type"`
	Handle string `json:"handle,omitempty"`
	OK     bool   `json:"ok,omitempty"`
	RSS    int64  `json:"rss,omitempty"`
	Error  string `json:"error,omitempty"`
	// At is when a job began (Unix nanoseconds), for job_start.
	At int64 `json:"at,omitempty"`
	// Dur is how long a job ran (nanoseconds), for job_end.
	Dur int64 `json:"dur,omitempty"`
}

// ReportFlush is how long a Reporter whose Run is active may hold a
// job_start or job_end before writing it.
const ReportFlush = 20 * time.Millisecond

// Reporter is the child's side of the report pipe. Its methods are safe
// for concurrent use; a nil *Reporter (no master) ignores every call.
//
// While Run is active, job_start and job_end messages wait at most
// ReportFlush, so that a child serving short jobs back to back writes
// (and wakes the master) a few dozen times a second, not twice a job.
// A job that starts and ends within one wait is sent as its job_end
// alone. The messages carry the child's own times (At, Dur), so the
// master's durations and "running since" do not depend on the wait, and
// the job table the master passes (see jobtable.go) tells it which jobs
// a child that dies was holding, job_start sent or not.
type Reporter struct {
	jobs   *jobTable    // nil without one; safe for concurrent use
	memory func() int64 // set before Run (SetMemory); nil: TreeRSS

	mu       sync.Mutex
	w        io.Writer
	err      error
	batching bool      // Run is active
	pending  []Message // messages not written yet
	buf      []byte
}

// NewReporter writes messages to w.
func NewReporter(w io.Writer) *Reporter {
	return &Reporter{w: w}
}

// OpenReporter returns the Reporter of a child started by the master, or
// nil when the process was not started with a report pipe. The pipe is
// made close-on-exec so that the child's own subprocesses (job
// executables) do not hold it open.
func OpenReporter() *Reporter {
	v := os.Getenv(EnvReportFD)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	closeOnExec(fd)
	// Non-blocking, written with raw system calls: a child that reports
	// after every job must not wake the runtime's sysmon thread each
	// time (see internal/rawio). The master's read end is its own.
	_ = syscall.SetNonblock(fd, true)
	f := os.NewFile(uintptr(fd), "gworkerd-report")
	var r *Reporter
	if c, ok := rawio.New(f); ok {
		r = NewReporter(c)
	} else {
		r = NewReporter(f)
	}
	r.jobs = openJobTable()
	return r
}

func (r *Reporter) send(m Message) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, m)
	r.flushLocked()
}

// flushLocked writes what is pending in one write.
func (r *Reporter) flushLocked() {
	if len(r.pending) == 0 {
		return
	}
	b := r.buf[:0]
	for _, m := range r.pending {
		j, _ := json.Marshal(m)
		b = append(append(b, j...), '\n')
	}
	r.pending = r.pending[:0]
	if len(b) > 0 && r.err == nil {
		_, r.err = r.w.Write(b)
	}
	if cap(b) <= 1<<20 {
		r.buf = b
	}
}

// Flush writes the waiting messages now.
func (r *Reporter) Flush() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

// Ready says the child serves its function.
func (r *Reporter) Ready() { r.send(Message{Type: MsgReady}) }

// JobStarted says a job began at at.
func (r *Reporter) JobStarted(handle string, at time.Time) {
	if r == nil {
		return
	}
	r.jobs.start(handle) // the master learns of it even if this child dies now
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, Message{Type: MsgJobStart, Handle: handle, At: at.UnixNano()})
	if !r.batching {
		r.flushLocked()
	}
}

// JobFinished says a job ended after running dur; ok is false for
// WORK_FAIL/EXCEPTION or an abandoned job.
func (r *Reporter) JobFinished(handle string, ok bool, err error, dur time.Duration) {
	if r == nil {
		return
	}
	m := Message{Type: MsgJobEnd, Handle: handle, OK: ok, Dur: max(int64(dur), 1)}
	if err != nil {
		m.Error = err.Error()
	}
	r.jobs.end(handle)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Its job_start not written yet: the job_end says it all.
	for i := len(r.pending) - 1; i >= 0; i-- {
		if p := r.pending[i]; p.Type == MsgJobStart && p.Handle == handle {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			break
		}
	}
	r.pending = append(r.pending, m)
	if !r.batching {
		r.flushLocked()
	}
}

// SetMemory makes heartbeats carry f(), the child's memory in bytes
// (Memory.Bytes), instead of TreeRSS. Call it before Run and Heartbeat.
func (r *Reporter) SetMemory(f func() int64) {
	if r != nil {
		r.memory = f
	}
}

// Heartbeat sends the memory of the child: that of SetMemory, by
// default the resident set size of its process tree (TreeRSS of this
// process): its own plus that of the processes it runs, resident
// handler processes and job executables included, so that the master's
// memory_limit covers them too.
func (r *Reporter) Heartbeat() {
	if r == nil {
		return
	}
	var mem int64
	if r.memory != nil {
		mem = r.memory()
	} else {
		mem = TreeRSS(os.Getpid())
	}
	r.send(Message{Type: MsgHeartbeat, RSS: mem})
}

// Run sends a heartbeat now and every interval, and writes the waiting
// job messages every ReportFlush, until ctx ends; then it writes what is
// pending, and job messages are written at once again.
func (r *Reporter) Run(ctx context.Context, clk clock.Clock, interval time.Duration) {
	if r == nil {
		return
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if interval <= 0 {
		interval = time.Second
	}
	r.mu.Lock()
	r.batching = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.batching = false
		r.flushLocked()
		r.mu.Unlock()
	}()
	hb := clk.NewTimer(0)
	defer hb.Stop()
	flush := clk.NewTimer(ReportFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C():
			r.Heartbeat()
			hb.Reset(interval)
		case <-flush.C():
			r.Flush()
			flush.Reset(ReportFlush)
		}
	}
}

// readReports decodes messages from a child until EOF or a read error.
// f gets the messages that arrived together (one batch of the child's
// Reporter, usually), so that the master handles them at once.
func readReports(r io.Reader, f func([]Message)) error {
	br := bufio.NewReaderSize(r, 4096)
	var batch []Message
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it, bounded.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxReportLine {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			if len(long) > maxReportLine {
				return fmt.Errorf("supervise: report line over %d bytes", maxReportLine)
			}
			line = long
		}
		if len(line) > 0 && (err == nil || errors.Is(err, io.EOF)) { // the last line may lack its \n
			var m Message
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				return fmt.Errorf("supervise: bad report line: %w", jerr)
			}
			batch = append(batch, m)
		}
		if len(batch) > 0 && (err != nil || br.Buffered() == 0) {
			f(batch)
			batch = nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
