package supervise

import (
	"bytes"
	"sync"

	"github.com/sirupsen/logrus"
)

// maxOutputLine bounds a line of a child's output kept before logging.
const maxOutputLine = 16 << 10

// lineLogger logs what a child writes, one entry per line, with the
// function, pid and stream as fields, and keeps each line in the log hub
// (when set) for the live log stream.
type lineLogger struct {
	mu     sync.Mutex
	log    logrus.FieldLogger
	fields logrus.Fields
	buf    []byte

	hub    *logHub // may be nil
	fn     string
	child  int
	stream string
	pid    int
}

func (l *lineLogger) setPid(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := logrus.Fields{"pid": pid}
	for k, v := range l.fields {
		f[k] = v
	}
	l.fields = f
	l.pid = pid
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxOutputLine {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	if len(line) > maxOutputLine {
		line = line[:maxOutputLine]
	}
	l.log.WithFields(l.fields).Info("child: " + string(line))
	l.hub.add(l.fn, l.child, l.pid, l.stream, string(line))
}
