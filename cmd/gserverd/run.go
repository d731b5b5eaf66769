package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/sysuser"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/store"
)

// termGrace is how long TERM and INT let running jobs finish before the
// server is closed hard.
const termGrace = 2 * time.Second

// run is gserverd: it returns the exit status. Only main calls os.Exit.
func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "queue" {
		return runQueue(args[1:], lookupEnv, os.Stdin, stdout, stderr)
	}
	cmd, err := parseCommandLine(args, lookupEnv, os.Getuid())
	if err != nil {
		fmt.Fprintf(stderr, "gserverd: %v\n", err)
		return 1 // gearmand's status for a bad command line
	}
	if cmd.cfg != nil && !isDaemonChild(lookupEnv) {
		for _, w := range cmd.cfg.Warnings {
			fmt.Fprintf(stderr, "gserverd: warning: %s\n", w)
		}
	}
	switch {
	case cmd.help:
		writeUsage(stdout, cmd.fs)
		return 0
	case cmd.version:
		fmt.Fprintf(stdout, "gserverd %s\n", version.String())
		return 0
	case cmd.checkArgs:
		return 0
	}
	cfg := cmd.cfg
	if cfg.Daemon && !isDaemonChild(lookupEnv) {
		if cfg.User != "" {
			if _, err := lookupUser(cfg.User, os.Geteuid(), cfg.Source("user")); err != nil {
				fmt.Fprintf(stderr, "gserverd: %v\n", err)
				return 1
			}
		}
		if err := startDaemon(cfg); err != nil {
			fmt.Fprintf(stderr, "gserverd: %v\n", err)
			return 1
		}
		return 0
	}
	if err := serve(cfg, lookupEnv, stderr); err != nil {
		fmt.Fprintf(stderr, "gserverd: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the server in this process (foreground, or as the daemon)
// until a signal stops it.
func serve(cfg *config.Server, lookupEnv func(string) (string, bool), stderr io.Writer) (err error) {
	ctx := context.Background()
	asDaemon := cfg.Daemon && isDaemonChild(lookupEnv)
	started := false
	defer func() {
		if !started {
			reportStart(lookupEnv, err)
		}
	}()

	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var onOpen func(*os.File) error
	if asDaemon {
		dctx, err := daemonChild(cfg)
		if err != nil {
			return err
		}
		defer dctx.Release()
		onOpen = dupToStderr
	} else if cfg.PidFile != "" {
		pf, err := createPidFile(cfg.PidFile)
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
	out, err := openLogOutput(cfg.LogFile, stderr, onOpen)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Source("log_file"), err)
	}
	defer out.Close()
	log := newLogger(cfg, out)
	if cfg.Syslog {
		w, err := newSyslogHook(cfg.SyslogSocket)
		if err != nil {
			// gearmand's openlog cannot fail: start without syslog.
			fmt.Fprintf(stderr, "gserverd: warning: %s: %v; logging to --log-file only\n", cfg.Source("syslog"), err)
		} else {
			log.AddHook(w)
			defer w.Writer.Close()
		}
	}
	mem, memOK := systemMemoryLimit(hostCgroup())
	setGoMemoryLimit(mem, memOK, lookupEnv, log)

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
	reportStart(lookupEnv, nil)
	addrList := make([]string, len(lns))
	for i, ln := range lns {
		addrList[i] = ln.Addr().String()
	}
	log.WithFields(logrus.Fields{"addr": strings.Join(addrList, ","), "pid": os.Getpid(), "version": version.String(), "queue_type": cfg.Store.QueueType, "tls": tc != nil}).Info("gserverd started")

	err = waitStop(srv, sigs, adminStop, serveErr, len(lns), out, log)
	wg.Wait()
	log.Info("gserverd stopped")
	return err
}

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
// `shutdown [graceful]` does what TERM [USR1] does. A Serve error other
// than ErrServerClosed closes the server and is returned.
func waitStop(srv stopper, sigs <-chan os.Signal, adminStop <-chan bool, serveErr <-chan error, serving int, out reopener, log logrus.FieldLogger) error {
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

// serverOptions maps the configuration to server.Options.
func serverOptions(cfg *config.Server, log logrus.FieldLogger, st store.Store, onShutdown func(graceful bool), mem memLimit, memOK bool) server.Options {
	o := server.DefaultOptions()
	o.Logger = log
	if cfg.JobHandlePrefix != "" {
		o.JobHandlePrefix = cfg.JobHandlePrefix
	}
	o.JobRetries = cfg.JobRetries
	o.WorkerWakeup = cfg.WorkerWakeup
	o.Exceptions = cfg.Exceptions
	o.AdminShutdown = cfg.AdminShutdown
	o.OnShutdown = onShutdown
	o.Limits = protocol.Limits{MaxPayload: uint32(cfg.MaxPayload)}
	o.Store = st
	o.StoreTimeout = cfg.Store.StoreTimeout
	if o.StoreTimeout == 0 {
		o.StoreTimeout = -1 // none
	}
	o.Version = version.String()
	o.VerboseName = cfg.Verbose
	o.MaxConnections = maxConnections(cfg.MaxConnections)
	o.MaxQueueMemory = maxQueueMemory(cfg.MaxQueueMemory, mem, memOK)
	log.WithFields(logrus.Fields{"max_queue_memory": o.MaxQueueMemory,
		"from": describeQueueMemory(cfg.MaxQueueMemory >= 0, mem, memOK)}).Info("queue memory bound")
	o.PacketTimeout = cfg.PacketTimeout
	if o.PacketTimeout == 0 {
		o.PacketTimeout = -1 // none
	}
	return o
}
