// Package client is a Gearman client: it submits background and
// foreground jobs, follows their progress, looks up job status and runs
// the servers' admin commands.
//
// One Client talks to one or more servers and is safe for concurrent use.
// Each server gets one connection, opened on first use, on which any
// number of requests are in flight at once (pipelined): replies are
// matched to requests in order, and a request whose ctx ended leaves its
// slot behind so that its late reply is read and dropped, never handed to
// a later request.
//
// Jobs with a unique id always go to the same server while it is up
// (rendezvous hashing on the unique, so coalescing works across a fleet);
// others are spread round-robin. A server that refuses connections or
// times out is skipped and retried after a backoff; a request fails only
// when no server can take it, with an error naming each server's failure.
package client

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gworkerd/gworkerd/internal/backoff"
	"github.com/gworkerd/gworkerd/protocol"
)

// Client is a Gearman client for a fixed list of servers.
//
// Lock order: server.mu and conn.mu are never held together; conn.mu is
// taken before Job.mu. Client.mu only orders reader registration against
// Close.
type Client struct {
	cfg     config
	servers []*server
	rr      atomic.Uint64
	closed  atomic.Bool

	// mu orders readers.Add after the closed check against Close's Wait.
	mu      sync.Mutex
	readers sync.WaitGroup // one per connection's reader goroutine
}

// server is one configured job server and its current connection.
type server struct {
	addr string
	idx  int

	mu       sync.Mutex
	conn     *conn         // live connection, or nil
	dialing  chan struct{} // non-nil while a goroutine dials; closed after
	failures int           // consecutive failed dials
	retryAt  time.Time     // no dial before this, unless forced
	lastErr  error
}

// New returns a Client for the given servers ("host:port", "[v6]:port";
// a missing port means protocol.DefaultPort, as protocol.ParseServerAddr
// says). An address it rejects is an error wrapping protocol.ErrBadAddr.
// No connection is opened until the first request.
func New(servers []string, opts ...Option) (*Client, error) {
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	c := &Client{cfg: defaultConfig()}
	for _, o := range opts {
		o(&c.cfg)
	}
	seen := map[string]bool{}
	for _, a := range servers {
		addr, err := protocol.ParseServerAddr(a)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		if seen[addr] {
			continue
		}
		seen[addr] = true
		c.servers = append(c.servers, &server{addr: addr, idx: len(c.servers)})
	}
	return c, nil
}

// Servers returns the server addresses, in the order given to New.
func (c *Client) Servers() []string {
	out := make([]string, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.addr
	}
	return out
}

// Close closes every connection and waits for their reader goroutines.
// Waiting requests and foreground jobs end with ErrClosed. Close may be
// called more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed.Store(true)
	c.mu.Unlock()
	for _, s := range c.servers {
		s.mu.Lock()
		cn := s.conn
		s.conn = nil
		s.mu.Unlock()
		if cn != nil {
			cn.fail(ErrClosed)
		}
	}
	c.readers.Wait()
	return nil
}

// conn returns a live connection to s, dialing if needed. Unless force is
// set, a server in backoff is not dialed and ErrBackoff is returned.
func (c *Client) conn(ctx context.Context, s *server, force bool) (*conn, error) {
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		s.mu.Lock()
		if s.conn != nil && !s.conn.dead.Load() {
			cn := s.conn
			s.mu.Unlock()
			return cn, nil
		}
		s.conn = nil
		if ch := s.dialing; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if now := c.cfg.clock.Now(); !force && now.Before(s.retryAt) {
			err := fmt.Errorf("%w until %s after: %w", ErrBackoff, s.retryAt.Format(time.RFC3339Nano), s.lastErr)
			s.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		s.dialing = ch
		s.mu.Unlock()

		cn, err := c.dial(ctx, s.addr)

		s.mu.Lock()
		s.dialing = nil
		close(ch)
		if err != nil {
			if ctx.Err() == nil {
				s.failures++
				s.lastErr = err
				s.retryAt = c.cfg.clock.Now().Add(c.backoff(s.failures))
				c.cfg.logger.WithError(err).WithField("server", s.addr).WithField("attempt", s.failures).Warn("server unreachable")
			}
			s.mu.Unlock()
			return nil, err
		}
		// failures is reset by the first answered request (ok), so a
		// server that accepts but never answers still backs off further.
		s.retryAt = time.Time{}
		if c.closed.Load() {
			s.mu.Unlock()
			cn.fail(ErrClosed)
			return nil, ErrClosed
		}
		s.conn = cn
		s.mu.Unlock()
		return cn, nil
	}
}

