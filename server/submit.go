package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gworkerd/gworkerd/protocol"
)

// SubmitRequest is a job submitted in process with Server.Submit: what
// one SUBMIT_JOB* packet carries.
type SubmitRequest struct {
	// Function is the function name. A name with a control character
	// (NUL included) is refused with ERROR INVALID_FUNCTION_NAME, as in a
	// packet.
	Function string
	// Unique is the unique ID: "" none, "-" coalesces by payload. One
	// longer than 64 bytes is refused with ERROR ARGUMENT_TOO_LARGE; one
	// with a NUL, which no packet can carry, with ErrInvalidSubmit.
	Unique string
	// Payload is the job's data. Submit may keep these bytes for the
	// job's life without copying them (when the slice has little spare
	// capacity, which would count nowhere): the caller must not change
	// them after the call.
	Payload []byte
	// Priority is protocol.High, Normal or Low. Mind that the zero value
	// is High (0, gearmand's value).
	Priority protocol.Priority
	// Background makes Submit return at JOB_CREATED (SUBMIT_JOB_BG and
	// its priority variants); a foreground submit waits for the job's
	// end.
	Background bool
	// When, for a background job of Normal priority, is the unix time
	// before which the job does not run (SUBMIT_JOB_EPOCH). 0, the
	// default, runs it as soon as a worker takes it.
	When int64
	// Exceptions asks for a foreground job's WORK_EXCEPTION, as OPTION_REQ
	// "exceptions" does on a connection; without it (and without
	// Options.Exceptions) an exception ends the job as WORK_FAIL.
	Exceptions bool
}

// SubmitResult is what the server answered a Submit.
type SubmitResult struct {
	// Handle is the job handle of JOB_CREATED.
	Handle string
	// Result is the WORK_DATA chunks, then WORK_COMPLETE's payload.
	Result []byte
	// Failed is set by WORK_FAIL.
	Failed bool
	// Exception is the WORK_EXCEPTION payload, non-nil when one came.
	Exception []byte
}

// errLocalDropped ends a submit whose answers overflowed
// Options.MaxOutBuffer, as a slow connection is dropped.
var errLocalDropped = errors.New("server: submit: answers beyond the output bound, dropped")

// Submit submits one job in process, for the server's own front-ends
// (HTTP): no socket, no connection slot. The packet goes through the
// path of a packet from a client connection (handler.packet) on a
// connection object of its own, which no listing shows: Stats'
// Connections, `workers` and MaxConnections do not count it, and its log
// lines have conn_id 0. So everything a SUBMIT_JOB* packet gets, a
// Submit gets: the function name check, unique coalescing, priorities,
// the epoch, maxqueue and MaxQueueMemory, the counters, and with a Store
// a background job is acknowledged only once its record is written.
//
// A submit the server refuses returns the ERROR packet a client would
// get, as *protocol.ErrorPacket: INVALID_FUNCTION_NAME,
// ARGUMENT_TOO_LARGE (the unique, or the sizes of Options.Limits), or
// QUEUE_ERROR (maxqueue, MaxQueueMemory, a failed store write). A request
// no packet could carry returns ErrInvalidSubmit.
//
// A background submit returns at JOB_CREATED. A foreground one waits for
// WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION (WORK_STATUS and
// WORK_WARNING are skipped). If ctx ends first, the submitter leaves as
// a disconnecting client does (a queued foreground job that no other
// client waits for is removed) and Submit returns ctx's error, wrapped,
// with the handle. Once Shutdown or Close began, Submit returns
// ErrServerClosed; Close ends the waiting ones with ErrServerClosed and
// waits for them to return.
func (s *Server) Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error) {
	var res SubmitResult
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("server: submit: %w", err)
	}
	p, err := s.submitPacket(req)
	if err != nil {
		return res, err
	}
	c, err := s.openLocal(req.Exceptions)
	if err != nil {
		return res, err
	}
	defer s.closeLocal(c)

	// The payload is the caller's to hand over (SubmitRequest.Payload):
	// owned lets the job keep it without a copy, unless its spare
	// capacity would make it hold more memory than MaxQueueMemory counts.
	owned := cap(req.Payload)-len(req.Payload) <= len(req.Payload)/8
	h := handler{s: s, c: c, owned: owned}
	h.packet(&p)
	h.flushBatch()
	h.owned = false

	rd := localReader{
		dec:        protocol.NewDecoder(protocol.Limits{MaxPayload: math.MaxUint32, MaxArgs: math.MaxInt32}),
		background: req.Background,
	}
	for {
		if done, err := rd.read(c, &res); done {
			return res, err
		}
		select {
		case <-c.local:
			continue
		case <-ctx.Done():
			err = fmt.Errorf("server: submit: %w", ctx.Err())
		case <-s.quit:
			err = ErrServerClosed
		}
		// An answer that came meanwhile wins.
		if done, rerr := rd.read(c, &res); done {
			return res, rerr
		}
		return res, err
	}
}

