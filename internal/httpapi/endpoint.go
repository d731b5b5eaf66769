package httpapi

import (
	"io/fs"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Endpoint is the layout gserverd's and gworkerd's HTTP endpoints share.
type Endpoint struct {
	// Realm names the program in WWW-Authenticate.
	Realm string
	// Token, when set, guards every /api/ route (BearerAuth).
	Token string
	// Listen is the configured host:port of the endpoint and AllowedHosts
	// the extra names of the Host header it serves (HostCheck); Setting
	// names the flag or key of AllowedHosts in the refusal message.
	Listen       string
	AllowedHosts []string
	Setting      string
	// Collector gives the program's metrics; the Go and process
	// collectors are added.
	Collector prometheus.Collector
	// API holds the routes under /api/.
	API *http.ServeMux
	// Dashboard is the embedded tree whose static/ directory is served
	// at / (Static).
	Dashboard fs.FS
	// Open adds routes that need no token (gserverd's /readyz).
	Open func(*http.ServeMux)
}

// Handler serves GET /metrics and /healthz without a token, the API
// behind it, and the dashboard at /; requests for a Host that HostCheck
// does not allow are refused (421) before anything runs, and unsafe
// methods from another site (403).
func (e Endpoint) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		e.Collector,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	static, err := fs.Sub(e.Dashboard, "static")
	if err != nil {
		panic(err) // only for an invalid path, and "static" is valid
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", Healthz)
	if e.Open != nil {
		e.Open(mux)
	}
	mux.Handle("/api/", BearerAuth(e.Token, e.Realm, e.API))
	mux.Handle("/", Static(static))
	hosts := NewHostCheck(e.Listen, e.AllowedHosts, e.Setting)
	return hosts.Handler(http.NewCrossOriginProtection().Handler(mux))
}
