package supervise

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
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
	MsgHeartbeat = "heartbeat" // alive; carries the RSS of the child's process tree
	MsgJobStart  = "job_start" // a job began (Handle)
	MsgJobEnd    = "job_end"   // a job ended (Handle, OK)
)

// Message is one line of the report pipe, JSON encoded.
type Message struct {
	Type   string `json:"type"`
	Handle string `json:"handle,omitempty"`
	OK     bool   `json:"ok,omitempty"`
	RSS    int64  `json:"rss,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Reporter is the child's side of the report pipe. Its methods are safe
// for concurrent use; a nil *Reporter (no master) ignores every call.
type Reporter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// NewReporter writes messages to w.
func NewReporter(w io.Writer) *Reporter { return &Reporter{w: w} }

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
	return NewReporter(os.NewFile(uintptr(fd), "gworkerd-report"))
}

func (r *Reporter) send(m Message) {
	if r == nil {
		return
	}
	b, _ := json.Marshal(m)
	b = append(b, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	_, r.err = r.w.Write(b)
}

// Ready says the child serves its function.
func (r *Reporter) Ready() { r.send(Message{Type: MsgReady}) }

// JobStarted says a job began.
func (r *Reporter) JobStarted(handle string) { r.send(Message{Type: MsgJobStart, Handle: handle}) }

// JobFinished says a job ended; ok is false for WORK_FAIL/EXCEPTION or an
// abandoned job.
func (r *Reporter) JobFinished(handle string, ok bool, err error) {
	m := Message{Type: MsgJobEnd, Handle: handle, OK: ok}
	if err != nil {
		m.Error = err.Error()
	}
	r.send(m)
}

// Heartbeat sends the resident set size of the child's process tree
// (TreeRSS of this process): its own plus that of the processes it runs,
// resident handler processes and job executables included, so that the
// master's memory_limit covers them too. It reads /proc once.
func (r *Reporter) Heartbeat() {
	if r == nil {
		return
	}
	r.send(Message{Type: MsgHeartbeat, RSS: TreeRSS(os.Getpid())})
}

// Run sends a heartbeat now and every interval until ctx ends.
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
	t := clk.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			r.Heartbeat()
			t.Reset(interval)
		}
	}
}

// readReports decodes messages from a child until EOF or a read error.
func readReports(r io.Reader, f func(Message)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxReportLine)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("supervise: bad report line: %w", err)
		}
		f(m)
	}
	return sc.Err()
}
