package serverd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
)

// resolver is what listenAll needs of *net.Resolver.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// bindAddr is one address to bind; implicit is set for the loopback
// addresses added for "localhost", which are skipped (with a warning)
// when the machine lacks that address family.
type bindAddr struct {
	host     string // "" for all addresses
	implicit bool
}

// listenConfig returns how listeners are made: keepalive on accepted
// connections as gearmand's --keepalive* flags say (off without
// --keepalive, unlike Go's default). -b/--backlog has no effect: Go's
// listen uses the system's net.core.somaxconn.
func listenConfig(cfg *config.Server) net.ListenConfig {
	if !cfg.Keepalive {
		return net.ListenConfig{KeepAlive: -1}
	}
	secs := func(n int) time.Duration {
		if n < 0 {
			return -1 // keep the system's value
		}
		return time.Duration(n) * time.Second
	}
	return net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable:   true,
		Idle:     secs(cfg.KeepaliveIdle),
		Interval: secs(cfg.KeepaliveInterval),
		Count:    cfg.KeepaliveCount,
	}}
}

// isLocalhost reports whether host is "localhost" or under ".localhost",
// which RFC 6761 reserves for loopback.
func isLocalhost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// bindAddrs resolves the -L hosts to the addresses to bind: every address
// each host resolves to, and for localhost always 127.0.0.1 and ::1 (the
// hosts file often maps localhost to 127.0.0.1 only). No host means all
// addresses (one dual-stack listener).
func bindAddrs(ctx context.Context, r resolver, hosts []string) ([]bindAddr, error) {
	if len(hosts) == 0 {
		return []bindAddr{{host: ""}}, nil
	}
	var out []bindAddr
	seen := map[string]bool{}
	add := func(a string, implicit bool) {
		if !seen[a] {
			seen[a] = true
			out = append(out, bindAddr{host: a, implicit: implicit})
		}
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "*" {
			h = "" // all addresses
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			add(ip.String(), false)
			continue
		}
		if h == "" {
			add("", false)
			continue
		}
		ips, err := r.LookupNetIP(ctx, "ip", h)
		if err != nil && !isLocalhost(h) {
			return nil, fmt.Errorf("--listen %s: %w", h, err)
		}
		for _, ip := range ips {
			add(ip.Unmap().String(), false)
		}
		if isLocalhost(h) {
			add("127.0.0.1", true)
			add("::1", true)
		}
	}
	return out, nil
}

// listenAll binds every address; on any failure it closes what it bound.
func listenAll(ctx context.Context, lc net.ListenConfig, addrs []bindAddr, port int, log logrus.FieldLogger) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range addrs {
		addr := net.JoinHostPort(a.host, strconv.Itoa(port))
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			if a.implicit && unavailable(err) {
				log.WithField("addr", addr).Warn("address family not available, not listening there")
				continue
			}
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("cannot listen: %w", err)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, errors.New("no address to listen on")
	}
	return lns, nil
}

func unavailable(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT)
}
