package main

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"

	"github.com/gworkerd/gworkerd/config"
)

// logOutput is where the logs go: a file that SIGHUP reopens (after a
// rotation), standard error, or nowhere. Write and Reopen may be called
// from any goroutine; mu guards f.
type logOutput struct {
	path   string    // "" for stderr or none
	w      io.Writer // stderr or io.Discard when path == ""
	mu     sync.Mutex
	f      *os.File
	onOpen func(*os.File) error // called with every newly opened file (daemon: becomes fd 2)
}

func openLogOutput(target string, stderr io.Writer, onOpen func(*os.File) error) (*logOutput, error) {
	switch target {
	case "stderr":
		return &logOutput{w: stderr}, nil
	case "none":
		return &logOutput{w: io.Discard}, nil
	}
	o := &logOutput{path: target, onOpen: onOpen}
	f, err := o.open()
	if err != nil {
		return nil, err
	}
	o.f = f
	return o, nil
}

func (o *logOutput) open() (*os.File, error) {
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	if o.onOpen != nil {
		if err := o.onOpen(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("log file %s: %w", o.path, err)
		}
	}
	return f, nil
}

func (o *logOutput) Write(p []byte) (int, error) {
	if o.path == "" {
		return o.w.Write(p)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Write(p)
}

// Reopen opens the log file again by name, so that logs go to a new file
// after the old one was renamed. On error the old file stays in use.
func (o *logOutput) Reopen() error {
	if o.path == "" {
		return nil
	}
	f, err := o.open()
	if err != nil {
		return err
	}
	o.mu.Lock()
	old := o.f
	o.f = f
	o.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (o *logOutput) Close() error {
	if o.path == "" {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Close()
}

// newSyslogHook connects to the local syslog: socket, or the system's
// when "" (/dev/log). Messages are tagged gserverd, facility daemon.
func newSyslogHook(socket string) (*lsyslog.SyslogHook, error) {
	const prio = syslog.LOG_DAEMON | syslog.LOG_INFO
	if socket == "" {
		return lsyslog.NewSyslogHook("", "", prio, "gserverd")
	}
	h, err := lsyslog.NewSyslogHook("unixgram", socket, prio, "gserverd")
	if err != nil {
		h, err = lsyslog.NewSyslogHook("unix", socket, prio, "gserverd")
	}
	return h, err
}

// newLogger returns the logger the server and main log through.
func newLogger(cfg *config.Server, out io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(out)
	l.SetLevel(cfg.LogLevel())
	if cfg.LogFormat == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	return l
}
