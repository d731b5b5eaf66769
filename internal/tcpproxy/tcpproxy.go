// Package tcpproxy is a TCP proxy for fault tests: its connections can
// be cut (a database that goes away and comes back) or stalled (one that
// stops answering: packets dropped, not reset). The store tests and
// gchaos use it on loopback; netlab listens on its bridge with it, to
// make a loopback service reachable from its simulated hosts.
package tcpproxy

import (
	"bytes"
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

	mu      sync.Mutex // guards the fields below
	resumed *sync.Cond // signalled when stalled, stalledPairs or closed changes
	down    bool
	stalled bool
	closed  bool
	held    int // copiers holding bytes back while stalled
	conns   map[net.Conn]struct{}
	// trigger, when set, stalls the next connection on which the client
	// sends it (StallOn); stalledPairs are the connections so stalled.
	trigger      []byte
	stalledPairs map[*pair]struct{}

	wg sync.WaitGroup // the accept loop and the copiers
}

// New starts a proxy to target on 127.0.0.1; Close stops it.
func New(target string) (*Proxy, error) { return Listen("127.0.0.1:0", target) }

// Listen starts a proxy to target that listens on addr (host:port, port 0
// for one the kernel chooses); Close stops it.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, stalledPairs: map[*pair]struct{}{}}
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

// StallOn stalls one connection, the next on which the client sends a
// chunk of bytes containing pattern, as Stall does but for that
// connection only: that chunk and everything after it, both ways, is held
// back until Resume, while the other connections, and new ones, carry on.
// It is a network path that goes silent in the middle of one statement,
// after the database's client has sent it. A pattern split across two
// reads is not seen.
func (p *Proxy) StallOn(pattern []byte) {
	p.mu.Lock()
	p.trigger = append([]byte(nil), pattern...)
	p.mu.Unlock()
}

// Resume ends a Stall, and the stall of the connections StallOn stalled;
// a StallOn that has not met its pattern is cancelled.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.trigger = nil
	clear(p.stalledPairs)
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

// pair is one proxied connection: the client's socket and the target's.
// (Not an empty struct: pointers to those may all be equal.)
type pair struct{ client net.Conn }

// pass waits while the proxy, or the connection pr, is stalled; chunk is
// what the copier read, fromClient its direction. It reports false once
// the proxy is closed.
func (p *Proxy) pass(pr *pair, chunk []byte, fromClient bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fromClient && p.trigger != nil && bytes.Contains(chunk, p.trigger) {
		p.trigger = nil
		p.stalledPairs[pr] = struct{}{}
	}
	stalled := func() bool {
		_, ok := p.stalledPairs[pr]
		return (p.stalled || ok) && !p.closed
	}
	if stalled() {
		p.held++
		for stalled() {
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
		pr := &pair{client: c}
		p.wg.Add(2)
		go p.pipe(pr, up, c, true)
		go p.pipe(pr, c, up, false)
	}
}

// pipe copies src to dst; while the proxy is stalled it holds what it
// read and reads no more.
func (p *Proxy) pipe(pr *pair, dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass(pr, buf[:n], fromClient) {
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
