//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Host is a simulated host of a Lab: a network namespace whose eth0 is
// linked to the lab's bridge. Its methods may be called from any
// goroutine, but Cut and Heal, which fail the test as t.Fatal does.
type Host struct {
	lab  *Lab
	name string
	ns   string // the namespace, for ip netns
	veth string // the link's end on the bridge, in the root namespace
	addr netip.Addr
	mac  string
}

// Name is the name the host was made with.
func (h *Host) Name() string { return h.name }

// IP is the host's address on the lab's network.
func (h *Host) IP() string { return h.addr.String() }

// Namespace is the host's network namespace, as ip netns names it (for
// looking at it by hand: ip netns exec <namespace> ss -tn).
func (h *Host) Namespace() string { return h.ns }

// Command is exec.CommandContext for a program that runs on the host:
// "ip netns exec <namespace> name args...". ip execs the program in
// place, so the Cmd's Process is the program itself (a SIGKILL to it, or
// ctx's cancellation, hits it). name is looked up in the test's PATH. The
// program gets SIGKILL if the test process dies (SysProcAttr.Pdeathsig; a
// caller that sets SysProcAttr itself decides). At cleanup, the Cmd's
// process is killed (SIGKILL) if it was started, and so is any other
// process still running in the host. Start it from the test's goroutine,
// or one the test waits for.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if p, err := exec.LookPath(name); err == nil {
		name = p
	}
	cmd := exec.CommandContext(ctx, h.lab.ip, append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.lab.mu.Lock()
	h.lab.cmds = append(h.lab.cmds, cmd)
	h.lab.mu.Unlock()
	return cmd
}

// Dial connects from the host: the socket is made in the host's namespace
// by the test process itself, so Go test code can be a client living on
// the host. network is tcp or udp (with 4 or 6); addr's host must be an
// IP address (no name is resolved on the host).
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := literal(network, addr, false); err != nil {
		return nil, fmt.Errorf("netlab: dial from %s: %w", h.name, err)
	}
	var c net.Conn
	err := h.inside(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		if c != nil {
			_ = c.Close()
		}
		return nil, fmt.Errorf("netlab: dial from %s: %w", h.name, err)
	}
	return c, nil
}

// Listen listens on the host: the socket is made in the host's namespace
// by the test process itself (":0" listens on all of the host's addresses,
// on a port the kernel chooses). network is tcp or tcp4/6; addr's host,
// if any, must be an IP address.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	if err := literal(network, addr, true); err != nil {
		return nil, fmt.Errorf("netlab: listen on %s: %w", h.name, err)
	}
	var ln net.Listener
	err := h.inside(func() error {
		var lc net.ListenConfig
		var err error
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, fmt.Errorf("netlab: listen on %s: %w", h.name, err)
	}
	return ln, nil
}

// literal checks that addr needs no name resolution: resolving could run
// on other goroutines, whose threads are not in the host's namespace.
func literal(network, addr string, listen bool) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "udp", "udp4", "udp6":
		if listen {
			return fmt.Errorf("network %q: Listen is for tcp", network)
		}
	default:
		return fmt.Errorf("network %q: want tcp or udp", network)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" && listen {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("address %q: the host must be an IP address", addr)
	}
	return nil
}

// inside runs fn on an OS thread that is in the host's namespace for the
// time of fn; sockets fn makes belong to the namespace for good. The
// thread is its own goroutine's: should it fail to return to the test's
// namespace, it stays locked and ends with that goroutine, never running
// other code in the wrong namespace.
func (h *Host) inside(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- h.enter(fn) }()
	return <-done
}

func (h *Host) enter(fn func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own namespace: %w", err)
	}
	defer unix.Close(self)
	target, err := unix.Open(nsPath(h.ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open namespace %s: %w", h.ns, err)
	}
	err = unix.Setns(target, unix.CLONE_NEWNET)
	_ = unix.Close(target)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", h.ns, err)
	}
	ferr := fn()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Still locked: the thread exits with this goroutine.
		return errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", h.ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Cut takes the host off the network, as a cable pulled at the switch:
// its link's end on the bridge goes down, so every packet to or from the
// host is dropped, with no reset and no "unreachable" either way (the
// neighbours are static). Its processes keep running, and its open
// connections stall; a new connection to or from it times out. Heal
// restores the link.
func (h *Host) Cut() {
	h.lab.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := run(ctx, h.lab.ip, "", "link", "set", h.veth, "down"); err != nil {
		h.lab.tb.Fatalf("netlab: cut %s: %v", h.name, err)
	}
}

// Heal puts a cut host back on the network and returns once packets flow
// again (the bridge forwards to it and its eth0 is running). Connections
// that stalled resume as TCP retransmits.
func (h *Host) Heal() {
	h.lab.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := run(ctx, h.lab.ip, "", "link", "set", h.veth, "up"); err != nil {
		h.lab.tb.Fatalf("netlab: heal %s: %v", h.name, err)
	}
	if err := h.waitLinked(ctx); err != nil {
		h.lab.tb.Fatalf("netlab: heal %s: %v", h.name, err)
	}
}

// waitLinked waits until the bridge forwards to the host's link and the
// host's eth0 is running: both follow an up link a moment later.
func (h *Host) waitLinked(ctx context.Context) error {
	state := filepath.Join(sysNet, h.veth, "brport", "state")
	for {
		b, err := os.ReadFile(state)
		forwarding := err == nil && strings.TrimSpace(string(b)) == "3" // BR_STATE_FORWARDING
		running := false
		if forwarding {
			if err := h.inside(func() error {
				ifc, err := net.InterfaceByName("eth0")
				if err != nil {
					return err
				}
				running = ifc.Flags&net.FlagRunning != 0
				return nil
			}); err != nil {
				return err
			}
		}
		if forwarding && running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("link %s not forwarding (state %q, %v) or eth0 not running: %w", h.veth, b, err, ctx.Err())
		case <-time.After(5 * time.Millisecond): // polling the kernel, which does not signal it
		}
	}
}
