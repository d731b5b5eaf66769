//go:build linux

// Package netlab gives tests simulated hosts: each Host is a Linux network
// namespace with its own address on a private bridge, so that one machine
// can run servers, workers and clients "on different hosts", and a test
// can cut a host off the network (its packets dropped, not reset) while
// its processes keep running. It is made for the fleet test (gserverd
// servers on several hosts sharing one database); a service of the test
// machine that listens on loopback only, such as PostgreSQL, is made
// reachable from the hosts with Expose.
//
// It is test support: import it from _test.go files only. A lab needs
// root and iproute2's ip; New skips the test, with a line naming why,
// where network namespaces cannot be made. Everything a lab makes is named
// gwl<id>... and removed at the test's cleanup, and a lab left behind by a
// test process that died (SIGKILL) is removed by the next New, on any
// test process.
package netlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// opTimeout bounds each step of making or removing a lab or a host: the
// ip commands run quickly, this is only a guard against a hang.
const opTimeout = 2 * time.Minute

// maxHosts is how many hosts a lab's /24 holds after its bridge (.1).
const maxHosts = 253

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Lab is a private network of simulated hosts: a bridge in the test's own
// (root) namespace, at .1 of a /24 of 10.0.0.0/8 that no other lab uses,
// and the hosts on it at .2, .3, ... in the order they were made. Hosts
// reach each other and the bridge's address (see Expose), nothing else;
// the test process itself reaches every host at its IP, through the
// bridge.
// Neighbours (ARP) are static, so that a cut host is silent: no "host
// unreachable" comes back either.
type Lab struct {
	tb   testing.TB
	ip   string   // path of the ip program
	id   string   // 4 hex digits: in every name, and the subnet 10.<id>.0/24
	net  [3]byte  // the subnet's first three bytes
	lock *os.File // the id's lock, held until cleanup has removed everything

	mu    sync.Mutex // guards hosts and cmds
	hosts []*Host
	cmds  []*exec.Cmd // made by Host.Command: killed at cleanup if started
}

// New makes a lab and registers its removal at tb's cleanup: namespaces,
// links and forwarders, and any process still running in its hosts is
// killed (SIGKILL). It first removes the labs of test processes that died.
// It skips the test, with a line naming why, when not root, when ip is
// missing (under GWORKERD_REQUIRE_PEERS=1 that fails it instead), or when
// the kernel refuses a namespace or a bridge. Call it from the test's
// goroutine.
func New(tb testing.TB) *Lab {
	tb.Helper()
	if euid := os.Geteuid(); euid != 0 {
		tb.Skipf("SKIP: netlab: simulated hosts need root to make network namespaces (euid %d)", euid)
	}
	ip := lookIP()
	if ip == "" {
		testpeer.Missing(tb, "ip", "iproute2")
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		tb.Skipf("SKIP: netlab: cannot keep lab locks: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	removed, err := sweep(ctx, ip)
	for _, name := range removed {
		tb.Logf("netlab: removed %s, left by a test process that died", name)
	}
	if err != nil {
		tb.Errorf("netlab: removing the labs of dead test processes: %v", err)
	}
	l, err := claim(ctx, ip)
	if err != nil {
		tb.Fatal(err)
	}
	l.tb = tb
	tb.Cleanup(l.close)
	probe := labName(l.id) + ".probe"
	if err := run(ctx, ip, "", "netns", "add", probe); err != nil {
		tb.Skipf("SKIP: netlab: the kernel refused a network namespace: %v", err)
	}
	if err := run(ctx, ip, "", "netns", "del", probe); err != nil {
		tb.Fatal(err)
	}
	bridge := fmt.Sprintf("link add %s address %s type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0\n",
		labName(l.id), l.mac(1))
	if err := run(ctx, ip, bridge, "-batch", "-"); err != nil {
		tb.Skipf("SKIP: netlab: the kernel refused a bridge: %v", err)
	}
	up := fmt.Sprintf("addr add %s/24 dev %s\nlink set %s up\n", l.addr(1), labName(l.id), labName(l.id))
	if err := run(ctx, ip, up, "-batch", "-"); err != nil {
		tb.Fatal(err)
	}
	return l
}

// lookIP finds the ip program, also in the sbin directories a non-root
// PATH lacks.
func lookIP() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// claim picks an unused lab id, one whose subnet no route of the machine
// overlaps, and takes its lock.
func claim(ctx context.Context, ip string) (*Lab, error) {
	used, err := routes(ctx, ip)
	if err != nil {
		return nil, err
	}
	for range 1000 {
		n := rand.N(1 << 16)
		sub := [3]byte{10, byte(n >> 8), byte(n)}
		pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{sub[0], sub[1], sub[2], 0}), 24)
		if overlaps(pfx, used) {
			continue
		}
		id := fmt.Sprintf("%04x", n)
		f, err := own(id, true)
		if err != nil {
			return nil, err
		}
		if f == nil {
			continue
		}
		// Objects of a dead lab that had this id, not swept yet: ours now.
		if err := remove(ctx, ip, id); err != nil {
			release(f)
			return nil, err
		}
		if _, err := fmt.Fprintf(f, "%d\n", os.Getpid()); err != nil { // for people looking
			release(f)
			return nil, fmt.Errorf("netlab: lock: %w", err)
		}
		return &Lab{ip: ip, id: id, net: sub, lock: f}, nil
	}
	return nil, errors.New("netlab: no free lab id after 1000 tries")
}

