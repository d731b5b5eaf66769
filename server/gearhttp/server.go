// Package gearhttp carries Gearman jobs over HTTP for gserverd.
//
// Server speaks the wire format of gearmand 1.1.20's HTTP protocol plugin
// (gearmand -r http --http-port N; libgearman-server/plugins/protocol/
// http/protocol.cc), observed byte for byte on the Debian build:
//
//	POST /reverse HTTP/1.1              GET, PUT and HEAD create jobs too
//	Content-Length: 5                   the body is the workload (POST, PUT)
//	X-Gearman-Unique: k1                default "-": coalesce by payload
//	X-Gearman-Background: true          answer at JOB_CREATED
//	X-Gearman-Priority: high            or low; default normal
//
//	HTTP/1.0 200 OK
//	X-Gearman-Job-Handle: H:host:1
//	X-Gearman-Command: WORK_COMPLETE    JOB_CREATED (background), WORK_FAIL
//	Content-Length: 5
//	Server: gserverd/<version>          gearmand: Gearman/1.1.20+ds
//
//	olleh
//
// Every answer is HTTP/1.0 and the connection is closed after it, keep-alive
// or not (gearmand's keep-alive code is compiled out). A HEAD answer has
// no X-Gearman-Command. POST, PUT or GET with no function name get
// "HTTP/1.0 404 NOT_FOUND"; a request gearmand cannot parse (see
// readRequest) closes the connection without an answer.
//
// Where gearmand 1.1.20 has a bug, gserverd does not copy it:
//   - WORK_FAIL: gearmand cuts the last character off the handle
//     (H:host:1 becomes H:host:); the whole handle is sent;
//   - WORK_DATA: gearmand writes the data over the start of its own status
//     line and counts only the WORK_COMPLETE payload in Content-Length;
//     the body is the WORK_DATA chunks then the WORK_COMPLETE payload,
//     all counted;
//   - WORK_STATUS and WORK_WARNING: gearmand answers with the first one
//     (X-Gearman-Command: WORK_STATUS, the job still running); they are
//     skipped and the answer waits for the end of the job;
//   - HEAD: gearmand sends the result after the head; a HEAD answer has
//     no body (Content-Length still gives the result's length);
//   - HEAD / (no function): gearmand answers "X-Gearman-Job-Handle:
//     (null)"; the header is left out;
//   - an ERROR packet (unique longer than 64 bytes, queue full): gearmand
//     answers 200 with the error code as the job handle and
//     X-Gearman-Command: ERROR; the answer is 400 (ARGUMENT_TOO_LARGE, or
//     INVALID_FUNCTION_NAME for a function name with a control character)
//     or 503 (any other code) with X-Gearman-Command: ERROR and the error
//     as the body;
//   - TRACE: gearmand never answers; the connection is closed.
//
// A WORK_EXCEPTION reaches the client as WORK_FAIL, as in gearmand: the
// plugin does not turn the exceptions option on.
//
// The jobs are submitted in process (Options.Submitter, *server.Server):
// no Gearman connection is opened for them, so that they take no
// connection slot and need no TLS client when the Gearman port speaks
// TLS; they get what a SUBMIT_JOB* packet gets.
package gearhttp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/internal/backoff"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
)

// Defaults of Options.
const (
	defaultReadTimeout = time.Minute
	// maxHead bounds a request line and its headers: gearmand's receive
	// buffer (GEARMAND_RECV_BUFFER_SIZE).
	maxHead = 8192
	// writeTimeout bounds writing an answer.
	writeTimeout = 30 * time.Second
	// lingerTimeout and maxLinger bound the reading of what the client
	// still sends after the answer (unread body, pipelined requests), so
	// that closing does not reset the connection before the client read
	// the answer.
	lingerTimeout = time.Second
	maxLinger     = 1 << 20
)

// Options configure a Server.
type Options struct {
	// Logger receives the server's logs. Default: discard.
	Logger logrus.FieldLogger
	// Submitter submits the jobs: the *server.Server. Required.
	Submitter Submitter
	// Version is sent as "Server: gserverd/<Version>". Default "dev".
	Version string
	// MaxPayload is the largest request body; a larger Content-Length gets
	// 413. Default 64 MiB.
	MaxPayload int64
	// ReadTimeout bounds reading a request, head and body. Default 1 minute.
	ReadTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Logger = l
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = protocol.DefaultMaxPayload
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = defaultReadTimeout
	}
	return o
}

