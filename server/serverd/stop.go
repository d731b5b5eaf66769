package serverd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server"
)

// termGrace is how long TERM and INT let running jobs finish before the
// server is closed hard.
const termGrace = 2 * time.Second

// stopper is the part of *server.Server that waitStop drives.
type stopper interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// reopener is the log output.
type reopener interface{ Reopen() error }

// waitStop handles signals until the server is stopped: TERM/INT stop
// (Shutdown for termGrace, then Close), USR1 stops gracefully (Shutdown
// without a deadline, then Close), HUP reopens the log file. An admin
// `shutdown [graceful]` does what TERM [USR1] does, and so does the end
// of ctx what TERM does. A Serve error other than ErrServerClosed closes
// the server and is returned.
func waitStop(ctx context.Context, srv stopper, sigs <-chan os.Signal, adminStop <-chan bool, serveErr <-chan error, serving int, out reopener, log logrus.FieldLogger) error {
	var graceDone chan error // set while a graceful stop runs
	graceCancel := func() {}
	defer func() { graceCancel() }()
	graceful := func() {
		if graceDone != nil {
			return
		}
		log.Info("graceful stop: no longer accepting, waiting for the running jobs")
		gctx, cancel := context.WithCancel(context.Background())
		graceCancel = cancel
		graceDone = make(chan error, 1)
		go func() { graceDone <- srv.Shutdown(gctx) }()
	}
	stop := func() error {
		if graceDone != nil {
			graceCancel()
			<-graceDone
		}
		ctx, cancel := context.WithTimeout(context.Background(), termGrace)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.WithError(err).Warn("jobs still running at the end of the grace period, closing")
		}
		return srv.Close()
	}
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				if err := out.Reopen(); err != nil {
					log.WithError(err).Error("cannot reopen the log file; still logging to the old one")
				} else {
					log.Info("log file reopened")
				}
			case syscall.SIGUSR1:
				graceful()
			default:
				log.WithField("signal", sig.String()).Info("stopping")
				_ = stop()
				return nil
			}
		case <-ctx.Done():
			log.WithError(ctx.Err()).Info("stopping")
			_ = stop()
			return nil
		case g := <-adminStop:
			if g {
				graceful()
				continue
			}
			log.Info("stopping on the admin shutdown command")
			_ = stop()
			return nil
		case err := <-graceDone:
			if err != nil {
				log.WithError(err).Warn("graceful stop ended early")
			}
			_ = srv.Close()
			return nil
		case err := <-serveErr:
			if errors.Is(err, server.ErrServerClosed) {
				serving--
				if serving == 0 && graceDone == nil {
					_ = srv.Close()
					return errors.New("the server stopped serving")
				}
				continue
			}
			log.WithError(err).Error("serve failed, stopping")
			_ = srv.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
}
