package server

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// TestSlowClientDoesNotStallOthers: a client that never reads its
// replies fills its socket buffers; other clients and workers go on, and
// the slow connection is dropped once its output passes MaxOutBuffer.
func TestSlowClientDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) {
		o.MaxOutBuffer = 4 << 20
		o.WriteTimeout = time.Second
	})
	slow := ts.dial(t)
	// A worker whose results go to the slow client too.
	shared := ts.dial(t)
	hs := shared.submit(protocol.SubmitJob, "slow-fn", "shared", "x")
	slow.send(protocol.SubmitJob, "slow-fn", "shared", "x")
	w := ts.worker(t, "slow-fn")
	w.grab()

	// The slow client pipelines big ECHOs and never reads.
	big := strings.Repeat("z", 256<<10)
	pkt := protocol.AppendPacketString(nil, protocol.Req, protocol.EchoReq, big)
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for range 64 { // 16 MiB of echoes in all
			select {
			case <-stop:
				return
			default:
			}
			_ = slow.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := slow.nc.Write(pkt); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); _ = slow.nc.Close(); <-sent }()

	// Others are served meanwhile, including WORK_DATA fan-out to the
	// slow client.
	other := ts.dial(t)
	for i := range 200 {
		w.send(protocol.WorkData, hs, strings.Repeat("d", 16<<10))
		shared.expectType(protocol.WorkData)
		if i%20 == 0 {
			other.send(protocol.EchoReq, "ping")
			other.expect(protocol.EchoRes, "ping")
		}
	}
	w.send(protocol.WorkComplete, hs, "done")
	shared.expect(protocol.WorkComplete, hs, "done")
	// The slow connection is dropped once over its output limit.
	waitFor(t, "slow connection dropped", func() bool { return ts.Stats().Connections == 3 })
}

// TestTenThousandIdleConnections holds 10,000 idle connections and checks
// the server still answers. The server runs in a child process built
// from this package without -race (the race detector allows only 8128
// goroutines, and both ends in one process would need 20,000 descriptors).
func TestTenThousandIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	const n = 10000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(n + 200); lim.Cur < need {
		if lim.Max < need {
			t.Fatalf("RLIMIT_NOFILE hard limit %d < %d: cannot hold %d connections", lim.Max, need, n)
		}
		old := lim
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	bin := filepath.Join(t.TempDir(), "idleserver")
	build := exec.Command("go", "build", "-o", bin, "./testdata/idleserver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build idleserver: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("idleserver address: %v", err)
	}
	addr = strings.TrimSpace(addr)
	ts := &testServer{addr: addr}

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// Every connection is registered: `workers` lists n+1 lines.
	admin := ts.dial(t)
	waitFor(t, "connections registered", func() bool {
		return strings.Count(admin.admin("workers"), "\n") == n+2
	})
	// A few idle connections still answer.
	for _, i := range []int{0, n / 2, n - 1} {
		tc := &tconn{t: t, nc: conns[i], br: bufio.NewReader(conns[i])}
		tc.sync()
	}
	if rss := childRSS(cmd.Process.Pid); rss > 0 {
		t.Logf("server RSS with %d idle connections: %d MiB (%d bytes per connection)", n, rss>>20, rss/n)
	}
}

// childRSS returns the resident set size of a process, or 0.
func childRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