// Submitter is what Server needs of the job server: *server.Server's
// in-process submit.
type Submitter interface {
	Submit(ctx context.Context, req server.SubmitRequest) (server.SubmitResult, error)
}

// Server serves gearmand's HTTP protocol. Create it with New, then Serve
// one or more listeners; Shutdown or Close stops it.
type Server struct {
	opts   Options
	log    logrus.FieldLogger
	server string // the Server header's value

	// mu guards closed, listeners and conns.
	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}

	serveWG  sync.WaitGroup // one per Serve call
	connWG   sync.WaitGroup // one per connection goroutine
	quit     chan struct{}  // closed by Shutdown and Close: ends accept backoffs
	quitOnce sync.Once
}

// New returns a server; it serves nothing until Serve.
func New(opts Options) (*Server, error) {
	o := opts.withDefaults()
	if o.Submitter == nil {
		return nil, errors.New("gearhttp: Options.Submitter is required")
	}
	return &Server{
		opts:      o,
		log:       o.Logger,
		server:    "gserverd/" + o.Version,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		quit:      make(chan struct{}),
	}, nil
}

// Serve accepts connections on ln until Shutdown or Close, then returns
// ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.serveWG.Add(1)
	s.mu.Unlock()
	defer s.serveWG.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	failures := 0 // consecutive failed accepts
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("gearhttp: accept: %w", err)
			}
			// EMFILE, ECONNABORTED...: wait a little and go on.
			failures++
			wait := backoff.Policy{Min: 5 * time.Millisecond, Max: time.Second}.Delay(failures, nil)
			s.log.WithError(err).WithField("retry_in", wait).Warn("accept failed")
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		failures = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.conns[nc] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.connWG.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				_ = nc.Close()
			}()
			s.serveConn(nc)
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// stopAccepting marks the server closed and closes its listeners.
func (s *Server) stopAccepting() {
	s.mu.Lock()
	s.closed = true
	lns := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	s.mu.Unlock()
	s.quitOnce.Do(func() { close(s.quit) })
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// Shutdown stops accepting and waits for the requests in progress
// (foreground jobs included) to be answered, or ctx to end; then it closes
// what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	s.serveWG.Wait()
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = s.Close()
		<-done
		return fmt.Errorf("gearhttp: shutdown: %w", ctx.Err())
	}
}

// Close stops at once: listeners and connections are closed, waiting
// foreground requests get no answer (closing a connection ends its
// watcher, which cancels the submit). It is safe to call more than once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for nc := range s.conns {
		conns = append(conns, nc)
	}
	s.mu.Unlock()
	for _, nc := range conns {
		_ = nc.Close()
	}
	s.serveWG.Wait()
	s.connWG.Wait()
	return nil
}

