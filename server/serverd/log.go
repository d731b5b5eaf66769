package serverd

import (
	"io"
	"log/syslog"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"

	"github.com/gworkerd/gworkerd/config"
)

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
