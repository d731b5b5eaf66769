package server

import (
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store"
)

// Options configure a Server. The zero value of every field means its
// documented default; WithDefaults fills them in and Validate checks them.
//
// The public API of the package is:
//
//	s, err := server.New(opts)       // validates, replays opts.Store
//	go s.Serve(ln)                   // one call per listener; returns ErrServerClosed after Shutdown/Close
//	s.Shutdown(ctx)                  // graceful: stop accepting, wait until no job runs, then close
//	s.Close()                        // hard stop
//	s.ReopenLog()                    // (cmd does this; the server only logs through Logger)
type Options struct {
	// Logger receives the server's logs. Default: a logger that discards.
	Logger logrus.FieldLogger
	// Clock is the time source for timers (CAN_DO_TIMEOUT, epoch jobs).
	// Default: clock.Real{}.
	Clock clock.Clock

	// JobHandlePrefix is the handle prefix; handles are "<prefix>:<n>".
	// Default: "H:" + the host name, as gearmand.
	JobHandlePrefix string
	// JobRetries bounds attempts of a job whose worker died or timed out
	// (gearmand HEAD meaning): -1 unlimited, 0 drop after the first
	// failure, N at most N attempts (1..255). Here 0 is meaningful, so
	// start from DefaultOptions(), which sets -1.
	JobRetries int
	// WorkerWakeup is how many sleeping workers get a NOOP per new job;
	// 0 = all (the default).
	WorkerWakeup int
	// Exceptions turns the `exceptions` option on for every connection.
	Exceptions bool
	// AdminShutdown enables the `shutdown [graceful]` admin commands,
	// from loopback connections only. Default off.
	AdminShutdown bool
	// OnShutdown is called (in its own goroutine) when an allowed admin
	// `shutdown` arrives; graceful tells which form. Default: the server
	// calls its own Shutdown or Close.
	OnShutdown func(graceful bool)
	// Limits bound what a connection may send; zero fields take the
	// protocol package defaults (64 MiB payload, 8 KiB arguments).
	Limits protocol.Limits
	// Store persists background jobs; nil keeps every job in memory only
	// (`-q builtin`).
	Store store.Store
	// StoreTimeout bounds every call to Store (store.WithTimeout): an Add
	// or Delete that takes longer fails (a background submit then gets
	// ERROR QUEUE_ERROR, never JOB_CREATED), and the replay in New fails
	// when the store delivers no job for that long. It also bounds how
	// long Shutdown and Close wait for the store. Default
	// DefaultStoreTimeout (5s); negative for none.
	StoreTimeout time.Duration
	// Version is what the `version` admin command reports.
	// Default: "gserverd-dev".
	Version string
	// VerboseName is what the `verbose` admin command reports, e.g. "ERROR".
	// Default: DefaultVerboseName ("ERROR").
	VerboseName string
	// WriteTimeout bounds how long a write to one connection may block
	// before that connection is dropped, so a client that never reads
	// cannot stall others. Default DefaultWriteTimeout (30s).
	WriteTimeout time.Duration
	// MaxOutBuffer bounds the bytes queued for one connection before it is
	// dropped as a slow consumer. Default DefaultMaxOutBuffer (64 MiB +
	// 1 MiB).
	MaxOutBuffer int
	// MaxConnections bounds the open connections: beyond it an accepted
	// connection is closed at once, except that LoopbackReserve more are
	// kept for loopback peers, so that an operator's gearadmin still gets
	// in. Default 0: unlimited.
	MaxConnections int
	// PacketTimeout bounds how long a connection may take to complete a
	// packet or admin line once its first byte arrived; a connection that
	// misses it is closed. Idle connections between packets are not
	// affected. Default DefaultPacketTimeout (30s); negative for none.
	PacketTimeout time.Duration
	// MaxQueueMemory bounds the memory held by the jobs the server keeps
	// (queued, waiting for their epoch and running, foreground and
	// background), by background submits waiting for their Store.Add,
	// and by submit payloads over 64 KiB from their header on, while
	// they arrive; counted as payload, unique and a fixed overhead of 256
	// bytes per job (the payload twice for unique "-"). A large payload
	// beyond the bound is read and discarded without being buffered.
	// A submit that would create a job beyond it gets ERROR QUEUE_ERROR
	// ("Job queue is full: memory bound"), never JOB_CREATED; a submit
	// that joins an existing job (same unique) is not refused. Jobs
	// replayed from the Store at start are counted, never refused.
	// Default 0: unlimited.
	MaxQueueMemory int64
}

// Defaults of Options (gserverd's flags refer to them).
const (
	DefaultStoreTimeout  = 5 * time.Second
	DefaultWriteTimeout  = 30 * time.Second
	DefaultPacketTimeout = 30 * time.Second
	DefaultMaxOutBuffer  = protocol.DefaultMaxPayload + 1<<20
	DefaultVerboseName   = "ERROR"
)

// LoopbackReserve is how many connections beyond MaxConnections are
// accepted from loopback peers.
const LoopbackReserve = 8

// DefaultOptions returns the options gserverd runs with when no flag is
// given: every default, and JobRetries -1 (unlimited).
func DefaultOptions() Options {
	o := Options{JobRetries: -1}
	return o.WithDefaults()
}

// WithDefaults returns o with every unset field given its default.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		o.Logger = l
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.JobHandlePrefix == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		o.JobHandlePrefix = "H:" + host
	}
	if o.Version == "" {
		o.Version = "gserverd-dev"
	}
	if o.VerboseName == "" {
		o.VerboseName = DefaultVerboseName
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PacketTimeout == 0 {
		o.PacketTimeout = DefaultPacketTimeout
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	if o.MaxOutBuffer <= 0 {
		o.MaxOutBuffer = DefaultMaxOutBuffer
	}
	return o
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
