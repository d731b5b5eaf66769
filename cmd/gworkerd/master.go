package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// logFile is the log destination: standard error, or a file dup'ed onto
// descriptors 1 and 2 (so that panics land there too) and reopened on
// SIGUSR1 for logrotate.
type logFile struct {
	path string
}

func (l *logFile) open() error {
	if l.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("log file: dup: %w", err)
		}
	}
	return nil
}

func newLogger() *logrus.Logger {
	log := logrus.New()
	log.Out = os.Stderr
	log.Formatter = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
	return log
}

// fixedSettings cannot change on reload: a reload that changes one is
// rejected whole.
func fixedSettings(c *config.Worker) map[string]string {
	return map[string]string{
		"pid_file": c.PidFile, "control_socket": c.ControlSocket, "log_file": c.LogFile,
		"stop_timeout": c.StopTimeout.String(), "scale_interval": c.ScaleInterval.String(),
		"http_listen": c.HTTPListen, "http_token": tokenTag(c.HTTPToken),
		"max_children": strconv.Itoa(c.MaxChildren), "max_children_per_function": strconv.Itoa(c.MaxChildrenPerFunction),
		"memory_cgroup": c.MemoryCgroup,
	}
}

// openCgroups makes the master's memory cgroup as memory_cgroup says,
// and logs once how the memory of the children is measured; without a
// cgroup, the second result says why.
func openCgroups(setting string, log logrus.FieldLogger) (*cgroup.Tree, string) {
	if setting == config.MemoryCgroupOff {
		log.WithFields(logrus.Fields{"accounting": "process tree", "memory_cgroup": setting}).Info("memory accounting: process tree")
		return nil, "memory_cgroup: off"
	}
	var opts cgroup.Options
	if setting != config.MemoryCgroupAuto {
		opts.Root = setting
	}
	tr, err := cgroup.Open(opts)
	if err != nil {
		why := err.Error()
		if ue := (*cgroup.UnavailableError)(nil); errors.As(err, &ue) {
			why = ue.Reason
		}
		l := log.WithFields(logrus.Fields{"accounting": "process tree", "memory_cgroup": setting, "reason": why})
		if opts.Root != "" {
			l.Warn("memory accounting: process tree, the memory_cgroup given is not usable")
		} else {
			l.Info("memory accounting: process tree, no writable memory cgroup")
		}
		return nil, "no writable memory cgroup: " + why
	}
	l := log.WithFields(logrus.Fields{"accounting": tr.Version().String(), "cgroup": tr.Dir()})
	if s := tr.Skipped(); s != "" {
		l = l.WithField("v2_not_used", s)
	}
	l.Info("memory accounting: cgroup working set")
	return tr, ""
}

// runMaster supervises until SIGTERM or SIGINT, then stops every child.
// in are the inputs cfg was loaded from; a reload reads them again.
func runMaster(in config.Inputs, cfg *config.Worker, lf *logFile, log *logrus.Logger) error {
	res, err := resolve(cfg)
	if err != nil {
		return err
	}
	warnSkipped(log, res.skipped)
	// A child subreaper adopts what a job leaves running after it
	// (`setsid cmd &`), so that the supervisor can end it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	// Removed once Run has returned: the children's cgroups are gone.
	cgroups, noCgroups := openCgroups(cfg.MemoryCgroup, log)
	if cgroups != nil {
		defer func() {
			if err := cgroups.Close(); err != nil {
				log.WithError(err).Warn("memory cgroup not removed")
			}
		}()
	}
	sup, err := supervise.New(supervise.Options{
		Functions:     res.specs,
		StopTimeout:   cfg.StopTimeout,
		Backlog:       supervise.AdminBacklog(cfg.Servers, 2*time.Second),
		ScaleInterval: cfg.ScaleInterval,
		Logger:        log,
		ReapOrphans:   true,
		Cgroups:       cgroups,
		NoCgroups:     noCgroups,

		MaxChildrenPerFunction: cfg.MaxChildrenPerFunction,
		MaxChildren:            cfg.MaxChildren,
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.ControlSocket), 0o755); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ln, err := supervise.ListenControl(cfg.ControlSocket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.ControlSocket)
	web, err := startHTTP(cfg, sup, log)
	if err != nil {
		return err
	}
	defer web.stop()

	var reloadMu sync.Mutex
	current := cfg
	reload := func(ctx context.Context) ([]string, error) {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, err := config.LoadWorker(in)
		if err != nil {
			return nil, err
		}
		old, nw := fixedSettings(current), fixedSettings(next)
		for k, v := range old {
			if nw[k] != v {
				return nil, fmt.Errorf("reload rejected: %s cannot change while running (%q -> %q); restart instead", k, v, nw[k])
			}
		}
		res, err := resolve(next)
		if err != nil {
			return nil, err
		}
		warnSkipped(log, res.skipped)
		if err := sup.Reload(ctx, res.specs); err != nil {
			return nil, err
		}
		current = next
		log.WithField("functions", res.names).Info("config reloaded")
		return skippedWarnings(res.skipped), nil
	}
	cs := &supervise.ControlServer{Supervisor: sup, Reload: reload, Logger: log}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	var wg sync.WaitGroup
	wg.Add(2)
	serveErr := make(chan error, 1)
	go func() { defer wg.Done(); serveErr <- cs.Serve(ln) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				switch sig {
				case syscall.SIGHUP:
					log.Info("SIGHUP: reloading")
					rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
					if _, err := reload(rctx); err != nil {
						log.WithError(err).Error("reload failed; keeping the running config")
					}
					rcancel()
				case syscall.SIGUSR1:
					if err := lf.open(); err != nil {
						log.WithError(err).Error("reopen log file")
					} else {
						log.Info("log file reopened")
					}
				default:
					log.WithField("signal", sig.String()).Info("stopping")
					cancel()
					return
				}
			}
		}
	}()
	log.WithFields(logrus.Fields{"pid": os.Getpid(), "functions": res.names, "servers": cfg.Servers}).Info("gworkerd started")
	runErr := sup.Run(ctx)
	cancel()
	_ = cs.Close()
	wg.Wait()
	if err := <-serveErr; err != nil && !errors.Is(err, context.Canceled) {
		log.WithError(err).Warn("control socket")
	}
	log.Info("gworkerd stopped")
	return runErr
}