// submitPacket returns the SUBMIT_* packet of req, after the checks the
// decoder makes on a packet from a socket (frameError).
func (s *Server) submitPacket(req SubmitRequest) (protocol.Packet, error) {
	switch {
	case strings.IndexByte(req.Unique, 0) >= 0:
		return protocol.Packet{}, fmt.Errorf("%w: the unique holds a NUL", ErrInvalidSubmit)
	case req.Priority < protocol.High || req.Priority > protocol.Low:
		return protocol.Packet{}, fmt.Errorf("%w: priority %d", ErrInvalidSubmit, req.Priority)
	case req.When != 0 && (!req.Background || req.Priority != protocol.Normal):
		return protocol.Packet{}, fmt.Errorf("%w: When needs a background job of normal priority (SUBMIT_JOB_EPOCH)", ErrInvalidSubmit)
	}
	p := protocol.Packet{Magic: protocol.Req, Type: protocol.SubmitType(req.Priority, req.Background)}
	p.Args = append(p.Args, []byte(req.Function), []byte(req.Unique))
	if req.When != 0 {
		p.Type = protocol.SubmitJobEpoch
		p.Args = append(p.Args, strconv.AppendInt(nil, req.When, 10))
	}
	args := 0 // the NUL-terminated arguments
	for _, a := range p.Args {
		args += len(a) + 1
	}
	p.Args = append(p.Args, req.Payload)
	maxPayload, maxArgs := int64(s.lim.MaxPayload), s.lim.MaxArgs
	if maxPayload == 0 {
		maxPayload = protocol.DefaultMaxPayload
	}
	if maxArgs <= 0 {
		maxArgs = protocol.DefaultMaxArgs
	}
	switch {
	case int64(args)+int64(len(req.Payload)) > maxPayload:
		return protocol.Packet{}, &protocol.ErrorPacket{Code: protocol.CodeArgumentTooLarge, Text: textPayloadTooLarge}
	case args > maxArgs:
		return protocol.Packet{}, &protocol.ErrorPacket{Code: protocol.CodeArgumentTooLarge, Text: textArgsTooLarge}
	}
	return p, nil
}

// openLocal returns the connection object of an in-process submit, or
// ErrServerClosed. The caller must closeLocal it.
func (s *Server) openLocal(exceptions bool) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	s.localWG.Add(1)
	return &conn{
		s:          s,
		clientID:   "-",
		exceptions: s.opts.Exceptions || exceptions,
		local:      make(chan struct{}, 1),
	}, nil
}

// closeLocal drops c as a closed connection is dropped (dropConn).
func (s *Server) closeLocal(c *conn) {
	s.dropConn(c)
	s.localWG.Done()
}

// localReader decodes the answers of an in-process submit: the packets
// the server appended to its connection's output.
type localReader struct {
	dec        *protocol.Decoder
	background bool
}

// read takes c's output and applies it to res. It reports whether the
// submit is done, and how it ended.
func (r *localReader) read(c *conn, res *SubmitResult) (bool, error) {
	c.wmu.Lock()
	out, dead := c.out, c.dead
	c.out = nil
	c.wmu.Unlock()
	for len(out) > 0 {
		n, f, ok, err := r.dec.Next(out)
		out = out[n:]
		if err != nil {
			// The server's own output: never happens.
			return true, fmt.Errorf("server: submit: decode the answer: %w", err)
		}
		if !ok || f.Text {
			continue
		}
		p := &f.Packet
		switch p.Type {
		case protocol.Error:
			return true, protocol.ParseError(p)
		case protocol.JobCreated:
			res.Handle = string(p.Arg(0))
			if r.background {
				return true, nil
			}
		case protocol.WorkData:
			res.Result = append(res.Result, p.Arg(1)...)
		case protocol.WorkComplete:
			res.Result = append(res.Result, p.Arg(1)...)
			return true, nil
		case protocol.WorkFail:
			res.Failed = true
			return true, nil
		case protocol.WorkException:
			res.Exception = append([]byte{}, p.Arg(1)...)
			return true, nil
		}
	}
	if dead {
		return true, errLocalDropped
	}
	return false, nil
}
