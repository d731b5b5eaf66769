//go:build linux

package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// deadHelperEnv makes TestSweep the helper process that makes a lab and
// is SIGKILLed.
const deadHelperEnv = "GWORKERD_NETLAB_DEAD_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(deadHelperEnv) != "" {
		os.Exit(m.Run()) // killed by its parent: no leak check
	}
	os.Exit(testpeer.Main(m, "gserverd"))
}

// gearmanPort is where the tests' gserverd listens on its host: a fixed
// port is fine in a namespace of its own.
const gearmanPort = "4730"

// startGserverd runs gserverd on h, listening on h's address, and waits
// until from reaches it.
func startGserverd(t *testing.T, h, from *Host) string {
	t.Helper()
	cmd := h.Command(context.Background(), testpeer.Binary(t, "gserverd"), "-p", gearmanPort, "-L", h.IP(), "--log-file", "stderr")
	cmd.Env = append(os.Environ(), "GSERVERD_DATA_DIR="+t.TempDir())
	p := testpeer.Start(t, cmd)
	addr := net.JoinHostPort(h.IP(), gearmanPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := from.Dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			_ = c.Close()
			return addr
		}
		select {
		case <-p.Done():
			t.Fatalf("gserverd on %s exited: %s", h.Name(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gserverd on %s not reachable from %s at %s within 30s: %v\n%s", h.Name(), from.Name(), addr, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond) // polling a server that is not ours to signal
	}
}

// admin sends one admin text command on c and returns its reply: one line,
// or for the listing commands the lines up to ".".
func admin(c net.Conn, r *bufio.Reader, cmd string, bound time.Duration) (string, error) {
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	return readReply(c, r, cmd, bound)
}

func readReply(c net.Conn, r *bufio.Reader, cmd string, bound time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(bound))
	var out strings.Builder
	for {
		line, err := r.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			return out.String(), err
		}
		if cmd == "version" || line == ".\n" {
			return out.String(), nil
		}
	}
}

// TestHosts runs gserverd on host a and reaches it from host b with the C
// gearadmin and with Go code, and from the test's own namespace; checks
// that b's sockets really are b's (the server sees b's address) and that a
// Listen on b is reached from a (and sees a's address), and
// that Command's process is the program itself, in the host's namespace.
func TestHosts(t *testing.T) {
	t.Parallel()
	gearadmin := testpeer.Require(t, "gearadmin")
	lab := New(t)
	a, b := lab.Host("a"), lab.Host("b")
	if a.IP() == b.IP() {
		t.Fatalf("hosts a and b share the address %s", a.IP())
	}
	addr := startGserverd(t, a, b)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := b.Command(ctx, gearadmin, "--server-version", "-h", a.IP(), "-p", gearmanPort).Output()
	if err != nil {
		t.Fatalf("gearadmin --server-version on b: %v", err)
	}
	c, err := b.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	ver, err := admin(c, r, "version", 30*time.Second)
	if err != nil {
		t.Fatalf("version from b over Go's Dial: %q, %v", ver, err)
	}
	if got, want := strings.TrimSpace(string(out)), strings.TrimPrefix(strings.TrimSpace(ver), "OK "); got != want || got == "" {
		t.Errorf("gearadmin on b says version %q, the admin command from b's Dial %q", got, want)
	}
	workers, err := admin(c, r, "workers", 30*time.Second)
	if err != nil {
		t.Fatalf("workers: %q, %v", workers, err)
	}
	if !strings.Contains(workers, " "+b.IP()+" ") {
		t.Errorf("gserverd on a lists its connections as %q, want one from b's address %s", workers, b.IP())
	}

	// The test process itself, in the root namespace, reaches the hosts too.
	rc, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatalf("dial a's gserverd from the test's own namespace: %v", err)
	}
	defer rc.Close()
	if v, err := admin(rc, bufio.NewReader(rc), "version", 30*time.Second); err != nil || v != ver {
		t.Errorf("version from the test's own namespace: %q, %v; want %q", v, err, ver)
	}

	ln, err := b.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	peer := make(chan string, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer sc.Close()
		peer <- sc.RemoteAddr().(*net.TCPAddr).IP.String()
	}()
	ac, err := a.Dial(ctx, "tcp", net.JoinHostPort(b.IP(), port))
	if err != nil {
		t.Fatalf("dial from a to b's listener: %v", err)
	}
	defer ac.Close()
	if got := <-peer; got != a.IP() {
		t.Errorf("b's listener accepted a connection from %q, want a's address %s", got, a.IP())
	}

	sh := b.Command(ctx, "sh", "-c", "echo $$; cat /sys/class/net/eth0/address")
	var stdout strings.Builder
	sh.Stdout = &stdout
	if err := sh.Run(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d\n%s\n", sh.Process.Pid, b.mac)
	if stdout.String() != want {
		t.Errorf("a shell on b says (pid, eth0's address) %q, want %q: ip netns exec must exec the program in b's namespace", stdout.String(), want)
	}
}

