package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gworkerd/gworkerd/protocol"
)

// SubmitResult is the body of a background submit (202).
type SubmitResult struct {
	Handle string `json:"handle"`
}

// submitRequest is a job to submit over the server's own Gearman listener.
type submitRequest struct {
	function, unique string
	payload          []byte
	priority         protocol.Priority
	background       bool
}

// submitOutcome is what the server answered.
type submitOutcome struct {
	handle    string
	result    []byte // WORK_DATA chunks then the WORK_COMPLETE payload
	failed    bool   // WORK_FAIL
	exception []byte // WORK_EXCEPTION payload, when one came
}

// errGearman is an ERROR packet from the server.
type errGearman struct{ code, text string }

func (e *errGearman) Error() string { return "gearman error " + e.code + ": " + e.text }

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
	req := submitRequest{function: r.PathValue("function"), unique: r.Header.Get("X-Gearman-Unique")}
	if req.function == "" || strings.IndexByte(req.function, 0) >= 0 || strings.IndexByte(req.unique, 0) >= 0 {
		writeError(w, http.StatusBadRequest, "function and unique must be non-empty text without NUL")
		return
	}
	var err error
	if v := r.Header.Get("X-Gearman-Background"); v != "" {
		if req.background, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, "X-Gearman-Background: want true or false")
			return
		}
	}
	if req.priority, err = protocol.ParsePriority(r.Header.Get("X-Gearman-Priority")); err != nil {
		writeError(w, http.StatusBadRequest, "X-Gearman-Priority: want high, normal or low")
		return
	}
	req.payload, err = io.ReadAll(http.MaxBytesReader(w, r.Body, m.opts.MaxPayload))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body: "+err.Error())
		return
	}
	out, err := m.submit(r.Context(), req)
	if out.handle != "" {
		w.Header().Set("X-Gearman-Job-Handle", out.handle)
	}
	var ge *errGearman
	switch {
	case errors.As(err, &ge):
		writeError(w, http.StatusBadGateway, ge.Error())
	case err != nil:
		m.log.WithError(err).WithField("function", req.function).Warn("submit over HTTP failed")
		writeError(w, http.StatusBadGateway, "submit: "+err.Error())
	case req.background:
		writeJSON(w, http.StatusAccepted, SubmitResult{Handle: out.handle})
	case out.exception != nil:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(out.exception)
	case out.failed:
		writeError(w, http.StatusInternalServerError, "job failed")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out.result)
	}
}

// submit dials the Gearman listener and submits req; for a foreground job
// it waits for the end of the job or ctx.
func (m *Monitor) submit(ctx context.Context, req submitRequest) (submitOutcome, error) {
	var out submitOutcome
	// A stopping monitor ends the wait for a foreground job.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	nc, err := m.opts.Dial(ctx, "tcp", m.opts.GearmanAddr)
	if err != nil {
		return out, fmt.Errorf("dial %s: %w", m.opts.GearmanAddr, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if req.exceptionsWanted() {
		if err := protocol.WritePacket(nc, protocol.Req, protocol.OptionReq, []byte("exceptions")); err != nil {
			return out, fmt.Errorf("write: %w", err)
		}
	}
	t := protocol.SubmitType(req.priority, req.background)
	if err := protocol.WritePacket(nc, protocol.Req, t, []byte(req.function), []byte(req.unique), req.payload); err != nil {
		return out, fmt.Errorf("write: %w", err)
	}
	rd := protocol.NewReader(nc, protocol.Limits{MaxPayload: uint32(min(m.opts.MaxPayload, 1<<32-1))})
	var result bytes.Buffer
	for {
		f, err := rd.Next()
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("read: %w", ctx.Err())
			}
			return out, fmt.Errorf("read: %w", err)
		}
		if f.Text {
			continue
		}
		p := f.Packet
		switch p.Type {
		case protocol.Error:
			return out, &errGearman{code: string(p.Arg(0)), text: string(p.Arg(1))}
		case protocol.JobCreated:
			out.handle = string(p.Arg(0))
			if req.background {
				return out, nil
			}
		case protocol.WorkData:
			result.Write(p.Arg(1))
		case protocol.WorkComplete:
			result.Write(p.Arg(1))
			out.result = result.Bytes()
			return out, nil
		case protocol.WorkFail:
			out.failed = true
			return out, nil
		case protocol.WorkException:
			out.exception = bytes.Clone(p.Arg(1))
			if out.exception == nil {
				out.exception = []byte{}
			}
			return out, nil
		}
	}
}

// exceptionsWanted: a foreground job asks for WORK_EXCEPTION packets.
func (r submitRequest) exceptionsWanted() bool { return !r.background }
