package client

import (
	"io"
	"time"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/sirupsen/logrus"
)

// Clock tells the time. The Client uses it to decide when a failed server
// may be tried again; tests inject a fake one. clock.Real satisfies it.
type Clock interface {
	Now() time.Time
}

// Option configures a Client.
type Option func(*config)

// backoffJitter is the random share of each backoff wait.
const backoffJitter = 0.2

// DefaultDialTimeout bounds each connection attempt unless WithDialTimeout
// sets another bound.
const DefaultDialTimeout = 2 * time.Second

type config struct {
	dialTimeout time.Duration
	reqTimeout  time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	logger      logrus.FieldLogger
	clock       Clock
	clientID    string
	limits      protocol.Limits
}

func defaultConfig() config {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return config{
		dialTimeout: DefaultDialTimeout,
		reqTimeout:  10 * time.Second,
		backoffMin:  250 * time.Millisecond,
		backoffMax:  30 * time.Second,
		logger:      l,
		clock:       clock.Real{},
	}
}

// WithDialTimeout bounds each connection attempt. A server that does not
// accept within it is skipped and retried later. Default
// DefaultDialTimeout (2s); zero or less keeps the default.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.dialTimeout = d
		}
	}
}

// WithRequestTimeout bounds the wait for a server's reply to a request
// (JOB_CREATED, STATUS_RES, ECHO_RES), independently of ctx. A server that
// does not answer within it is treated as failed: its connection is
// closed, the requests on it move to other servers, and it is skipped
// for a backoff. Zero disables it. Default 10s.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.reqTimeout = d
		}
	}
}

// WithBackoff sets how long a server that failed is skipped: min after
// the first failure, doubling on each further failure up to max, each
// wait less a random share of up to a fifth of it, so that a fleet of
// clients does not retry in step. Default 250ms and 30s.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) {
		if min > 0 {
			c.backoffMin = min
		}
		if max >= c.backoffMin {
			c.backoffMax = max
		}
	}
}

// WithLogger sets the logger. Default: nothing is logged.
func WithLogger(l logrus.FieldLogger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithClock sets the clock used for backoff. Default: the wall clock.
func WithClock(clk Clock) Option {
	return func(c *config) {
		if clk != nil {
			c.clock = clk
		}
	}
}

// WithClientID sends SET_CLIENT_ID on every connection, so that the
// server's `workers` listing names this client. Default: none ("-").
func WithClientID(id string) Option {
	return func(c *config) { c.clientID = id }
}

// WithMaxPayload bounds the size of a reply the client accepts. Default
// protocol.DefaultMaxPayload (64 MiB).
func WithMaxPayload(n uint32) Option {
	return func(c *config) { c.limits.MaxPayload = n }
}

// SubmitOption configures one submitted job.
type SubmitOption func(*submitConfig)

type submitConfig struct {
	priority protocol.Priority
	unique   string
	runAt    time.Time
	reducer  string
}

// Job priorities, for Priority.
const (
	High   = protocol.High
	Normal = protocol.Normal
	Low    = protocol.Low
)

// Priority sets the job's priority (High, Normal or Low). Default Normal.
func Priority(p protocol.Priority) SubmitOption {
	return func(s *submitConfig) { s.priority = p }
}

// Unique sets the job's unique id. Jobs of one function with the same
// unique coalesce on a server, and the Client sends every job with a
// given unique to the same server while it is up. Default: empty (never
// coalesces; jobs are spread round-robin).
func Unique(id string) SubmitOption {
	return func(s *submitConfig) { s.unique = id }
}

// RunAt makes a background job that no worker receives before t
// (SUBMIT_JOB_EPOCH, whole seconds, normal priority). Background only.
func RunAt(t time.Time) SubmitOption {
	return func(s *submitConfig) { s.runAt = t }
}

// Reducer submits a map/reduce job (SUBMIT_REDUCE_JOB*) naming the
// reducer function; the server hands it to workers that grab with
// GRAB_JOB_ALL. Normal priority only.
func Reducer(name string) SubmitOption {
	return func(s *submitConfig) { s.reducer = name }
}