// ok records that s answered a request.
func (s *server) ok() {
	s.mu.Lock()
	s.failures = 0
	s.lastErr = nil
	s.mu.Unlock()
}

// markFailed puts a server that stopped answering into backoff.
func (c *Client) markFailed(addr string, err error) {
	s := c.server(addr)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	s.lastErr = err
	s.retryAt = c.cfg.clock.Now().Add(c.backoff(s.failures))
	c.cfg.logger.WithError(err).WithField("server", s.addr).WithField("attempt", s.failures).Warn("server not answering")
}

// backoff is the wait after the n-th consecutive failure of a server.
func (c *Client) backoff(failures int) time.Duration {
	return backoff.Policy{Min: c.cfg.backoffMin, Max: c.cfg.backoffMax, Jitter: backoffJitter}.Delay(failures, nil)
}

func (c *Client) dial(ctx context.Context, addr string) (*conn, error) {
	d := net.Dialer{Timeout: c.cfg.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		_ = nc.Close()
		return nil, ErrClosed
	}
	c.readers.Add(1)
	c.mu.Unlock()
	cn := newConn(addr, nc, &c.cfg, &c.readers)
	// Ask for WORK_EXCEPTION packets; the reply is read and dropped.
	var pkt []byte
	pkt = protocol.AppendPacketString(pkt, protocol.Req, protocol.OptionReq, "exceptions")
	if c.cfg.clientID != "" {
		pkt = protocol.AppendPacketString(pkt, protocol.Req, protocol.SetClientID, c.cfg.clientID)
	}
	if _, err := cn.request(pkt, protocol.OptionRes, nil); err != nil {
		return nil, err
	}
	return cn, nil
}

