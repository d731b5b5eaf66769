package sysproc

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// LogFile is where a daemon's logs go: a file reopened by name after a
// rotation, standard error, or nowhere. Write and Reopen may be called
// from any goroutine; mu guards f.
type LogFile struct {
	path   string    // "" for standard error or none
	w      io.Writer // stderr or io.Discard when path == ""
	onOpen func(*os.File) error
	mu     sync.Mutex
	f      *os.File
}

// OpenLog opens the log target: "stderr" writes to stderr, "none"
// discards, anything else is a file opened for appending (mode 0640).
// onOpen, if not nil, is called with every newly opened file (a daemon
// passes DupToStderr).
func OpenLog(target string, stderr io.Writer, onOpen func(*os.File) error) (*LogFile, error) {
	switch target {
	case "stderr":
		return &LogFile{w: stderr}, nil
	case "none":
		return &LogFile{w: io.Discard}, nil
	}
	o := &LogFile{path: target, onOpen: onOpen}
	f, err := o.open()
	if err != nil {
		return nil, err
	}
	o.f = f
	return o, nil
}

func (o *LogFile) open() (*os.File, error) {
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

func (o *LogFile) Write(p []byte) (int, error) {
	if o.path == "" {
		return o.w.Write(p)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Write(p)
}

// Reopen opens the log file again by name, so that logs go to a new file
// after the old one was renamed. On error the old file stays in use.
func (o *LogFile) Reopen() error {
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
func (o *LogFile) Close() error {
	if o.path == "" {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Close()
}