// TestCut cuts host a off: established connections to it (gserverd's and
// a Go pair, both ways) get neither data nor an error, new connections to
// and from it time out; after Heal the held data arrives and new
// connections work.
func TestCut(t *testing.T) {
	t.Parallel()
	lab := New(t)
	a, b := lab.Host("a"), lab.Host("b")
	gearman := startGserverd(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	gc, err := b.Dial(ctx, "tcp", gearman)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	gr := bufio.NewReader(gc)
	if v, err := admin(gc, gr, "version", 30*time.Second); err != nil {
		t.Fatalf("version before the cut: %q, %v", v, err)
	}
	ln, err := a.Listen("tcp", net.JoinHostPort(a.IP(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- sc
	}()
	bc, err := b.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	ac, ok := <-accepted
	if !ok {
		t.Fatal("a's listener failed to accept b's connection")
	}
	defer ac.Close()
	if err := exchange(ac, bc, "before", 30*time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}

	a.Cut()
	// Each end sends while cut; no end may read anything, nor an error,
	// for the whole wait: reads time out.
	if _, err := io.WriteString(gc, "version\n"); err != nil {
		t.Fatalf("write to gserverd on a while cut: %v", err)
	}
	for _, c := range []net.Conn{ac, bc} {
		if _, err := io.WriteString(c, "during"); err != nil {
			t.Fatalf("write while cut: %v", err)
		}
	}
	// Meanwhile new connections, both ways, time out.
	dials := []struct {
		from *Host
		to   string
	}{{b, gearman}, {a, net.JoinHostPort(b.IP(), "1")}, {a, net.JoinHostPort(lab.addr(1).String(), "1")}}
	quiet := make(chan error, 3+len(dials))
	for _, c := range []net.Conn{gc, ac, bc} {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(make([]byte, 1))
			if timedOut(err) {
				quiet <- nil
				return
			}
			quiet <- fmt.Errorf("%s -> %s while cut: read %d bytes, %v; want nothing until the read deadline", c.RemoteAddr(), c.LocalAddr(), n, err)
		}()
	}
	for _, d := range dials {
		go func() {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second) // longer than ARP takes to give up (3 s)
			defer dcancel()
			c, err := d.from.Dial(dctx, "tcp", d.to)
			if err == nil {
				_ = c.Close()
			}
			if timedOut(err) {
				quiet <- nil
				return
			}
			quiet <- fmt.Errorf("dial from %s to %s while a is cut: %v, want a timeout (no reset, no unreachable)", d.from.Name(), d.to, err)
		}()
	}
	for range cap(quiet) {
		if err := <-quiet; err != nil {
			t.Error(err)
		}
	}

	a.Heal()
	// What was sent during the cut arrives as TCP retransmits it.
	if v, err := readReply(gc, gr, "version", time.Minute); err != nil || !strings.HasPrefix(v, "OK ") {
		t.Errorf("gserverd's reply to the version sent while cut, after Heal: %q, %v", v, err)
	}
	for _, c := range []net.Conn{ac, bc} {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, len("during"))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
			t.Errorf("after Heal, %s -> %s: %q, %v, want what was sent during the cut", c.RemoteAddr(), c.LocalAddr(), buf, err)
		}
	}
	if err := exchange(ac, bc, "after", 30*time.Second); err != nil {
		t.Errorf("after Heal: %v", err)
	}
	c, err := b.Dial(ctx, "tcp", gearman)
	if err != nil {
		t.Fatalf("new connection after Heal: %v", err)
	}
	defer c.Close()
	if v, err := admin(c, bufio.NewReader(c), "version", 30*time.Second); err != nil {
		t.Errorf("version on a new connection after Heal: %q, %v", v, err)
	}
}

// timedOut reports whether err is a timeout, and not another error.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange sends msg each way between x and y and checks both arrive.
func exchange(x, y net.Conn, msg string, bound time.Duration) error {
	for _, p := range [][2]net.Conn{{x, y}, {y, x}} {
		if _, err := io.WriteString(p[0], msg); err != nil {
			return err
		}
		_ = p[1].SetReadDeadline(time.Now().Add(bound))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(p[1], buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("got %q, want %q", buf, msg)
		}
	}
	return nil
}

// TestExpose: psql on a host reaches the PostgreSQL of the test machine,
// which listens on loopback only, through Expose.
func TestExpose(t *testing.T) {
	t.Parallel()
	storetest.RequireTCP(t, "PostgreSQL", "127.0.0.1:5432")
	psql, err := exec.LookPath("psql")
	if err != nil {
		testpeer.Missing(t, "psql", "postgresql-client")
	}
	lab := New(t)
	b := lab.Host("b")
	addr := lab.Expose("127.0.0.1:5432")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := b.Command(ctx, psql, "-h", host, "-p", port, "-U", "postgres", "-d", "test", "-At", "-c", "select 1")
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=30")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("psql on b via %s: %q, %v; want 1", addr, out, err)
	}
}