// routes lists the IPv4 destinations of the main routing table, but the
// default route.
func routes(ctx context.Context, ip string) ([]netip.Prefix, error) {
	out, err := output(ctx, ip, "-4", "-o", "route", "show", "table", "main")
	if err != nil {
		return nil, err
	}
	var pfxs []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains([]string{"unicast", "unreachable", "blackhole", "prohibit", "throw"}, f[0]) {
			f = f[1:]
		}
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			pfxs = append(pfxs, p)
		}
	}
	return pfxs, nil
}

func overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// addr is the lab's address number n: 1 the bridge, 2... the hosts.
func (l *Lab) addr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{l.net[0], l.net[1], l.net[2], byte(n)})
}

// mac is the hardware address that goes with addr(n): a locally
// administered one, fixed so that neighbours can be static.
func (l *Lab) mac(n int) string {
	return fmt.Sprintf("02:67:77:%02x:%02x:%02x", l.net[1], l.net[2], n)
}

// close kills the processes started with Command, removes everything of
// the lab, killing what else runs in its hosts, then gives up its id.
func (l *Lab) close() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// By the Cmd, not only by namespace: a process just started may still
	// be ip, before it entered the host's namespace.
	l.mu.Lock()
	for _, cmd := range l.cmds {
		if cmd.Process != nil {
			_ = cmd.Process.Kill() // an exited one, waited for or not, is no error
		}
	}
	l.mu.Unlock()
	if err := remove(ctx, l.ip, l.id); err != nil {
		l.tb.Errorf("netlab: cleanup: %v", err)
	}
	release(l.lock)
}

// Host makes a host called name (lower-case letters, digits and '-', at
// most 32 bytes, unique in the lab): a network namespace with lo up and an
// eth0 linked to the lab's bridge, with the next address of the subnet
// and a default route via the bridge. It fails the test if it cannot; call
// it from the test's goroutine.
func (l *Lab) Host(name string) *Host {
	l.tb.Helper()
	if !hostName.MatchString(name) {
		l.tb.Fatalf("netlab: host name %q: want lower-case letters, digits and '-', at most 32 bytes", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.name == name {
			l.tb.Fatalf("netlab: host %q made twice", name)
		}
	}
	n := len(l.hosts) + 1
	if n > maxHosts {
		l.tb.Fatalf("netlab: host %q: a lab holds %d hosts", name, maxHosts)
	}
	h := &Host{
		lab: l, name: name, ns: labName(l.id) + "-" + name,
		veth: fmt.Sprintf("%sh%d", labName(l.id), n),
		addr: l.addr(n + 1), mac: l.mac(n + 1),
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := l.makeHost(ctx, h); err != nil {
		l.tb.Fatalf("netlab: host %q: %v", name, err)
	}
	l.hosts = append(l.hosts, h)
	return h
}

// makeHost makes h's namespace and link and tells every neighbour about
// it; l.mu is held.
func (l *Lab) makeHost(ctx context.Context, h *Host) error {
	if err := run(ctx, l.ip, "", "netns", "add", h.ns); err != nil {
		return err
	}
	br := labName(l.id)
	root := fmt.Sprintf("link add %s type veth peer name eth0 address %s netns %s\n", h.veth, h.mac, h.ns) +
		fmt.Sprintf("link set %s master %s\nlink set %s up\n", h.veth, br, h.veth) +
		fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent\n", h.addr, h.mac, br)
	if err := run(ctx, l.ip, root, "-batch", "-"); err != nil {
		return err
	}
	var inside strings.Builder
	fmt.Fprintf(&inside, "link set lo up\nlink set eth0 up\naddr add %s/24 dev eth0\n", h.addr)
	fmt.Fprintf(&inside, "neigh replace %s lladdr %s dev eth0 nud permanent\n", l.addr(1), l.mac(1))
	fmt.Fprintf(&inside, "route add default via %s dev eth0\n", l.addr(1))
	for _, o := range l.hosts {
		fmt.Fprintf(&inside, "neigh replace %s lladdr %s dev eth0 nud permanent\n", o.addr, o.mac)
	}
	if err := run(ctx, l.ip, inside.String(), "-n", h.ns, "-batch", "-"); err != nil {
		return err
	}
	for _, o := range l.hosts {
		if err := run(ctx, l.ip, "", "-n", o.ns, "neigh", "replace", h.addr.String(), "lladdr", h.mac, "dev", "eth0", "nud", "permanent"); err != nil {
			return err
		}
	}
	return h.waitLinked(ctx)
}

// Expose makes target, a TCP service of the test machine (say PostgreSQL
// on 127.0.0.1:5432, which listens on loopback only), reachable from the
// lab's hosts: a forwarder listens on the bridge's address, on a port the
// kernel chooses, and Expose returns that "ip:port" for the hosts to
// dial. The forwarder stops at cleanup. A cut host cannot reach it.
func (l *Lab) Expose(target string) string {
	l.tb.Helper()
	p, err := tcpproxy.Listen(net.JoinHostPort(l.addr(1).String(), "0"), target)
	if err != nil {
		l.tb.Fatalf("netlab: expose %s: %v", target, err)
	}
	l.tb.Cleanup(p.Close)
	return p.Addr()
}

// nsPath is where ip netns keeps namespace ns.
func nsPath(ns string) string { return filepath.Join(netnsDir, ns) }
