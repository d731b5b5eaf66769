// Package monitor is gserverd's HTTP endpoint: Prometheus metrics, a JSON
// API, health checks and the embedded live dashboard.
//
// As in nats-server's monitor.go, every endpoint is a data struct, a Go
// method that fills it from server.Stats, and a thin HTTP handler; the
// same data serves the JSON API, the metrics and the page.
//
// Endpoints:
//
//	GET  /metrics                  Prometheus text format (open)
//	GET  /healthz                  200 while the process serves HTTP (open)
//	GET  /readyz                   200 once the server is attached (after replay), 503 before and while stopping (open)
//	GET  /api/v1/server            ServerInfo
//	GET  /api/v1/functions         []FunctionInfo, paged: ?offset=&limit= (X-Total-Count)
//	GET  /api/v1/workers           []server.WorkerInfo, paged: ?offset=&limit= (X-Total-Count); ?all=1: clients too
//	                               each row lists its first 100 functions and running jobs (functions_total, running_total)
//	GET  /api/v1/jobs              JobsPage (?function=&state=&offset=&limit=)
//	GET  /api/v1/jobs/{handle}     server.JobInfo, 404 when unknown
//	POST /api/v1/jobs/{handle}/cancel  as `cancel job`: CancelResult, 404 when unknown
//	GET  /api/v1/functions/{function}/unique/{unique}  server.JobInfo by unique ID
//	POST /api/v1/functions/{function}/maxqueue  ?n= or ?high=&normal=&low=: MaxQueueResult
//	GET  /api/v1/events            server-sent events: a Snapshot, then one Delta per interval
//	POST /api/v1/jobs/{function}   submit a job (gearmand's HTTP headers)
//	GET  /                         the dashboard
//
// With Options.Token set, every /api/ request needs "Authorization: Bearer
// <token>" (401 otherwise, before anything runs). Requests with unsafe
// methods from another site (Sec-Fetch-Site, Origin) get 403. Requests
// whose Host is a name other than localhost, the name of Options.Listen
// or one of Options.AllowedHosts get 421, whatever their path (DNS
// rebinding; see httpapi.HostCheck).
//
// Bounds, so that cheap input cannot make the endpoint expensive: /metrics
// has per-function series for the MetricsFunctions busiest functions
// only, the rest summed as function="_other" (metrics.go); the functions
// and workers listings are paged, 1,000 rows by default and at most
// 10,000 (?limit=; 400 beyond), and a worker's row lists its first 100
// functions by name and running jobs by handle, with functions_total and
// running_total counting them all (the admin command `workers` lists
// everything); a workers page reads the registrations and running jobs
// of its own rows only; at most
// MaxEventStreams event streams are open, and each tick of them costs one
// pass over the functions in all, then each stream only the encoded
// changes (events.go).
//
// A job handle is a path segment: "/api/v1/jobs/H:host:42". POST to
// /api/v1/jobs/{x} submits a job of function x; GET reads job handle x.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
)

// Source is what the monitor reads and acts on: *server.Server. Jobs
// posted to it are submitted in process (Submit), never over a Gearman
// connection.
type Source interface {
	Stats() server.Stats
	Workers(q server.WorkerQuery) ([]server.WorkerInfo, int)
	Jobs(q server.JobQuery) ([]server.JobInfo, int)
	Job(handle string) (server.JobInfo, bool)
	JobByUnique(function, unique string) (server.JobInfo, bool)
	CancelJob(handle string) bool
	SetMaxQueue(function string, limits [3]int)
	Submit(ctx context.Context, req server.SubmitRequest) (server.SubmitResult, error)
}

// Options configure a Monitor.
type Options struct {
	// Logger receives the monitor's logs. Default: discard.
	Logger logrus.FieldLogger
	// Token, when set, turns on bearer-token auth for /api/. Default "" (off).
	Token string
	// Listen is the configured host:port of the endpoint (--http-listen):
	// its host, when a name, is served besides IP addresses and
	// localhost. Default "".
	Listen string
	// AllowedHosts are the other names of the Host header served
	// (--http-allowed-hosts). Default none.
	AllowedHosts []string
	// NoSubmit turns POST /api/v1/jobs/{function} off: it answers 503.
	// Default false: jobs are submitted to the attached Source.
	NoSubmit bool
	// Version is reported by /api/v1/server. Default "gserverd-dev".
	Version string
	// EventInterval is the period of /api/v1/events. Default 1s.
	EventInterval time.Duration
	// MaxEventStreams bounds the open /api/v1/events streams; one more
	// gets 503 (--http-max-streams). Default DefaultMaxEventStreams.
	MaxEventStreams int
	// MetricsFunctions is how many functions, the busiest, get their own
	// series in /metrics; the others are summed into function="_other"
	// (--http-metrics-functions). Default DefaultMetricsFunctions.
	MetricsFunctions int
	// MaxPayload bounds a submitted job's body. Default
	// protocol.DefaultMaxPayload (64 MiB).
	MaxPayload int64
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		o.Logger = l
	}
	if o.Version == "" {
		o.Version = "gserverd-dev"
	}
	if o.EventInterval <= 0 {
		o.EventInterval = time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = protocol.DefaultMaxPayload
	}
	if o.MaxEventStreams <= 0 {
		o.MaxEventStreams = DefaultMaxEventStreams
	}
	if o.MetricsFunctions <= 0 {
		o.MetricsFunctions = DefaultMetricsFunctions
	}
	return o
}

