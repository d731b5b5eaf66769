package client

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/gworkerd/gworkerd/protocol"
)

// Admin runs the admin text commands (gearadmin's features) against one
// server. Each call uses its own short connection, so admin calls never
// queue behind jobs. An Admin is safe for concurrent use.
type Admin struct {
	addr string
	cfg  *config
}

// Admin returns the admin interface of one server; addr may be any
// address (it need not be one of the Client's servers). An empty addr
// means the Client's first server.
func (c *Client) Admin(addr string) *Admin {
	if addr == "" {
		addr = c.servers[0].addr
	}
	return &Admin{addr: protocol.ServerAddr(addr), cfg: &c.cfg}
}

// Addr returns the server address.
func (a *Admin) Addr() string { return a.addr }

// run sends one command line and reads its reply with read.
func (a *Admin) run(ctx context.Context, line string, read func(*bufio.Reader) error) error {
	d := net.Dialer{Timeout: a.cfg.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", a.addr)
	if err != nil {
		return fmt.Errorf("client: admin %s: %w", firstWord(line), &ServerError{Addr: a.addr, Err: err})
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	// CRLF: gearmand drops the last character of `create function x\n`.
	if _, err = nc.Write([]byte(line + "\r\n")); err == nil {
		err = read(bufio.NewReader(nc))
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("client: admin %s: %w", firstWord(line), &ServerError{Addr: a.addr, Err: err})
	}
	return nil
}

func firstWord(line string) string {
	w, _, _ := strings.Cut(line, " ")
	return w
}

func (a *Admin) list(ctx context.Context, line string) ([]string, error) {
	var lines []string
	err := a.run(ctx, line, func(r *bufio.Reader) (err error) {
		lines, err = protocol.ReadAdminList(r)
		return err
	})
	return lines, err
}

func (a *Admin) ok(ctx context.Context, line string) (string, error) {
	var s string
	err := a.run(ctx, line, func(r *bufio.Reader) (err error) {
		s, err = protocol.ReadAdminLine(r)
		return err
	})
	return s, err
}

// Status runs `status`: per function, jobs total and running, workers.
func (a *Admin) Status(ctx context.Context) ([]protocol.FunctionStatus, error) {
	lines, err := a.list(ctx, "status")
	if err != nil {
		return nil, err
	}
	return protocol.ParseStatus(lines)
}

// Workers runs `workers`: one entry per connection.
func (a *Admin) Workers(ctx context.Context) ([]protocol.WorkerInfo, error) {
	lines, err := a.list(ctx, "workers")
	if err != nil {
		return nil, err
	}
	return protocol.ParseWorkers(lines)
}

// PriorityStatus runs `prioritystatus`: queued jobs per priority.
func (a *Admin) PriorityStatus(ctx context.Context) ([]protocol.PriorityStatus, error) {
	lines, err := a.list(ctx, "prioritystatus")
	if err != nil {
		return nil, err
	}
	return protocol.ParsePriorityStatus(lines)
}

// Jobs runs `show jobs`.
func (a *Admin) Jobs(ctx context.Context) ([]protocol.JobInfo, error) {
	lines, err := a.list(ctx, "show jobs")
	if err != nil {
		return nil, err
	}
	return protocol.ParseJobs(lines)
}

// UniqueJobs runs `show unique jobs`: the unique of every job (an empty
// string for jobs without one).
func (a *Admin) UniqueJobs(ctx context.Context) ([]string, error) {
	return a.list(ctx, "show unique jobs")
}

// CancelJob runs `cancel job HANDLE`. An unknown job gives an
// *protocol.AdminError with Code "UNKNOWN_JOB".
func (a *Admin) CancelJob(ctx context.Context, handle string) error {
	_, err := a.ok(ctx, "cancel job "+handle)
	return err
}

// CreateFunction runs `create function NAME`.
func (a *Admin) CreateFunction(ctx context.Context, name string) error {
	_, err := a.ok(ctx, "create function "+name)
	return err
}

// DropFunction runs `drop function NAME`.
func (a *Admin) DropFunction(ctx context.Context, name string) error {
	_, err := a.ok(ctx, "drop function "+name)
	return err
}

// MaxQueue runs `maxqueue FUNCTION [SIZE | HIGH NORMAL LOW]`: one size
// limits every priority, three limit high, normal and low; 0 = no limit.
func (a *Admin) MaxQueue(ctx context.Context, function string, sizes ...int) error {
	if len(sizes) != 1 && len(sizes) != 3 {
		return fmt.Errorf("client: admin maxqueue: want 1 or 3 sizes, got %d", len(sizes))
	}
	line := "maxqueue " + function
	for _, n := range sizes {
		line += " " + strconv.Itoa(n)
	}
	_, err := a.ok(ctx, line)
	return err
}

// PID runs `getpid`.
func (a *Admin) PID(ctx context.Context) (int, error) {
	s, err := a.ok(ctx, "getpid")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("client: admin getpid: %w: %q", protocol.ErrAdminReply, s)
	}
	return n, nil
}

// Version runs `version`.
func (a *Admin) Version(ctx context.Context) (string, error) {
	return a.ok(ctx, "version")
}

// Verbose runs `verbose`: the server's log level.
func (a *Admin) Verbose(ctx context.Context) (string, error) {
	return a.ok(ctx, "verbose")
}
