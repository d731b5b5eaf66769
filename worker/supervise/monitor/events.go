package monitor

import (
	"context"
	"embed"
	"net/http"
	"time"

	"github.com/gworkerd/gworkerd/internal/httpapi"
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
	es := httpapi.NewEventStream(w)
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
		if es.Send("status", ev) != nil {
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

// staticFiles is the dashboard: static/index.html is served at /.
//
//go:embed static
var staticFiles embed.FS