// labObjects lists what exists of lab id: namespaces, links, lock file.
func labObjects(t *testing.T, id string) []string {
	t.Helper()
	var found []string
	for _, dir := range []string{netnsDir, sysNet, lockDir} {
		names, err := owned(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			found = append(found, filepath.Join(dir, n))
		}
	}
	return found
}

// exited reports whether process pid has exited (a zombie counts: its
// parent may not reap it).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

func waitExited(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !exited(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still running after 30s", what, pid)
			return
		}
		time.Sleep(10 * time.Millisecond) // polling a process that is not ours to wait for
	}
}

// TestCleanup: once the test that made a lab is over, nothing of it is
// left: no namespace, link or lock file, the process it left running on a
// host is killed, the forwarder is closed.
func TestCleanup(t *testing.T) {
	t.Parallel()
	var id, exposed string
	var sleeper *exec.Cmd
	waited := make(chan error, 1)
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		id = lab.id
		a := lab.Host("a")
		lab.Host("b")
		exposed = lab.Expose(testpeer.DeadAddr(t))
		sleeper = a.Command(context.Background(), "sleep", "600")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { waited <- sleeper.Wait() }()
		if objs := labObjects(t, id); len(objs) != 6 {
			t.Errorf("lab %s has %v, want 2 namespaces, a bridge, 2 veths and a lock file", id, objs)
		}
	})
	if objs := labObjects(t, id); len(objs) != 0 {
		t.Errorf("after its test, lab %s left %v", id, objs)
	}
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("the process left running on a host ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(30 * time.Second):
		_ = sleeper.Process.Kill()
		<-waited
		t.Error("the process left running on a host was not killed at cleanup")
	}
	if c, err := net.DialTimeout("tcp", exposed, 5*time.Second); err == nil {
		_ = c.Close()
		t.Errorf("the forwarder at %s still accepts after cleanup", exposed)
	}
}

// TestSweep: a test process SIGKILLed with a lab leaves it behind; the
// next New removes it, killing what still runs on its hosts. The process
// started with Command's default Pdeathsig dies with the test process
// already. TestSweep is also the helper process that is killed.
func TestSweep(t *testing.T) {
	if os.Getenv(deadHelperEnv) != "" {
		lab := New(t)
		a := lab.Host("a")
		lab.Host("b")
		var pids []int
		for _, pdeathsig := range []bool{true, false} {
			cmd := a.Command(context.Background(), "sleep", "600")
			if !pdeathsig {
				cmd.SysProcAttr = nil
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, cmd.Process.Pid)
		}
		// Until it execs sleep, the process is ip, which may not have
		// entered the namespace yet: a sweep could not find it there.
		for _, pid := range pids {
			deadline := time.Now().Add(30 * time.Second)
			for {
				comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				if err != nil || string(comm) == "sleep\n" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("process %d still %q after 30s", pid, comm)
				}
				time.Sleep(5 * time.Millisecond) // polling a process that does not signal it
			}
		}
		fmt.Printf("lab %s %d %d\n", lab.id, pids[0], pids[1])
		_, _ = io.Copy(io.Discard, os.Stdin) // until killed
		t.Fatal("the helper was not killed")
	}
	// Not parallel: the other tests' New would sweep the dead lab too.
	cmd := exec.Command(os.Args[0], "-test.run=^TestSweep$", "-test.v")
	cmd.Env = append(os.Environ(), deadHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	var withDeathSig, without int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "lab %s %d %d", &id, &withDeathSig, &without); err == nil {
			break
		}
		t.Logf("helper: %s", sc.Text())
	}
	if id == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the helper did not make its lab")
	}
	_ = cmd.Process.Kill()
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	_ = cmd.Wait()
	waitExited(t, withDeathSig, "the helper's child with Pdeathsig")

	New(t)
	// This New removes it, or a New of another test process that is
	// removing it right now (it holds the dead lab's lock meanwhile).
	deadline := time.Now().Add(30 * time.Second)
	for objs := labObjects(t, id); len(objs) != 0; objs = labObjects(t, id) {
		if time.Now().After(deadline) {
			t.Errorf("30s after New, the dead process's lab %s left %v", id, objs)
			break
		}
		time.Sleep(10 * time.Millisecond) // polling another process's sweep
	}
	waitExited(t, without, "the helper's child without Pdeathsig, in its lab's host")
}

func TestIDOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		id   string
		ok   bool
	}{
		{"gwl0a1f", "0a1f", true},
		{"gwl0a1fh12", "0a1f", true},
		{"gwl0a1f-db-1", "0a1f", true},
		{"gwl0a1f.probe", "0a1f", true},
		{"gwl0a1fx", "", false},
		{"gwl0A1f", "", false},
		{"gwl0a1", "", false},
		{"eth0", "", false},
		{"gw0a1f", "", false},
	} {
		id, ok := idOf(c.name)
		if id != c.id || ok != c.ok {
			t.Errorf("idOf(%q) = %q, %v; want %q, %v", c.name, id, ok, c.id, c.ok)
		}
	}
}
