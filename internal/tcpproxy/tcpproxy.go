// Package tcpproxy is a loopback TCP proxy for fault tests: its
// connections can be cut (a database that goes away and comes back) or
// stalled (one that stops answering: packets dropped, not reset). The
// store tests and gchaos use it.
package tcpproxy

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Proxy is a loopback TCP proxy whose connections a test can cut, to
// simulate a database that goes away and comes back, or stall, to
// simulate one that stops answering (packets dropped, not reset).
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex // guards down, stalled, closed and conns
	resumed *sync.Cond // signalled when stalled or closed changes
	down    bool
	stalled bool
	closed  bool
	held    int // copiers holding bytes back while stalled
	conns   map[net.Conn]struct{}

	wg sync.WaitGroup // the accept loop and the copiers
}

// New starts a proxy to target on 127.0.0.1; Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.resumed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Stall stops forwarding bytes in both directions, on the open
// connections and on those accepted meanwhile, while keeping every socket
// open: to both ends the peer has gone silent, as when a network drops
// packets. Resume forwards what was held back.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Resume ends a Stall.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.resumed.Broadcast()
	p.mu.Unlock()
}

// Held reports how many connections, one way, have bytes held back by
// the stall: a peer has sent something that the other end will not get
// until Resume.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// pass waits while the proxy is stalled; it reports false once the proxy
// is closed.
func (p *Proxy) pass() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled && !p.closed {
		p.held++
		for p.stalled && !p.closed {
			p.resumed.Wait()
		}
		p.held--
	}
	return !p.closed
}

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.resumed.Broadcast()
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil || !p.track(up) {
			if up != nil {
				_ = up.Close()
			}
			p.untrack(c)
			_ = c.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst; while the proxy is stalled it holds what it
// read and reads no more.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	p.untrack(dst)
	p.untrack(src)
}