// Defaults of Options.
const (
	DefaultMaxEventStreams  = 64
	DefaultMetricsFunctions = 100
)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Monitor serves the HTTP endpoint. Create it with New, attach the server
// with Attach once it is ready, then Serve.
type Monitor struct {
	opts    Options
	log     logrus.FieldLogger
	started time.Time
	handler http.Handler
	hs      *http.Server
	// hub feeds the event streams.
	hub *hub

	// mu guards src and stopping.
	mu       sync.RWMutex
	src      Source
	stopping bool

	done     chan struct{} // closed by Shutdown or Close: ends event streams
	doneOnce sync.Once
}

// New returns a monitor; it serves nothing until Serve.
func New(opts Options) *Monitor {
	o := opts.withDefaults()
	m := &Monitor{
		opts:    o,
		log:     o.Logger,
		started: time.Now(),
		done:    make(chan struct{}),
	}
	m.hub = newHub(m.Snapshot, o.EventInterval, o.MaxEventStreams, m.done)
	m.handler = m.routes()
	m.hs = &http.Server{
		Handler:           m.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	return m
}

// Attach makes src the source of every figure and marks the monitor ready.
func (m *Monitor) Attach(src Source) {
	m.mu.Lock()
	m.src = src
	m.mu.Unlock()
}

func (m *Monitor) source() (Source, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.src, m.src != nil && !m.stopping
}

// Ready reports whether a server is attached and the monitor not stopping.
func (m *Monitor) Ready() bool {
	_, ok := m.source()
	return ok
}

// Handler returns the monitor's HTTP handler (for tests and embedding).
func (m *Monitor) Handler() http.Handler { return m.handler }

// Serve serves HTTP on ln until Shutdown or Close; it then returns
// http.ErrServerClosed. It closes ln.
func (m *Monitor) Serve(ln net.Listener) error {
	err := m.hs.Serve(ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("monitor: serve: %w", err)
	}
	return err
}

// stop ends the event streams and their hub.
func (m *Monitor) stop() {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	m.doneOnce.Do(func() { close(m.done) })
	m.hub.close()
}

// Shutdown ends event streams, stops accepting and waits for the other
// requests to finish, or ctx to end.
func (m *Monitor) Shutdown(ctx context.Context) error {
	m.stop()
	if err := m.hs.Shutdown(ctx); err != nil {
		return fmt.Errorf("monitor: shutdown: %w", err)
	}
	return nil
}

// Close stops at once. It is safe to call more than once.
func (m *Monitor) Close() error {
	m.stop()
	return m.hs.Close()
}

func (m *Monitor) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/server", m.handleServer)
	api.HandleFunc("GET /api/v1/functions", m.handleFunctions)
	api.HandleFunc("GET /api/v1/events", m.handleEvents)
	api.HandleFunc("GET /api/v1/workers", m.handleWorkers)
	api.HandleFunc("GET /api/v1/jobs", m.handleJobs)
	api.HandleFunc("GET /api/v1/jobs/{handle}", m.handleJob)
	api.HandleFunc("POST /api/v1/jobs/{handle}/cancel", m.handleCancel)
	api.HandleFunc("GET /api/v1/functions/{function}/unique/{unique}", m.handleJobByUnique)
	api.HandleFunc("POST /api/v1/functions/{function}/maxqueue", m.handleMaxQueue)
	api.HandleFunc("POST /api/v1/jobs/{function}", m.handleSubmit)
	return httpapi.Endpoint{
		Realm: "gserverd", Token: m.opts.Token,
		Listen: m.opts.Listen, AllowedHosts: m.opts.AllowedHosts, Setting: "--http-allowed-hosts",
		Collector: collector{m}, API: api, Dashboard: staticFiles,
		Open: func(mux *http.ServeMux) {
			mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				if !m.Ready() {
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte("not ready\n"))
					return
				}
				_, _ = w.Write([]byte("ready\n"))
			})
		},
	}.Handler()
}
