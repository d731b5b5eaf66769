package monitor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/gearhttp"
)

// SubmitResult is the body of a background submit (202).
type SubmitResult struct {
	Handle string `json:"handle"`
}

// handleSubmit is POST /api/v1/jobs/{function}: the body is the payload;
// X-Gearman-Unique, X-Gearman-Background (true/false) and
// X-Gearman-Priority (high, normal, low) as gearmand's HTTP protocol.
// A background job answers 202 with its handle; a foreground one waits and
// answers 200 with the result as the body (500 on WORK_FAIL or
// WORK_EXCEPTION). Every answer carries X-Gearman-Job-Handle.
func (m *Monitor) handleSubmit(w http.ResponseWriter, r *http.Request) {
	if m.opts.GearmanAddr == "" {
		writeError(w, http.StatusServiceUnavailable, "submitting over HTTP is not enabled")
		return
	}
	if !m.Ready() {
		writeError(w, http.StatusServiceUnavailable, "server not ready")
		return
	}
	req := gearhttp.Request{Function: r.PathValue("function"), Unique: r.Header.Get("X-Gearman-Unique")}
	if req.Function == "" || strings.IndexByte(req.Function, 0) >= 0 || strings.IndexByte(req.Unique, 0) >= 0 {
		writeError(w, http.StatusBadRequest, "function and unique must be non-empty text without NUL")
		return
	}
	if !protocol.ValidFunctionName([]byte(req.Function)) {
		writeError(w, http.StatusBadRequest, "function: "+protocol.TextInvalidFunctionName)
		return
	}
	var err error
	if v := r.Header.Get("X-Gearman-Background"); v != "" {
		if req.Background, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, "X-Gearman-Background: want true or false")
			return
		}
	}
	if req.Priority, err = protocol.ParsePriority(r.Header.Get("X-Gearman-Priority")); err != nil {
		writeError(w, http.StatusBadRequest, "X-Gearman-Priority: want high, normal or low")
		return
	}
	// A foreground job asks for WORK_EXCEPTION packets: their payload is
	// the 500's body.
	req.Exceptions = !req.Background
	req.Payload, err = io.ReadAll(http.MaxBytesReader(w, r.Body, m.opts.MaxPayload))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body: "+err.Error())
		return
	}
	out, err := m.submit(r.Context(), req)
	if out.Handle != "" {
		w.Header().Set("X-Gearman-Job-Handle", out.Handle)
	}
	var ge *gearhttp.GearmanError
	switch {
	case errors.As(err, &ge):
		writeError(w, http.StatusBadGateway, ge.Error())
	case err != nil:
		m.log.WithError(err).WithField("function", req.Function).Warn("submit over HTTP failed")
		writeError(w, http.StatusBadGateway, "submit: "+err.Error())
	case req.Background:
		writeJSON(w, http.StatusAccepted, SubmitResult{Handle: out.Handle})
	case out.Exception != nil:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(out.Exception)
	case out.Failed:
		writeError(w, http.StatusInternalServerError, "job failed")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out.Result)
	}
}

// submit submits req with the shared gearhttp.Submitter; a foreground job
// waits for its end, ctx, or the monitor stopping.
func (m *Monitor) submit(ctx context.Context, req gearhttp.Request) (gearhttp.Outcome, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return m.submitter.Submit(ctx, req)
}
