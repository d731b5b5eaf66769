package monitor

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"
)

// Event is one message of /api/v1/events.
type Event struct {
	// Time is when the status was taken, in Unix milliseconds.
	Time   int64  `json:"time"`
	Status any    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// handleEvents streams the supervisor's status every EventInterval as
// server-sent events until the client leaves or the monitor stops.
func (m *Monitor) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(m.opts.EventInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(r.Context(), m.opts.Timeout)
		st, err := m.sup.Status(ctx)
		cancel()
		ev := Event{Time: time.Now().UnixMilli(), Status: st}
		if err != nil {
			ev = Event{Time: ev.Time, Error: err.Error()}
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return
		}
		if _, err := w.Write(append(append([]byte("event: status\ndata: "), b...), "\n\n"...)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-m.done:
			return
		case <-t.C:
		}
	}
}

//go:embed static
var staticFiles embed.FS

// staticHandler serves the embedded dashboard: / is static/index.html.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}
