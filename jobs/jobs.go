// Package jobs holds gworkerd's job handlers: a Registry that maps
// function names to worker.Handler values, the built-in handlers (echo,
// reverse, resize), and the adapter that runs an executable job_<name>
// found in a job directory, in any language, once per job.
package jobs

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/gworkerd/gworkerd/worker"
)

// Registry errors.
var (
	// ErrDuplicate: a function name is registered twice.
	ErrDuplicate = errors.New("jobs: function already registered")
	// ErrInvalidName: an empty function name, or one with a NUL or a
	// space (gearmand's `workers` output cannot carry it).
	ErrInvalidName = errors.New("jobs: invalid function name")
)

// Registry maps function names (case-sensitive) to handlers. It is safe
// for concurrent use. The zero value is not usable: call NewRegistry.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]worker.Handler
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]worker.Handler)}
}

// Register adds handler h under name.
func (r *Registry) Register(name string, h worker.Handler) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if h == nil {
		return fmt.Errorf("jobs: register %q: nil handler", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	r.handlers[name] = h
	return nil
}

// Lookup returns the handler registered under name.
func (r *Registry) Lookup(name string) (worker.Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[name]
	return h, ok
}

// Names returns the registered function names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ValidName reports whether name can be a function name: not empty, at
// most 512 bytes (libgearman's limit), no NUL, no whitespace.
func ValidName(name string) bool {
	if name == "" || len(name) > 512 {
		return false
	}
	for _, c := range []byte(name) {
		if c == 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			return false
		}
	}
	return true
}
