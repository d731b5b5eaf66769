package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// EventStream writes server-sent events to one client.
type EventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// NewEventStream answers 200 with the event-stream headers.
func NewEventStream(w http.ResponseWriter) *EventStream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &EventStream{w: w, rc: http.NewResponseController(w)}
}

// Send writes one event named name with v as its JSON data, and flushes.
// An error means the client is gone: stop sending.
func (s *EventStream) Send(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("httpapi: event %s: %w", name, err)
	}
	buf := make([]byte, 0, len(name)+len(b)+16)
	buf = append(buf, "event: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, b...)
	buf = append(buf, "\n\n"...)
	return s.Raw(buf)
}

// Raw writes b, already encoded as events or comments, and flushes. An
// error means the client is gone.
func (s *EventStream) Raw(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// SetWriteDeadline bounds the next writes, so that a client that stopped
// reading cannot hold the stream forever.
func (s *EventStream) SetWriteDeadline(t time.Time) error {
	return s.rc.SetWriteDeadline(t)
}
