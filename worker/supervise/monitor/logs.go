package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gworkerd/gworkerd/internal/httpapi"
	"github.com/gworkerd/gworkerd/worker/supervise"
)

// logKeepalive is the period of the comment sent on an idle log stream,
// so that proxies and the client see the stream alive.
const logKeepalive = 15 * time.Second

// Dropped is the data of a "dropped" event of the log stream: lines the
// client was too slow to take.
type Dropped struct {
	Dropped int    `json:"dropped"`
	Message string `json:"message"`
}

// handleLogs streams the output of a function's children as server-sent
// events: first the lines kept (the last Options.LogLines of the
// supervisor; ?tail=N sends only the last N of them), then each new
// line, one "line" event each (a supervise.LogLine), and a "dropped"
// event (Dropped) when lines were lost because this client reads too
// slowly. Children never wait for it.
func (m *Monitor) handleLogs(w http.ResponseWriter, r *http.Request) {
	select {
	case m.logSlots <- struct{}{}:
		defer func() { <-m.logSlots }()
	default:
		writeError(w, http.StatusServiceUnavailable, "too many log streams open")
		return
	}
	fn := r.PathValue("function")
	tail := -1 // all the lines kept
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "tail: want ?tail=<lines >= 0>")
			return
		}
		tail = n
	}
	cctx, ccancel := context.WithTimeout(r.Context(), m.opts.Timeout)
	backlog, sub, err := m.sup.SubscribeLogs(cctx, fn)
	ccancel()
	switch {
	case errors.Is(err, supervise.ErrUnknownFunction):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer sub.Close()
	if tail >= 0 && len(backlog) > tail {
		backlog = backlog[len(backlog)-tail:]
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // ends with the handler (cancel) or the monitor
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	es := httpapi.NewEventStream(w)
	send := func(b []byte) bool {
		_ = es.SetWriteDeadline(time.Now().Add(m.opts.Timeout))
		return es.Raw(b) == nil
	}
	if !send(logEvents(backlog, 0)) {
		return
	}
	for {
		nctx, ncancel := context.WithTimeout(ctx, logKeepalive)
		lines, dropped, err := sub.Next(nctx)
		ncancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil: // idle
			if !send([]byte(": keepalive\n\n")) {
				return
			}
		default:
			if !send(logEvents(lines, dropped)) {
				return
			}
		}
	}
}

// logEvents encodes a drop notice (when dropped > 0) followed by lines as
// server-sent events; an empty batch is a comment that opens the stream.
func logEvents(lines []supervise.LogLine, dropped int) []byte {
	var b []byte
	if dropped > 0 {
		d, _ := json.Marshal(Dropped{Dropped: dropped, Message: fmt.Sprintf("dropped %d lines: this reader is too slow", dropped)})
		b = append(append(append(b, "event: dropped\ndata: "...), d...), "\n\n"...)
	}
	for _, l := range lines {
		d, _ := json.Marshal(l)
		b = append(b, "event: line\nid: "...)
		b = strconv.AppendUint(b, l.Seq, 10)
		b = append(append(append(b, "\ndata: "...), d...), "\n\n"...)
	}
	if len(b) == 0 {
		b = []byte(": no line yet\n\n")
	}
	return b
}
