package serverd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/server/monitor"
)

// httpEndpoint is the running HTTP endpoint (server/monitor) of gserverd.
type httpEndpoint struct {
	mon *monitor.Monitor
	run *httpapi.Serving
}

// startHTTP binds --http-listen and serves the monitor at once (/healthz
// answers during the replay; /readyz once attach is called). It returns
// nil when the endpoint is off (--http-listen=""), and also when the
// default address (the Gearman port + 1) is taken: only an address the
// user chose is worth failing the start for. That is logged at error
// level, gserverd's default, so that the operator sees it. Jobs posted to
// it are submitted in process to the server attached.
func startHTTP(ctx context.Context, cfg *config.Server, log logrus.FieldLogger) (*httpEndpoint, error) {
	if cfg.HTTPListen == "" {
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPListen)
	if err != nil {
		if cfg.Source("http_listen").Kind == config.SourceDefault && errors.Is(err, syscall.EADDRINUSE) {
			log.WithError(err).WithField("addr", cfg.HTTPListen).Error("default HTTP address in use; HTTP endpoint off, serving Gearman without it; give --http-listen")
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", cfg.Source("http_listen"), err)
	}
	mon := monitor.New(monitor.Options{
		Logger:       log.WithField("component", "http"),
		Token:        cfg.HTTPToken,
		Listen:       cfg.HTTPListen,
		AllowedHosts: cfg.HTTPAllowedHosts,
		Version:      version.String(),
		MaxPayload:   cfg.MaxPayload,

		MaxEventStreams:  cfg.HTTPMaxStreams,
		MetricsFunctions: cfg.HTTPMetricsFunctions,
	})
	return &httpEndpoint{mon: mon, run: httpapi.Serve(mon, ln, log)}, nil
}

// attach marks the endpoint ready with the server's figures.
func (e *httpEndpoint) attach(src monitor.Source) {
	if e != nil {
		e.mon.Attach(src)
	}
}

// stop shuts the endpoint down within termGrace, then closes it.
func (e *httpEndpoint) stop() {
	if e != nil {
		e.run.Stop(termGrace)
	}
}
