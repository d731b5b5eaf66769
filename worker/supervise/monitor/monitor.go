// Package monitor is gworkerd's HTTP endpoint: Prometheus metrics, a
// JSON API over the same data as `gworkerd status` with the control
// actions, a live stream of the children's output, and a dashboard. As
// server/monitor, each endpoint is a data struct (the supervisor's
// Status, Metrics, LogLine), a method and a thin handler.
//
// Endpoints:
//
//	GET  /metrics                               Prometheus text format (open)
//	GET  /healthz                               200 while serving (open)
//	GET  /api/v1/status                         supervise.Status
//	GET  /api/v1/events                         server-sent events, one Event per interval
//	GET  /api/v1/functions/{function}/logs      server-sent events: the function's output (?tail=N)
//	GET  /                                      the dashboard (process table, actions, log pane)
//	POST /api/v1/functions/{function}/start     StartFunction
//	POST /api/v1/functions/{function}/stop      StopFunction
//	POST /api/v1/functions/{function}/restart   RestartFunction
//	POST /api/v1/functions/{function}/scale?n=N Scale
//
// Metrics, besides the Go and process collectors: gworkerd_children
// {function, state}, gworkerd_desired_children, gworkerd_children_rss_bytes
// and gworkerd_supervisor_up (gauges); gworkerd_child_restarts_total
// {function} and gworkerd_jobs_total{function, outcome} (counters kept
// by the supervisor, outcome completed, failed or lost); and
// gworkerd_job_duration_seconds{function} (a histogram measured by the
// supervisor between a child's job start and job end reports).
//
// The log stream sends the lines the supervisor keeps for the function
// (its last 200 by default, or the last N with ?tail=N) as "line"
// events, then each new line as it comes; a client too slow to follow
// gets a "dropped" event with the number of lines it lost, and never
// slows the children down. At most
// Options.MaxLogStreams streams are open at once (503 beyond).
//
// With Options.Token set, every /api/ request needs "Authorization: Bearer
// <token>" (401 otherwise, before anything runs). Unsafe methods from
// another site (Sec-Fetch-Site, Origin) get 403. Requests whose Host is a
// name other than localhost, the name of Options.Listen or one of
// Options.AllowedHosts get 421, whatever their path (DNS rebinding; see
// httpapi.HostCheck). The dashboard reads both
// event streams with fetch, not EventSource, so that it can send the
// token in that header.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// Supervisor is what the monitor reads and drives: *supervise.Supervisor.
type Supervisor interface {
	Status(ctx context.Context) (supervise.Status, error)
	StartFunction(ctx context.Context, name string) error
	StopFunction(ctx context.Context, name string) error
	RestartFunction(ctx context.Context, name string) error
	Scale(ctx context.Context, name string, n int) error
	Metrics(ctx context.Context) ([]supervise.FunctionMetrics, error)
	SubscribeLogs(ctx context.Context, function string) ([]supervise.LogLine, *supervise.LogSubscription, error)
}

// Options configure a Monitor.
type Options struct {
	// Logger receives the logs. Default: discard.
	Logger logrus.FieldLogger
	// Token, when set, turns on bearer-token auth for /api/. Default "".
	Token string
	// Listen is the configured host:port of the endpoint (http_listen):
	// its host, when a name, is served besides IP addresses and
	// localhost. Default "".
	Listen string
	// AllowedHosts are the other names of the Host header served
	// (http_allowed_hosts). Default none.
	AllowedHosts []string
	// Timeout bounds one call to the supervisor. Default 10s.
	Timeout time.Duration
	// EventInterval is the period of /api/v1/events. Default 1s.
	EventInterval time.Duration
	// MaxLogStreams bounds the log streams open at once; more get 503.
	// Default 16.
	MaxLogStreams int
}

// Monitor serves gworkerd's HTTP endpoint.
type Monitor struct {
	opts Options
	log  logrus.FieldLogger
	sup  Supervisor
	hs   *http.Server

	done     chan struct{} // closed by Shutdown or Close: ends event streams
	doneOnce sync.Once
	logSlots chan struct{} // one token per open log stream
}

