package workerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/cgroup"
	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

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

// master is what runMaster needs besides the config.
type master struct {
	in  config.Inputs // what cfg was loaded from; a reload reads them again
	cfg *config.Worker
	// signals: SIGTERM and SIGINT stop, SIGHUP reloads, SIGUSR1 reopens
	// the log file.
	signals <-chan os.Signal
	logFile *sysproc.LogFile // the log's destination, reopened on SIGUSR1
	log     *logrus.Logger
	// ready is told once the control socket and the HTTP endpoint serve,
	// or why the start failed; nil for none.
	ready func(error)
}

// run supervises until ctx ends or a stop signal comes, then stops
// every child.
func (m *master) run(ctx context.Context) error {
	in, cfg, log := m.in, m.cfg, m.log
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

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
			case sig := <-m.signals:
				switch sig {
				case syscall.SIGHUP:
					log.Info("SIGHUP: reloading")
					rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
					if _, err := reload(rctx); err != nil {
						log.WithError(err).Error("reload failed; keeping the running config")
					}
					rcancel()
				case syscall.SIGUSR1:
					if err := reopenLog(m.logFile, cfg.LogFile); err != nil {
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
	if m.ready != nil {
		m.ready(nil)
	}
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

// openLog opens the master's log: the file log_file names (made the
// process's standard output and error too, so that panics land there),
// or standard error when it is "".
func openLog(path string, stderr io.Writer) (*sysproc.LogFile, error) {
	if path == "" {
		return sysproc.OpenLog("stderr", stderr, nil)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return sysproc.OpenLog(path, stderr, sysproc.DupToStderr)
}

// reopenLog reopens the log file by name after a rotation (SIGUSR1),
// making its directory again if it was removed.
func reopenLog(lf *sysproc.LogFile, path string) error {
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("log file: %w", err)
		}
	}
	return lf.Reopen()
}

// newLogger is the master's logger, writing to w.
func newLogger(w io.Writer) *logrus.Logger {
	log := logrus.New()
	log.Out = w
	log.Formatter = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
	return log
}
