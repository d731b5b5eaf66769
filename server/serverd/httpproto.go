package serverd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/server/gearhttp"
)

// httpProtocol is gearmand's HTTP protocol (-r http --http-port N), served
// by server/gearhttp on the --listen addresses. It submits its jobs in
// process, like the HTTP endpoint's POST /api/v1/jobs/{function}.
type httpProtocol struct {
	srv *gearhttp.Server
	wg  sync.WaitGroup // one per Serve goroutine
}

// listenHTTPProtocol binds --http-port on every address the Gearman port
// is bound to, when -r http is given (nil otherwise). Like the Gearman
// port, it is bound before the user switch (a port below 1024 needs root).
func listenHTTPProtocol(ctx context.Context, cfg *config.Server, addrs []bindAddr, log logrus.FieldLogger) ([]net.Listener, error) {
	if cfg.Protocol != "http" {
		return nil, nil
	}
	lns, err := listenAll(ctx, listenConfig(cfg), addrs, cfg.HTTPPort, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source("http_port"), err)
	}
	return lns, nil
}

// startHTTPProtocol serves lns (nil: off, returns nil) with jobs submitted
// to srv.
func startHTTPProtocol(cfg *config.Server, lns []net.Listener, srv gearhttp.Submitter, log logrus.FieldLogger) (*httpProtocol, error) {
	if len(lns) == 0 {
		return nil, nil
	}
	hs, err := gearhttp.New(gearhttp.Options{
		Logger:     log.WithField("component", "http_protocol"),
		Submitter:  srv,
		Version:    version.String(),
		MaxPayload: cfg.MaxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("start the HTTP protocol: %w", err)
	}
	p := &httpProtocol{srv: hs}
	addrs := make([]string, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := hs.Serve(ln); !errors.Is(err, gearhttp.ErrServerClosed) {
				log.WithError(err).WithField("addr", ln.Addr().String()).Error("HTTP protocol listener stopped")
			}
		}()
	}
	log.WithField("addr", strings.Join(addrs, ",")).Info("HTTP protocol (-r http) listening")
	return p, nil
}

// stop lets the requests in progress be answered within termGrace, then
// closes the listeners and connections and waits for every goroutine.
func (p *httpProtocol) stop() {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), termGrace)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	_ = p.srv.Close()
	p.wg.Wait()
}
