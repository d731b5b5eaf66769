package monitor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
)

// SubmitResult is the body of a background submit (202).
type SubmitResult struct {
	Handle string `json:"handle"`
}

// handleSubmit is POST /api/v1/jobs/{function}: the body is the payload;
// X-Gearman-Unique, X-Gearman-Background (true/false) and
// X-Gearman-Priority (high, normal, low) as gearmand's HTTP protocol.
// The job is submitted in process (Source.Submit). A background job
// answers 202 with its handle; a foreground one waits and answers 200
// with the result as the body (500 on WORK_FAIL or WORK_EXCEPTION); a
// client that leaves first leaves the job as a disconnecting Gearman
// client does. Every answer with a job carries X-Gearman-Job-Handle.
// A submit the server refuses answers 400 (ARGUMENT_TOO_LARGE,
// INVALID_FUNCTION_NAME) or 503 (QUEUE_ERROR: maxqueue, the queue memory
// bound, a failed store write) with the ERROR packet's code and text.
func (m *Monitor) handleSubmit(w http.ResponseWriter, r *http.Request) {
	if m.opts.NoSubmit {
		writeError(w, http.StatusServiceUnavailable, "submitting over HTTP is not enabled")
		return
	}
	src, ok := m.source()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "server not ready")
		return
	}
	req := server.SubmitRequest{Function: r.PathValue("function"), Unique: r.Header.Get("X-Gearman-Unique")}
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
	// A foreground job asks for WORK_EXCEPTION: its payload is the 500's
	// body.
	req.Exceptions = !req.Background
	req.Payload, err = io.ReadAll(http.MaxBytesReader(w, r.Body, m.opts.MaxPayload))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body: "+err.Error())
		return
	}
	out, err := m.submit(r.Context(), src, req)
	if out.Handle != "" {
		w.Header().Set("X-Gearman-Job-Handle", out.Handle)
	}
	var ep *protocol.ErrorPacket
	switch {
	case errors.As(err, &ep):
		code := http.StatusServiceUnavailable
		if ep.Code == protocol.CodeArgumentTooLarge || ep.Code == protocol.CodeInvalidFunctionName {
			code = http.StatusBadRequest
		}
		writeError(w, code, ep.Error())
	case errors.Is(err, server.ErrServerClosed) || (err != nil && !m.Ready()):
		writeError(w, http.StatusServiceUnavailable, "server stopping")
	case r.Context().Err() != nil:
		// The client left: nobody to answer.
	case err != nil:
		m.log.WithError(err).WithField("function", req.Function).Warn("submit over HTTP failed")
		writeError(w, http.StatusInternalServerError, "submit: "+err.Error())
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

// submit submits req to src; a foreground job waits for its end, ctx, or
// the monitor stopping.
func (m *Monitor) submit(ctx context.Context, src Source, req server.SubmitRequest) (server.SubmitResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return src.Submit(ctx, req)
}