// New returns a monitor of sup; it serves nothing until Serve.
func New(sup Supervisor, opts Options) *Monitor {
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		opts.Logger = l
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.EventInterval <= 0 {
		opts.EventInterval = time.Second
	}
	if opts.MaxLogStreams <= 0 {
		opts.MaxLogStreams = 16
	}
	m := &Monitor{opts: opts, log: opts.Logger, sup: sup, done: make(chan struct{}), logSlots: make(chan struct{}, opts.MaxLogStreams)}
	m.hs = &http.Server{Handler: m.routes(), ReadHeaderTimeout: 10 * time.Second}
	return m
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Serve serves on ln until Shutdown or Close, then returns
// http.ErrServerClosed. It closes ln.
func (m *Monitor) Serve(ln net.Listener) error {
	err := m.hs.Serve(ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("monitor: serve: %w", err)
	}
	return err
}

// Shutdown stops accepting and waits for requests to finish, or ctx.
func (m *Monitor) Shutdown(ctx context.Context) error {
	m.doneOnce.Do(func() { close(m.done) })
	if err := m.hs.Shutdown(ctx); err != nil {
		return fmt.Errorf("monitor: shutdown: %w", err)
	}
	return nil
}

// Close stops at once.
func (m *Monitor) Close() error {
	m.doneOnce.Do(func() { close(m.done) })
	return m.hs.Close()
}

// Handler returns the HTTP handler.
func (m *Monitor) Handler() http.Handler { return m.hs.Handler }

func (m *Monitor) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/status", m.handleStatus)
	api.HandleFunc("GET /api/v1/events", m.handleEvents)
	api.HandleFunc("GET /api/v1/functions/{function}/logs", m.handleLogs)
	api.HandleFunc("POST /api/v1/functions/{function}/{action}", m.handleAction)
	return httpapi.Endpoint{Realm: "gworkerd", Token: m.opts.Token,
		Listen: m.opts.Listen, AllowedHosts: m.opts.AllowedHosts, Setting: "http_allowed_hosts",
		Collector: collector{m}, API: api, Dashboard: staticFiles}.Handler()
}

func (m *Monitor) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), m.opts.Timeout)
	defer cancel()
	st, err := m.sup.Status(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// ActionResult is the body of a successful action.
type ActionResult struct {
	Function string `json:"function"`
	Action   string `json:"action"`
	Count    *int   `json:"count,omitempty"`
}

func (m *Monitor) handleAction(w http.ResponseWriter, r *http.Request) {
	fn, action := r.PathValue("function"), r.PathValue("action")
	ctx, cancel := context.WithTimeout(r.Context(), m.opts.Timeout)
	defer cancel()
	res := ActionResult{Function: fn, Action: action}
	var err error
	switch action {
	case "start":
		err = m.sup.StartFunction(ctx, fn)
	case "stop":
		err = m.sup.StopFunction(ctx, fn)
	case "restart":
		err = m.sup.RestartFunction(ctx, fn)
	case "scale":
		n, perr := strconv.Atoi(r.URL.Query().Get("n"))
		if perr != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "scale: want ?n=<count >= 0>")
			return
		}
		res.Count = &n
		err = m.sup.Scale(ctx, fn, n)
	default:
		writeError(w, http.StatusNotFound, "unknown action "+strconv.Quote(action))
		return
	}
	var limit *supervise.LimitError
	switch {
	case errors.Is(err, supervise.ErrUnknownFunction):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &limit):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		m.log.WithFields(logrus.Fields{"function": fn, "action": action}).Info("action over HTTP")
		writeJSON(w, http.StatusOK, res)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) { httpapi.WriteJSON(w, code, v) }

func writeError(w http.ResponseWriter, code int, msg string) { httpapi.WriteError(w, code, msg) }
