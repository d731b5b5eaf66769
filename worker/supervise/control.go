package supervise

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Request is one command on the control socket (one JSON line).
type Request struct {
	// Cmd is status, start, stop, restart, scale or reload.
	Cmd      string `json:"cmd"`
	Function string `json:"function,omitempty"`
	N        int    `json:"n,omitempty"`
}

// Response answers a Request (one JSON line).
type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Pid    int     `json:"pid,omitempty"`
	Status *Status `json:"status,omitempty"`
	// Warnings are what an accepted command has to report (a reload's
	// skipped handler files), one line each.
	Warnings []string `json:"warnings,omitempty"`
}

// ControlServer serves the control socket for a Supervisor.
type ControlServer struct {
	// Supervisor answers the commands. Required.
	Supervisor *Supervisor
	// Reload handles the reload command (re-read the config); its
	// warnings reach the caller in Response.Warnings. Optional.
	Reload func(ctx context.Context) (warnings []string, err error)
	// Logger defaults to the supervisor's.
	Logger logrus.FieldLogger

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// ListenControl creates the unix socket at path with mode 0600, replacing
// a stale socket file.
func ListenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("supervise: control socket %s is in use", path)
	}
	_ = os.Remove(path)
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("supervise: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("supervise: control socket: %w", err)
	}
	return ln, nil
}

// Serve answers connections on ln until Close. It returns nil after
// Close.
func (cs *ControlServer) Serve(ln net.Listener) error {
	cs.mu.Lock()
	cs.ln = ln
	cs.conns = map[net.Conn]struct{}{}
	cs.mu.Unlock()
	log := cs.Logger
	if log == nil {
		log = cs.Supervisor.log
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			cs.wg.Wait()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("supervise: control accept: %w", err)
		}
		cs.mu.Lock()
		cs.conns[conn] = struct{}{}
		cs.mu.Unlock()
		cs.wg.Add(1)
		go func() {
			defer cs.wg.Done()
			defer func() {
				cs.mu.Lock()
				delete(cs.conns, conn)
				cs.mu.Unlock()
				conn.Close()
			}()
			cs.handle(conn, log)
		}()
	}
}

// Close stops Serve and closes the open connections.
func (cs *ControlServer) Close() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.ln == nil {
		return nil
	}
	err := cs.ln.Close()
	for c := range cs.conns {
		c.Close()
	}
	return err
}

func (cs *ControlServer) handle(conn net.Conn, log logrus.FieldLogger) {
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 1024), 64<<10)
	enc := json.NewEncoder(conn)
	for sc.Scan() {
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "bad request: " + err.Error()
		} else {
			resp = cs.do(req)
		}
		log.WithFields(logrus.Fields{"cmd": req.Cmd, "function": req.Function, "ok": resp.OK}).Debug("control command")
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func (cs *ControlServer) do(req Request) Response {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := cs.Supervisor
	var err error
	resp := Response{Pid: os.Getpid()}
	switch req.Cmd {
	case "status":
		var st Status
		st, err = s.Status(ctx)
		resp.Status = &st
	case "start":
		err = s.StartFunction(ctx, req.Function)
	case "stop":
		err = s.StopFunction(ctx, req.Function)
	case "restart":
		err = s.RestartFunction(ctx, req.Function)
	case "scale":
		err = s.Scale(ctx, req.Function, req.N)
	case "reload":
		if cs.Reload == nil {
			err = errors.New("reload is not available")
		} else {
			resp.Warnings, err = cs.Reload(ctx)
		}
	default:
		err = fmt.Errorf("unknown command %q (want status, start, stop, restart, scale, reload)", req.Cmd)
	}
	if err != nil {
		resp.Error = err.Error()
		resp.Status, resp.Warnings = nil, nil
		return resp
	}
	resp.OK = true
	return resp
}

// Call sends one request to the control socket at path.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, &SocketError{Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, &SocketError{Err: err}
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		return Response{}, &SocketError{Err: err}
	}
	if !resp.OK {
		return resp, &RemoteError{Cmd: req.Cmd, Msg: strings.TrimPrefix(resp.Error, "supervise: ")}
	}
	return resp, nil
}

// SocketError is a failure to reach the control socket or to exchange a
// request on it (no answer came): the daemon may not have seen the
// request.
type SocketError struct {
	Err error
}

func (e *SocketError) Error() string { return "supervise: control socket: " + e.Err.Error() }
func (e *SocketError) Unwrap() error { return e.Err }

// RemoteError is a command the daemon answered with an error.
type RemoteError struct {
	// Cmd is the command (scale, reload, ...).
	Cmd string
	// Msg is the daemon's error, without a "supervise: " prefix.
	Msg string
}

func (e *RemoteError) Error() string { return "supervise: " + e.Cmd + ": " + e.Msg }
