package gearhttp

import (
	"bytes"
	"context"
	"fmt"
	"net"

	"github.com/gworkerd/gworkerd/protocol"
)

// Submitter submits jobs over a Gearman listener, as a Gearman client:
// one connection per job, closed when the job's answer came. gserverd
// points it at its own listener (loopback), so a job submitted over HTTP
// goes through exactly the path of any other client.
type Submitter struct {
	// Addr is the host:port of the Gearman listener. Required.
	Addr string
	// Dial connects to Addr. Default: a plain TCP dial (gserverd with
	// --ssl passes a TLS dialer that trusts its own certificate).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxPayload bounds a packet read from the server (the result of a
	// foreground job). Default 64 MiB.
	MaxPayload int64
}

// Request is one job to submit.
type Request struct {
	Function, Unique string
	Payload          []byte
	Priority         protocol.Priority
	Background       bool
	// Exceptions asks for WORK_EXCEPTION packets (OPTION_REQ exceptions)
	// for a foreground job; without it the server sends WORK_FAIL instead.
	Exceptions bool
}

// Outcome is what the server answered.
type Outcome struct {
	// Handle is the job handle from JOB_CREATED.
	Handle string
	// Result is the WORK_DATA chunks then the WORK_COMPLETE payload.
	Result []byte
	// Failed is set by WORK_FAIL.
	Failed bool
	// Exception is the WORK_EXCEPTION payload, non-nil when one came.
	Exception []byte
}

// Submit dials the listener and submits req. A background job returns at
// JOB_CREATED; a foreground one waits for WORK_COMPLETE, WORK_FAIL or
// WORK_EXCEPTION (WORK_STATUS and WORK_WARNING are skipped), or for ctx to
// end, which closes the connection (the server then forgets a job that no
// other client waits for). An ERROR packet is returned as *GearmanError.
func (s *Submitter) Submit(ctx context.Context, req Request) (Outcome, error) {
	var out Outcome
	dial := s.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	maxPayload := s.MaxPayload
	if maxPayload <= 0 {
		maxPayload = defaultMaxPayload
	}
	nc, err := dial(ctx, "tcp", s.Addr)
	if err != nil {
		return out, fmt.Errorf("gearhttp: dial %s: %w", s.Addr, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if req.Exceptions && !req.Background {
		if err := protocol.WritePacket(nc, protocol.Req, protocol.OptionReq, []byte("exceptions")); err != nil {
			return out, fmt.Errorf("gearhttp: write: %w", err)
		}
	}
	t := protocol.SubmitType(req.Priority, req.Background)
	if err := protocol.WritePacket(nc, protocol.Req, t, []byte(req.Function), []byte(req.Unique), req.Payload); err != nil {
		return out, fmt.Errorf("gearhttp: write: %w", err)
	}
	rd := protocol.NewReader(nc, protocol.Limits{MaxPayload: uint32(min(maxPayload, 1<<32-1))})
	var result bytes.Buffer
	for {
		f, err := rd.Next()
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("gearhttp: read: %w", ctx.Err())
			}
			return out, fmt.Errorf("gearhttp: read: %w", err)
		}
		if f.Text {
			continue
		}
		p := f.Packet
		switch p.Type {
		case protocol.Error:
			return out, &GearmanError{Code: string(p.Arg(0)), Text: string(p.Arg(1))}
		case protocol.JobCreated:
			out.Handle = string(p.Arg(0))
			if req.Background {
				return out, nil
			}
		case protocol.WorkData:
			result.Write(p.Arg(1))
		case protocol.WorkComplete:
			result.Write(p.Arg(1))
			out.Result = result.Bytes()
			return out, nil
		case protocol.WorkFail:
			out.Failed = true
			return out, nil
		case protocol.WorkException:
			out.Exception = bytes.Clone(p.Arg(1))
			if out.Exception == nil {
				out.Exception = []byte{}
			}
			return out, nil
		}
	}
}