// order returns the servers to try, best first: by rendezvous hash on
// the key when there is one, else round-robin.
func (c *Client) order(key string) []*server {
	n := len(c.servers)
	if n == 1 {
		return c.servers
	}
	out := make([]*server, n)
	if key == "" {
		start := int(c.rr.Add(1) % uint64(n))
		for i := range n {
			out[i] = c.servers[(start+i)%n]
		}
		return out
	}
	copy(out, c.servers)
	scores := make([]uint64, n)
	for i, s := range out {
		scores[i] = score(s.addr, key)
	}
	slices.SortStableFunc(out, func(a, b *server) int {
		sa, sb := scores[a.idx], scores[b.idx]
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return out
}

// score is the rendezvous weight of a server for a key: FNV-1a over
// both, finished with a 64-bit mixer. It is stable across processes, so
// every client of a fleet picks the same server for a unique.
func score(addr, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(addr))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// ServerFor returns the server a job with this unique id goes to while
// every server is up.
func (c *Client) ServerFor(unique string) string {
	return c.order(unique)[0].addr
}

// do sends pkt to the first server in order that answers it and returns
// the reply and the server. Servers in backoff are tried last. job, when
// non-nil, is registered for the events of the created job.
func (c *Client) do(ctx context.Context, order []*server, pkt []byte, want protocol.Type, job *Job) (protocol.Packet, *server, error) {
	var errs []error
	var skipped []*server
	try := func(s *server, force bool) (protocol.Packet, bool, error) {
		cn, err := c.conn(ctx, s, force)
		if err == nil {
			var p protocol.Packet
			p, err = c.roundTrip(ctx, cn, pkt, want, job)
			if err == nil {
				s.ok()
				return p, true, nil
			}
		}
		if ctx.Err() != nil {
			return protocol.Packet{}, false, ctx.Err()
		}
		if errors.Is(err, ErrClosed) {
			return protocol.Packet{}, false, err
		}
		if !force && errors.Is(err, ErrBackoff) {
			skipped = append(skipped, s)
			return protocol.Packet{}, false, nil
		}
		errs = append(errs, &ServerError{Addr: s.addr, Err: err})
		return protocol.Packet{}, false, nil
	}
	for _, s := range order {
		p, ok, err := try(s, false)
		if err != nil {
			return p, nil, err
		}
		if ok {
			return p, s, nil
		}
	}
	// Every server that was not in backoff failed: try the others anyway.
	for _, s := range skipped {
		p, ok, err := try(s, true)
		if err != nil {
			return p, nil, err
		}
		if ok {
			return p, s, nil
		}
	}
	return protocol.Packet{}, nil, errors.Join(errs...)
}

func (c *Client) roundTrip(ctx context.Context, cn *conn, pkt []byte, want protocol.Type, job *Job) (protocol.Packet, error) {
	if job != nil {
		job.conn = cn
		job.Server = cn.addr
	}
	p, err := cn.request(pkt, want, job)
	if err != nil {
		return protocol.Packet{}, err
	}
	return c.wait(ctx, cn, p)
}

// wait waits for p's reply. On the request timeout the connection is
// failed, so every request on it moves on.
func (c *Client) wait(ctx context.Context, cn *conn, p *pending) (protocol.Packet, error) {
	var timeout <-chan time.Time
	if c.cfg.reqTimeout > 0 {
		t := time.NewTimer(c.cfg.reqTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		err := fmt.Errorf("%w (%v)", ErrTimeout, c.cfg.reqTimeout)
		cn.fail(err)
		c.markFailed(cn.addr, err)
		return protocol.Packet{}, err
	case r := <-p.ch:
		if r.err != nil {
			return protocol.Packet{}, r.err
		}
		if r.pkt.Type == protocol.Error {
			return protocol.Packet{}, protocol.ParseError(&r.pkt)
		}
		return r.pkt, nil
	case <-ctx.Done():
		cn.abandon(p)
		return protocol.Packet{}, ctx.Err()
	}
}

// Handle names a job on one server: handles are only unique per server.
type Handle struct {
	// Server is the address of the server that created the job.
	Server string `json:"server"`
	// ID is the job handle the server assigned ("H:host:42").
	ID string `json:"handle"`
}

func (h Handle) String() string { return h.ID }

func buildSubmit(fn string, payload []byte, bg bool, opts []SubmitOption) ([]byte, string, error) {
	var sc submitConfig
	sc.priority = protocol.Normal
	for _, o := range opts {
		o(&sc)
	}
	var pkt []byte
	switch {
	case !sc.runAt.IsZero():
		if !bg || sc.reducer != "" || sc.priority != protocol.Normal {
			return nil, "", fmt.Errorf("%w: RunAt needs a background job of normal priority without a reducer", ErrOptions)
		}
		pkt = protocol.AppendPacket(pkt, protocol.Req, protocol.SubmitJobEpoch,
			[]byte(fn), []byte(sc.unique), strconv.AppendInt(nil, sc.runAt.Unix(), 10), payload)
	case sc.reducer != "":
		if sc.priority != protocol.Normal {
			return nil, "", fmt.Errorf("%w: Reducer needs normal priority", ErrOptions)
		}
		t := protocol.SubmitReduceJob
		if bg {
			t = protocol.SubmitReduceJobBackground
		}
		// The fourth field (aggregator) is unused but must be present.
		pkt = protocol.AppendPacket(pkt, protocol.Req, t, []byte(fn), []byte(sc.unique), []byte(sc.reducer), nil, payload)
	default:
		if sc.priority < protocol.High || sc.priority > protocol.Low {
			return nil, "", fmt.Errorf("%w: unknown priority %d", ErrOptions, sc.priority)
		}
		t := protocol.SubmitType(sc.priority, bg)
		pkt = make([]byte, 0, protocol.HeaderSize+len(fn)+len(sc.unique)+2+len(payload))
		pkt = protocol.AppendHeader(pkt, protocol.Req, t, len(fn)+len(sc.unique)+2+len(payload))
		pkt = append(append(append(append(append(pkt, fn...), 0), sc.unique...), 0), payload...)
	}
	return pkt, sc.unique, nil
}

// SubmitBackground submits a background job and returns its handle once
// a server has accepted it.
func (c *Client) SubmitBackground(ctx context.Context, function string, payload []byte, opts ...SubmitOption) (Handle, error) {
	pkt, unique, err := buildSubmit(function, payload, true, opts)
	if err != nil {
		return Handle{}, err
	}
	p, s, err := c.do(ctx, c.order(unique), pkt, protocol.JobCreated, nil)
	if err != nil {
		return Handle{}, fmt.Errorf("client: submit %s: %w", function, err)
	}
	return Handle{Server: s.addr, ID: string(p.Arg(0))}, nil
}

// Submit submits a foreground job and returns once a server has created
// it. Read its events with Job.Next or Job.Events, or its result with
// Job.Wait. ctx bounds the submission only; pass a ctx to Wait for the
// job. RunAt cannot be used for foreground jobs.
func (c *Client) Submit(ctx context.Context, function string, payload []byte, opts ...SubmitOption) (*Job, error) {
	pkt, unique, err := buildSubmit(function, payload, false, opts)
	if err != nil {
		return nil, err
	}
	job := newJob()
	if _, _, err := c.do(ctx, c.order(unique), pkt, protocol.JobCreated, job); err != nil {
		return nil, fmt.Errorf("client: submit %s: %w", function, err)
	}
	return job, nil
}

// Request is one job of a batch.
type Request struct {
	Function string
	Payload  []byte
	Options  []SubmitOption
}

// Submitted is the outcome of one job of a batch.
type Submitted struct {
	Handle Handle
	Err    error
}

// SubmitBackgroundBatch submits background jobs pipelined: every request
// is written before any reply is awaited, so a batch costs about one
// round trip per server. A job whose server fails is resubmitted on the
// others, as SubmitBackground would. The result has one entry per
// request, in order.
func (c *Client) SubmitBackgroundBatch(ctx context.Context, reqs []Request) []Submitted {
	out := make([]Submitted, len(reqs))
	type inflight struct {
		cn *conn
		p  *pending
	}
	fl := make([]inflight, len(reqs))
	// The requests are held on their connections and written once each
	// connection has all of its share.
	var held []*conn
	for i, r := range reqs {
		pkt, unique, err := buildSubmit(r.Function, r.Payload, true, r.Options)
		if err != nil {
			out[i].Err = err
			continue
		}
		for _, s := range c.order(unique) {
			cn, err := c.conn(ctx, s, false)
			if err != nil {
				continue
			}
			p := newPending(protocol.JobCreated, nil)
			if err := cn.hold(pkt, p); err == nil {
				if !slices.Contains(held, cn) {
					held = append(held, cn)
				}
				fl[i] = inflight{cn, p}
				break
			}
		}
	}
	for _, cn := range held {
		cn.flush()
	}
	for i, f := range fl {
		if out[i].Err != nil {
			continue
		}
		if f.p != nil {
			p, err := c.wait(ctx, f.cn, f.p)
			if err == nil {
				out[i].Handle = Handle{Server: f.cn.addr, ID: string(p.Arg(0))}
				continue
			}
			if ctx.Err() != nil {
				out[i].Err = fmt.Errorf("client: submit %s: %w", reqs[i].Function, err)
				continue
			}
		}
		out[i].Handle, out[i].Err = c.SubmitBackground(ctx, reqs[i].Function, reqs[i].Payload, reqs[i].Options...)
	}
	return out
}

// Status is a job's state as the server reports it.
type Status struct {
	// Handle is the job handle (GET_STATUS) or the unique id
	// (GET_STATUS_UNIQUE) the server answered for.
	Handle string `json:"handle"`
	// Server is the server that answered.
	Server string `json:"server"`
	// Known is true while the job exists on the server.
	Known bool `json:"known"`
	// Running is true while a worker holds the job.
	Running bool `json:"running"`
	// Numerator and Denominator are the worker's last WORK_STATUS.
	Numerator   int `json:"numerator"`
	Denominator int `json:"denominator"`
	// Clients is the number of foreground clients waiting for the job
	// (StatusUnique only).
	Clients int `json:"clients,omitempty"`
}

func parseStatus(p protocol.Packet, addr string) (Status, error) {
	want := 5
	if p.Type == protocol.StatusResUnique {
		want = 6
	}
	if len(p.Args) != want {
		return Status{}, fmt.Errorf("%w: %s with %d fields", ErrProtocol, p.Type, len(p.Args))
	}
	n := make([]int, want-1)
	for i := range n {
		v, err := strconv.Atoi(string(p.Args[i+1]))
		if err != nil {
			return Status{}, fmt.Errorf("%w: %s field %d: %q", ErrProtocol, p.Type, i+1, p.Args[i+1])
		}
		n[i] = v
	}
	st := Status{Handle: string(p.Args[0]), Server: addr, Known: n[0] != 0, Running: n[1] != 0, Numerator: n[2], Denominator: n[3]}
	if want == 6 {
		st.Clients = n[4]
	}
	return st, nil
}

// Status asks the server that created h about the job. A Handle with no
// Server is looked up on every server; the first that knows it answers
// (or, when none does, the first that replied). Handles are only unique
// per server, so that lookup is ambiguous when several servers run:
// keep the Server that SubmitBackground returned.
func (c *Client) Status(ctx context.Context, h Handle) (Status, error) {
	pkt := protocol.AppendPacketString(nil, protocol.Req, protocol.GetStatus, h.ID)
	if h.Server != "" {
		s := c.server(h.Server)
		if s == nil {
			return Status{}, fmt.Errorf("client: status %s: %w: %s", h.ID, ErrUnknownServer, h.Server)
		}
		p, _, err := c.do(ctx, []*server{s}, pkt, protocol.StatusRes, nil)
		if err != nil {
			return Status{}, fmt.Errorf("client: status %s: %w", h.ID, err)
		}
		return parseStatus(p, s.addr)
	}
	var first *Status
	var errs []error
	for _, s := range c.servers {
		p, _, err := c.do(ctx, []*server{s}, pkt, protocol.StatusRes, nil)
		if err != nil {
			if ctx.Err() != nil {
				return Status{}, fmt.Errorf("client: status %s: %w", h.ID, ctx.Err())
			}
			errs = append(errs, err)
			continue
		}
		st, err := parseStatus(p, s.addr)
		if err != nil {
			errs = append(errs, &ServerError{Addr: s.addr, Err: err})
			continue
		}
		if st.Known {
			return st, nil
		}
		if first == nil {
			first = &st
		}
	}
	if first != nil {
		return *first, nil
	}
	return Status{}, fmt.Errorf("client: status %s: %w", h.ID, errors.Join(errs...))
}

// StatusUnique asks about the job with this unique id (any function). It
// asks the server the unique hashes to, falling back like a submit.
func (c *Client) StatusUnique(ctx context.Context, unique string) (Status, error) {
	pkt := protocol.AppendPacketString(nil, protocol.Req, protocol.GetStatusUnique, unique)
	p, s, err := c.do(ctx, c.order(unique), pkt, protocol.StatusResUnique, nil)
	if err != nil {
		return Status{}, fmt.Errorf("client: status of unique %q: %w", unique, err)
	}
	return parseStatus(p, s.addr)
}

// Echo sends data to a server (round-robin, with failover) and returns
// what it echoed and which server answered.
func (c *Client) Echo(ctx context.Context, data []byte) ([]byte, string, error) {
	pkt := protocol.AppendPacket(nil, protocol.Req, protocol.EchoReq, data)
	p, s, err := c.do(ctx, c.order(""), pkt, protocol.EchoRes, nil)
	if err != nil {
		return nil, "", fmt.Errorf("client: echo: %w", err)
	}
	return p.Arg(0), s.addr, nil
}

// EchoServer is Echo against one server, without failover. It ignores
// backoff, so it tells whether that server answers now.
func (c *Client) EchoServer(ctx context.Context, addr string, data []byte) ([]byte, error) {
	s := c.server(protocol.ServerAddr(addr))
	if s == nil {
		return nil, fmt.Errorf("client: echo: %w: %s", ErrUnknownServer, addr)
	}
	cn, err := c.conn(ctx, s, true)
	if err != nil {
		return nil, fmt.Errorf("client: echo: %w", &ServerError{Addr: s.addr, Err: err})
	}
	p, err := c.roundTrip(ctx, cn, protocol.AppendPacket(nil, protocol.Req, protocol.EchoReq, data), protocol.EchoRes, nil)
	if err != nil {
		return nil, fmt.Errorf("client: echo: %w", &ServerError{Addr: s.addr, Err: err})
	}
	return p.Arg(0), nil
}

func (c *Client) server(addr string) *server {
	for _, s := range c.servers {
		if s.addr == addr {
			return s
		}
	}
	return nil
}
