package supervise

import (
	"bytes"
	"strconv"
	"strings"
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
	if level, msg, fields, ok := parseLogLine(line); ok {
		// A gworkerd child's own log line: logged once, structured,
		// at its level, with the child's fields.
		for k, v := range l.fields {
			fields[k] = v
		}
		l.log.WithFields(fields).Log(level, msg)
	} else {
		l.log.WithFields(l.fields).Info("child: " + string(line))
	}
	l.hub.add(l.fn, l.child, l.pid, l.stream, string(line))
}

// maxLogFields bounds the fields read from one child log line.
const maxLogFields = 64

// parseLogLine reads a line in logrus's text format (key=value pairs,
// values bare or Go-quoted, with level and msg among them), as gworkerd's
// children write. ok is false for any other line (a program's own
// output), which is then logged as it is.
func parseLogLine(line []byte) (level logrus.Level, msg string, fields logrus.Fields, ok bool) {
	s := string(line)
	fields = logrus.Fields{}
	levelSeen, msgSeen := false, false
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		if len(fields) >= maxLogFields {
			return 0, "", nil, false
		}
		k, rest, found := strings.Cut(s, "=")
		if !found || k == "" || strings.ContainsAny(k, " \t\"") {
			return 0, "", nil, false
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return 0, "", nil, false
			}
			if v, err = strconv.Unquote(q); err != nil {
				return 0, "", nil, false
			}
			s = rest[len(q):]
			if s != "" && s[0] != ' ' {
				return 0, "", nil, false
			}
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		switch k {
		case "level":
			lv, err := logrus.ParseLevel(v)
			if err != nil {
				return 0, "", nil, false
			}
			// A child's panic or fatal line must not panic the master.
			level, levelSeen = max(lv, logrus.ErrorLevel), true
		case "msg":
			msg, msgSeen = v, true
		case "time":
		default:
			fields[k] = v
		}
	}
	if !levelSeen || !msgSeen {
		return 0, "", nil, false
	}
	return level, msg, fields, true
}
