package workerd

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/worker/supervise/monitor"
)

// httpEndpoint is gworkerd's running HTTP endpoint.
type httpEndpoint struct {
	run *httpapi.Serving
}

// startHTTP binds http_listen and serves the monitor of sup. It returns
// nil when the endpoint is off (http_listen: ""), and also, with a
// warning, when the default address is taken: only an address the user
// chose is worth failing the start for.
func startHTTP(cfg *config.Worker, sup monitor.Supervisor, log logrus.FieldLogger) (*httpEndpoint, error) {
	if cfg.HTTPListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		if cfg.HTTPListenIsDefault() && errors.Is(err, syscall.EADDRINUSE) {
			log.WithError(err).WithField("addr", cfg.HTTPListen).Warn("default HTTP address in use; HTTP endpoint off")
			return nil, nil
		}
		return nil, fmt.Errorf("http_listen: %w", err)
	}
	mon := monitor.New(sup, monitor.Options{Logger: log.WithField("component", "http"), Token: cfg.HTTPToken,
		Listen: cfg.HTTPListen, AllowedHosts: cfg.HTTPAllowedHosts})
	return &httpEndpoint{run: httpapi.Serve(mon, ln, log)}, nil
}

// stop shuts the endpoint down within two seconds, then closes it.
func (e *httpEndpoint) stop() {
	if e != nil {
		e.run.Stop(2 * time.Second)
	}
}

// tokenTag names a token in messages without showing it.
func tokenTag(tok string) string {
	if tok == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:4])
}
