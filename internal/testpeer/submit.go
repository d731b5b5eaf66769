package testpeer

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/gworkerd/gworkerd/protocol"
)

// ErrJobFailed is SubmitJob's error for a WORK_FAIL.
var ErrJobFailed = errors.New("job failed")

// SubmitJob runs one job on a fresh raw-protocol connection to addr and
// returns its result, or for a background job its handle. WORK_FAIL gives
// ErrJobFailed; WORK_EXCEPTION (asked for with exceptions) and ERROR give
// an error with their text. ctx bounds the whole exchange.
func SubmitJob(ctx context.Context, addr, fn, data string, background, exceptions bool) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if exceptions {
		// The server answers OPTION_RES before JOB_CREATED; the loop
		// below skips it.
		if err := protocol.WritePacket(conn, protocol.Req, protocol.OptionReq, []byte("exceptions")); err != nil {
			return "", err
		}
	}
	t := protocol.SubmitJob
	if background {
		t = protocol.SubmitJobBg
	}
	if err := protocol.WritePacket(conn, protocol.Req, t, []byte(fn), nil, []byte(data)); err != nil {
		return "", err
	}
	r := protocol.NewReader(conn, protocol.Limits{})
	for {
		f, err := r.Next()
		if err != nil {
			return "", err
		}
		switch f.Packet.Type {
		case protocol.JobCreated:
			if background {
				return string(f.Packet.Arg(0)), nil
			}
		case protocol.WorkComplete:
			return string(f.Packet.Arg(1)), nil
		case protocol.WorkFail:
			return "", ErrJobFailed
		case protocol.WorkException:
			return "", fmt.Errorf("job exception: %s", f.Packet.Arg(1))
		case protocol.Error:
			return "", fmt.Errorf("server error: %q", f.Packet.Args)
		}
	}
}
