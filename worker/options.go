package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/backoff"
	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/protocol"
)

// Options configure a Worker. Zero fields take the defaults stated here.
type Options struct {
	// Servers are the job servers, "host:port" (protocol.DefaultPort when
	// omitted; see protocol.ParseServerAddr, whose errors New returns).
	// The worker connects to every one. Required.
	Servers []string
	// Functions maps each function name (case-sensitive) to its handler
	// and settings. Required.
	Functions map[string]FunctionConfig
	// Concurrency is the most jobs the worker holds at once, across all
	// servers. Default DefaultConcurrency (1).
	Concurrency int
	// MaxJobs makes the worker stop grabbing after it has taken this many
	// jobs; Run returns when they are finished. 0 means no limit.
	MaxJobs int
	// ClientID is sent with SET_CLIENT_ID (shown by the admin `workers`
	// command). Default: none sent. Spaces are replaced by '_' because
	// they break `workers` parsing.
	ClientID string
	// DrainTimeout bounds how long Run waits for running jobs after its
	// context is cancelled; then their contexts are cancelled, their
	// connections closed (the server requeues the jobs) and Run returns
	// ErrDrainTimeout. Default 0: wait for them as long as they run.
	DrainTimeout time.Duration
	// Backoff paces reconnections to a server that is down.
	Backoff Backoff
	// PollInterval: a sleeping connection grabs anyway after this long
	// without a NOOP, in case a wake-up was lost (gearmand 1.1.20 never
	// wakes workers for epoch jobs). Default 60s.
	PollInterval time.Duration
	// DialTimeout bounds one connection attempt. Default 5s.
	DialTimeout time.Duration
	// GrabTimeout is how long a server may stay silent (no byte) after a
	// grab before the worker takes its connection for dead (a server cut off by the
	// network answers nothing, and TCP reports nothing for minutes): the
	// connection is closed and made again with backoff, and the slot the
	// grab held goes to the other servers. A server answers a grab at once
	// (NO_JOB or a job), so the default, 3s, is far above any real answer.
	GrabTimeout time.Duration
	// Dial opens connections. Default: a net.Dialer with DialTimeout and
	// TCP keepalive.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnEvent, when set, is called for job and connection events, from
	// the worker's goroutines, possibly concurrently. It must be quick and
	// must not call back into the Worker's blocking methods.
	OnEvent func(Event)
	// Logger receives the worker's logs. Default: discarded.
	Logger logrus.FieldLogger
	// Clock tells time and makes timers. Default clock.Real{}.
	Clock clock.Clock
}

// FunctionConfig is one function the worker registers.
type FunctionConfig struct {
	// Handler runs the jobs. Required.
	Handler Handler
	// Timeout, when > 0, is registered with CAN_DO_TIMEOUT (in ms; the
	// server raises values under 1s to 1s): the server requeues a job that
	// runs longer. The handler's context ends one second after the
	// server's limit (so that the server has requeued the job by then) and
	// its late result is dropped, since the job is no longer ours. 0
	// registers with plain CAN_DO and no time limit.
	// gearmand 1.1.20 keeps one timer per connection and cancels it on
	// PRE_SLEEP, so with Concurrency > 1 its timeouts are unreliable.
	Timeout time.Duration
	// Retries re-runs a failed job inside the worker up to this many more
	// times before reporting the failure. Default 0. Permanent errors and
	// cancellations are not retried; a CrashError is retried at least
	// once.
	Retries int
	// TimeoutFails changes what Timeout does: the function is registered
	// with plain CAN_DO, the handler's context ends at Timeout, and the
	// job fails with WORK_EXCEPTION "timeout" instead of being requeued
	// by the server. Default false.
	TimeoutFails bool
}

// Backoff is exponential backoff with jitter for reconnections. The n-th
// consecutive failure waits min(Initial*Multiplier^(n-1), Max), less a
// random share of up to Jitter (a fraction) of it (internal/backoff says
// why the jitter is below the wait, never above); a successful
// registration resets it.
type Backoff struct {
	Initial    time.Duration // default 100ms
	Max        time.Duration // default 10s
	Multiplier float64       // default 2
	Jitter     float64       // default 0.2; negative means none; above 1 means 1
}

// policy is b as the shared backoff.
func (b Backoff) policy() backoff.Policy {
	return backoff.Policy{Min: b.Initial, Max: b.Max, Multiplier: b.Multiplier, Jitter: b.Jitter}
}

func (b Backoff) withDefaults() Backoff {
	p := b.policy().Fill(backoff.Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2})
	return Backoff{Initial: p.Min, Max: p.Max, Multiplier: p.Multiplier, Jitter: p.Jitter}
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// JobStarted: a job was assigned and its handler starts.
	JobStarted EventKind = iota + 1
	// JobRetry: an attempt failed and the job runs again (Err, Attempt).
	JobRetry
	// JobDone: WORK_COMPLETE was sent (Duration).
	JobDone
	// JobFailed: WORK_FAIL or WORK_EXCEPTION was sent (Err, Duration).
	JobFailed
	// JobAbandoned: the result could not be reported (connection lost,
	// timed out, hard shutdown); the server requeues the job.
	JobAbandoned
	// Connected: registered with a server (Server).
	Connected
	// Disconnected: lost a server (Server, Err); the worker reconnects.
	Disconnected
)

func (k EventKind) String() string {
	switch k {
	case JobStarted:
		return "job_started"
	case JobRetry:
		return "job_retry"
	case JobDone:
		return "job_done"
	case JobFailed:
		return "job_failed"
	case JobAbandoned:
		return "job_abandoned"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one thing that happened in the worker, for the supervisor.
type Event struct {
	Kind     EventKind
	Time     time.Time
	Server   string
	Handle   string
	Function string
	Unique   string
	Attempt  int
	// Duration is the job's run time, for JobDone, JobFailed, JobAbandoned.
	Duration time.Duration
	// Err is the failure, for JobRetry, JobFailed, JobAbandoned, Disconnected.
	Err error
}

// DefaultConcurrency is Options.Concurrency's default, and gworkerd's
// concurrency per child.
const DefaultConcurrency = 1

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 60 * time.Second
	}
	if o.GrabTimeout <= 0 {
		o.GrabTimeout = 3 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 15 * time.Second}
		o.Dial = d.DialContext
	}
	if o.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		o.Logger = l
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	o.Backoff = o.Backoff.withDefaults()
	return o
}

func (o Options) validate() error {
	if len(o.Servers) == 0 {
		return ErrNoServers
	}
	for _, s := range o.Servers {
		if _, err := protocol.ParseServerAddr(s); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
	}
	if len(o.Functions) == 0 {
		return ErrNoFunctions
	}
	for name, fc := range o.Functions {
		if fc.Handler == nil {
			return fmt.Errorf("worker: function %q has no handler", name)
		}
		if fc.Timeout < 0 || fc.Retries < 0 {
			return fmt.Errorf("worker: function %q: negative timeout or retries", name)
		}
	}
	if o.MaxJobs < 0 {
		return fmt.Errorf("worker: negative MaxJobs %d", o.MaxJobs)
	}
	return nil
}