// serveConn answers one request, then closes the connection.
func (s *Server) serveConn(nc net.Conn) {
	log := s.log.WithField("remote", nc.RemoteAddr().String())
	br := bufio.NewReaderSize(nc, 4096)
	_ = nc.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
	req, err := readRequest(br, maxHead)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			log.WithError(err).Debug("bad HTTP request, closing")
		}
		return
	}
	var payload []byte
	if req.contentLength > s.opts.MaxPayload {
		s.finish(nc, br, statusAnswer(s.server, 413, "Request Entity Too Large"), nil)
		return
	}
	if req.contentLength > 0 {
		// Grown as the bytes come, not allocated from Content-Length.
		payload, err = io.ReadAll(io.LimitReader(br, req.contentLength))
		if err == nil && int64(len(payload)) < req.contentLength {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			log.WithError(err).Debug("HTTP request body cut short, closing")
			return
		}
	}
	_ = nc.SetReadDeadline(time.Time{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The watcher reads (and drops) what the client sends after its
	// request: EOF, the client leaving, cancels a waiting foreground job
	// (gearmand drops it too). After the answer it drains until EOF or
	// lingerTimeout; finish waits for it. It owns the reading side of nc.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if _, err := io.CopyN(io.Discard, br, maxLinger); err != nil {
			cancel()
		}
	}()

	if req.function == "" {
		if req.method == methodHead {
			// gearmand answers with an ECHO: a bare 200.
			s.finish(nc, nil, []byte("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nServer: "+s.server+"\r\n\r\n"), watched)
			return
		}
		s.finish(nc, nil, statusAnswer(s.server, 404, "NOT_FOUND"), watched)
		return
	}
	out, err := s.opts.Submitter.Submit(ctx, server.SubmitRequest{
		Function:   req.function,
		Unique:     req.unique,
		Payload:    payload,
		Priority:   req.priority,
		Background: req.background,
	})
	var ep *protocol.ErrorPacket
	switch {
	case errors.As(err, &ep):
		code, reason := 503, "Service Unavailable"
		if ep.Code == protocol.CodeArgumentTooLarge || ep.Code == protocol.CodeInvalidFunctionName {
			code, reason = 400, "Bad Request"
		}
		s.finish(nc, nil, errorAnswer(s.server, req.method, code, reason, ep.Code+" "+ep.Text), watched)
	case errors.Is(err, server.ErrInvalidSubmit):
		// A unique with a NUL: no SUBMIT_* packet can carry it.
		s.finish(nc, nil, statusAnswer(s.server, 400, "Bad Request"), watched)
	case err != nil:
		if ctx.Err() != nil {
			// The client left, or Close closed the connection: nobody to
			// answer.
			_ = nc.Close()
			<-watched
			return
		}
		log.WithError(err).WithField("function", req.function).Warn("submit over HTTP failed")
		s.finish(nc, nil, statusAnswer(s.server, 503, "Service Unavailable"), watched)
	case req.background:
		s.finish(nc, nil, resultAnswer(s.server, req.method, out.Handle, "JOB_CREATED", nil), watched)
	case out.Failed || out.Exception != nil:
		s.finish(nc, nil, resultAnswer(s.server, req.method, out.Handle, "WORK_FAIL", nil), watched)
	default:
		s.finish(nc, nil, resultAnswer(s.server, req.method, out.Handle, "WORK_COMPLETE", out.Result), watched)
	}
}

// finish writes the answer, closes the sending side and lets the client's
// remaining bytes be read (by the watcher when watched is not nil, else
// here from br) for at most lingerTimeout before the connection is closed
// by the caller.
func (s *Server) finish(nc net.Conn, br *bufio.Reader, answer []byte, watched <-chan struct{}) {
	_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := nc.Write(answer); err != nil {
		_ = nc.Close()
		if watched != nil {
			<-watched
		}
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	if watched != nil {
		<-watched
		return
	}
	_, _ = io.CopyN(io.Discard, br, maxLinger)
}

// statusAnswer is gearmand's answer without a job: status line, Server,
// Content-Length: 0.
func statusAnswer(server string, code int, reason string) []byte {
	return []byte("HTTP/1.0 " + strconv.Itoa(code) + " " + reason + "\r\nServer: " + server + "\r\nContent-Length: 0\r\n\r\n")
}

// resultAnswer is gearmand's answer for a job: for HEAD without
// X-Gearman-Command and without the body.
func resultAnswer(server string, m method, handle, command string, body []byte) []byte {
	b := make([]byte, 0, 160+len(body))
	b = append(b, "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: "...)
	b = append(b, handle...)
	if m != methodHead {
		b = append(b, "\r\nX-Gearman-Command: "...)
		b = append(b, command...)
	}
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nServer: "...)
	b = append(b, server...)
	b = append(b, "\r\n\r\n"...)
	if m != methodHead {
		b = append(b, body...)
	}
	return b
}

// errorAnswer is the answer to an ERROR packet (gserverd's own: gearmand
// answers 200 with the code as the handle).
func errorAnswer(server string, m method, code int, reason, text string) []byte {
	b := []byte("HTTP/1.0 " + strconv.Itoa(code) + " " + reason + "\r\nX-Gearman-Command: ERROR\r\nContent-Length: " +
		strconv.Itoa(len(text)) + "\r\nServer: " + server + "\r\n\r\n")
	if m != methodHead {
		b = append(b, text...)
	}
	return b
}
