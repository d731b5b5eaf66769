package supervise

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// AdminBacklog returns a Backlog function that asks every server for its
// admin `status` and sums, per function, the jobs queued and not running.
// A server that does not answer is skipped; an error is returned only
// when none answers.
func AdminBacklog(servers []string, dialTimeout time.Duration) func(ctx context.Context) (map[string]int, error) {
	if dialTimeout <= 0 {
		dialTimeout = 2 * time.Second
	}
	return func(ctx context.Context) (map[string]int, error) {
		out := map[string]int{}
		var firstErr error
		answered := 0
		for _, addr := range servers {
			st, err := adminStatus(ctx, addr, dialTimeout)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			answered++
			for _, f := range st {
				if q := f.Total - f.Running; q > 0 {
					out[f.Function] += q
				}
			}
		}
		if answered == 0 && firstErr != nil {
			return nil, firstErr
		}
		return out, nil
	}
}

func adminStatus(ctx context.Context, addr string, timeout time.Duration) ([]protocol.FunctionStatus, error) {
	addr, err := protocol.ParseServerAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("supervise: backlog: %w", err)
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("supervise: backlog: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("status\r\n")); err != nil {
		return nil, fmt.Errorf("supervise: backlog %s: %w", addr, err)
	}
	lines, err := protocol.ReadAdminList(bufio.NewReader(conn))
	if err != nil {
		return nil, fmt.Errorf("supervise: backlog %s: %w", addr, err)
	}
	st, err := protocol.ParseStatus(lines)
	if err != nil {
		return nil, fmt.Errorf("supervise: backlog %s: %w", addr, err)
	}
	return st, nil
}
