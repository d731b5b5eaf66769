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
// behind it, and the dashboard at /; unsafe methods from another site are
// refused (403).
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
	return http.NewCrossOriginProtection().Handler(mux)
}
