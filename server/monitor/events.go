package monitor

import (
	"net/http"
	"time"

	"github.com/gworkerd/gworkerd/internal/httpapi"
)

// handleEvents streams one Snapshot per EventInterval as server-sent
// events until the client leaves or the monitor stops.
func (m *Monitor) handleEvents(w http.ResponseWriter, r *http.Request) {
	es := httpapi.NewEventStream(w)
	t := time.NewTicker(m.opts.EventInterval)
	defer t.Stop()
	for {
		if err := es.Send("snapshot", m.Snapshot()); err != nil {
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
