package jobs

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/worker"
)

// Echo returns the workload unchanged.
func Echo() worker.Handler {
	return worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
		return append([]byte(nil), j.Payload()...), nil
	})
}

// Reverse returns the workload reversed: by characters when it is valid
// UTF-8, else by bytes.
func Reverse() worker.Handler {
	return worker.HandlerFunc(func(_ context.Context, j worker.Job) ([]byte, error) {
		return reverse(j.Payload()), nil
	})
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	if !utf8.Valid(b) {
		for i, c := range b {
			out[len(b)-1-i] = c
		}
		return out
	}
	i := len(out)
	for len(b) > 0 {
		_, n := utf8.DecodeRune(b)
		i -= n
		copy(out[i:], b[:n])
		b = b[n:]
	}
	return out
}

// Options configure Default.
type Options struct {
	// Dirs are the job directories scanned for executables job_<name>.
	Dirs []string
	// Resize configures the built-in resize function.
	Resize ResizeOptions
	// Exec configures every executable handler (Path and Function are
	// filled in per file).
	Exec Executable
	// Logger receives warnings (skipped files). Default: discarded.
	Logger logrus.FieldLogger
}

// Default returns a Registry with the built-in functions echo, reverse and
// resize, plus one function per executable job_<name> found in
// opts.Dirs. An executable named like a built-in is an error. The
// job_<name>.php and .py files of opts.Dirs (KindPHP, KindPython) are
// left out: they need a Resident pool, which a Registry does not own.
func Default(opts Options) (*Registry, error) {
	r := NewRegistry()
	for name, h := range map[string]worker.Handler{
		"echo":    Echo(),
		"reverse": Reverse(),
		"resize":  NewResize(opts.Resize),
	} {
		if err := r.Register(name, h); err != nil {
			return nil, err
		}
	}
	found, skipped, err := Discover(opts.Dirs...)
	if err != nil {
		return nil, err
	}
	if opts.Logger != nil {
		for _, s := range skipped {
			opts.Logger.WithFields(logrus.Fields{"path": s.Path, "reason": s.Reason}).Warn("job file skipped")
		}
	}
	for _, f := range found {
		if f.Kind != KindExec {
			continue
		}
		e := opts.Exec
		e.Path, e.Function = f.Path, f.Function
		if e.Logger == nil {
			e.Logger = opts.Logger
		}
		if err := r.Register(f.Function, &e); err != nil {
			return nil, fmt.Errorf("jobs: %s: %w", f.Path, err)
		}
	}
	return r, nil
}
