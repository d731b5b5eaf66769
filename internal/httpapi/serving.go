package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// Server is an HTTP server as both daemons' monitors are: Serve on a
// listener until Shutdown or Close.
type Server interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// Serving is a Server running on a goroutine of its own, which Stop ends.
type Serving struct {
	srv  Server
	done chan struct{} // closed when Serve returned
}

// Serve runs srv on ln until Stop. It logs the address, and logs an
// error if srv stops by itself.
func Serve(srv Server, ln net.Listener, log logrus.FieldLogger) *Serving {
	s := &Serving{srv: srv, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("HTTP endpoint stopped")
		}
	}()
	log.WithField("addr", ln.Addr().String()).Info("HTTP endpoint listening")
	return s
}

// Stop shuts the server down, letting requests finish within grace, then
// closes what is left (event streams) and waits until Serve returned. A
// nil Serving does nothing.
func (s *Serving) Stop(grace time.Duration) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
	<-s.done
}
