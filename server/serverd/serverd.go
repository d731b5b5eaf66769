// Package serverd is gserverd as a library: Run serves a configured
// Gearman job server (config.Server) in this process until it is told to
// stop, wiring what cmd/gserverd's command line asks for: the listeners
// (-L, TLS, keepalive), the job store, the HTTP endpoint and gearmand's
// HTTP protocol, the log and syslog, the pid file, the user switch and
// the daemon's side of a detached start (StartDaemon is the starter's).
// Queue is the `gserverd queue export|import` tool.
//
// The package handles no signals itself (only main does): Run reads the
// ones main subscribed to from Options.Signals.
package serverd

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/sysuser"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/server"
)

// Options are what Run takes from its caller besides the configuration.
type Options struct {
	// LookupEnv reads the environment (GOMEMLIMIT, the daemon's start
	// report). Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Stderr receives the log with --log-file stderr and the warnings
	// written before the log is open. Default os.Stderr.
	Stderr io.Writer
	// Signals delivers the signals main subscribed to: TERM and INT stop
	// (running jobs get a short grace period), USR1 stops gracefully, HUP
	// reopens the log file. Default nil: only ctx or an admin shutdown
	// stop the server.
	Signals <-chan os.Signal
}

func (o Options) withDefaults() Options {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	return o
}

// Run runs the server in this process (in the foreground, or as the
// daemon that StartDaemon started) until a signal, an admin shutdown or
// the end of ctx stops it (as TERM does). It returns nil after a clean
// stop.
func Run(ctx context.Context, cfg *config.Server, opts Options) (err error) {
	opts = opts.withDefaults()
	var child *sysproc.Child // the daemon's report to its starter
	started := false
	defer func() {
		if !started {
			child.Ready(err)
		}
	}()

	var onOpen func(*os.File) error
	if cfg.Daemon && sysproc.IsChild(opts.LookupEnv) {
		if child, err = daemon(cfg).Child(opts.LookupEnv); err != nil {
			return err
		}
		defer child.Release()
		onOpen = sysproc.DupToStderr
	} else if cfg.PidFile != "" {
		pf, err := lockPidFile(cfg.PidFile)
		if err != nil {
			return err
		}
		defer pf.Remove()
	}

	var creds *sysuser.User
	if cfg.User != "" {
		if creds, err = lookupUser(cfg.User, os.Geteuid(), cfg.Source("user")); err != nil {
			return err
		}
	}
	if cfg.Threads > 0 {
		runtime.GOMAXPROCS(cfg.Threads)
	}
	if cfg.FileDescriptors > 0 {
		if err := setFileLimit(cfg.FileDescriptors, cfg.Source("file_descriptors")); err != nil {
			return err
		}
	}
	out, err := sysproc.OpenLog(cfg.LogFile, opts.Stderr, onOpen)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Source("log_file"), err)
	}
	defer out.Close()
	log := newLogger(cfg, out)
	if cfg.Syslog {
		w, err := newSyslogHook(cfg.SyslogSocket)
		if err != nil {
			// gearmand's openlog cannot fail: start without syslog.
			fmt.Fprintf(opts.Stderr, "gserverd: warning: %s: %v; logging to --log-file only\n", cfg.Source("syslog"), err)
		} else {
			log.AddHook(w)
			defer w.Writer.Close()
		}
	}
	mem, memOK := systemMemoryLimit(cgroup.Host())
	setGoMemoryLimit(mem, memOK, opts.LookupEnv, log)

	tc, err := tlsConfig(cfg)
	if err != nil {
		return err
	}
	addrs, err := bindAddrs(ctx, net.DefaultResolver, cfg.Listen)
	if err != nil {
		return err
	}
	lns, err := listenAll(ctx, listenConfig(cfg), addrs, cfg.Port, log)
	if err != nil {
		return err
	}
	lns = wrapTLS(lns, tc)
	handedOver := false
	defer func() {
		if !handedOver {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	httpLns, err := listenHTTPProtocol(ctx, cfg, addrs, log)
	if err != nil {
		return err
	}
	defer func() {
		if !handedOver {
			for _, ln := range httpLns {
				ln.Close()
			}
		}
	}()
	web, err := startHTTP(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer web.stop()
	if creds != nil {
		if err := creds.Become(); err != nil {
			return err
		}
	}
	member := ""
	if cfg.Store.QueueType == "postgres" {
		member = memberID(cfg, lns)
	}
	st, err := openStore(ctx, cfg, member, log)
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	adminStop := make(chan bool, 1)
	onShutdown := func(graceful bool) {
		select {
		case adminStop <- graceful:
		default:
		}
	}
	srv, err := server.New(serverOptions(cfg, log, st, onShutdown, mem, memOK))
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	web.attach(srv)
	proto, err := startHTTPProtocol(cfg, httpLns, srv, log)
	if err != nil {
		return err
	}
	defer proto.stop()

	serveErr := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveErr <- srv.Serve(ln)
		}()
	}
	handedOver = true
	started = true
	child.Ready(nil)
	addrList := make([]string, len(lns))
	for i, ln := range lns {
		addrList[i] = ln.Addr().String()
	}
	log.WithFields(logrus.Fields{"addr": strings.Join(addrList, ","), "pid": os.Getpid(), "version": version.String(), "queue_type": cfg.Store.QueueType, "tls": tc != nil}).Info("gserverd started")

	err = waitStop(ctx, srv, opts.Signals, adminStop, serveErr, len(lns), out, log)
	wg.Wait()
	log.Info("gserverd stopped")
	return err
}
