package serverd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestBindAddrs(t *testing.T) {
	t.Parallel()
	r := fakeResolver{
		"localhost": {netip.MustParseAddr("127.0.0.1")},
		"both":      {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1"), netip.MustParseAddr("::ffff:10.0.0.2")},
		"l6":        {netip.MustParseAddr("::1")},
	}
	tests := []struct {
		hosts   []string
		want    []bindAddr
		wantErr string
	}{
		{nil, []bindAddr{{host: ""}}, ""},
		{[]string{"*"}, []bindAddr{{host: ""}}, ""},
		{[]string{"localhost"}, []bindAddr{{host: "127.0.0.1"}, {host: "::1", implicit: true}}, ""},
		{[]string{"LOCALHOST."}, []bindAddr{{host: "127.0.0.1", implicit: true}, {host: "::1", implicit: true}}, ""},
		{[]string{"both"}, []bindAddr{{host: "10.0.0.1"}, {host: "fd00::1"}, {host: "10.0.0.2"}}, ""},
		{[]string{"127.0.0.1", "[::1]", "::1", "127.0.0.1"}, []bindAddr{{host: "127.0.0.1"}, {host: "::1"}}, ""},
		{[]string{"l6", "localhost"}, []bindAddr{{host: "::1"}, {host: "127.0.0.1"}}, ""},
		{[]string{"nowhere.invalid"}, nil, "--listen nowhere.invalid: lookup nowhere.invalid: no such host"},
	}
	for _, tt := range tests {
		got, err := bindAddrs(context.Background(), r, tt.hosts)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("bindAddrs(%q) error %v, want %q", tt.hosts, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("bindAddrs(%q) = %+v, %v; want %+v", tt.hosts, got, err, tt.want)
		}
	}
}

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(&bytes.Buffer{})
	return l
}

// sockopt reads an int socket option of the accepted side of a connection.
func sockopt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// TestListenKeepalive: --keepalive* apply to accepted sockets; without
// --keepalive they have none (as gearmand; Go's default would enable it).
func TestListenKeepalive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		cfg                    config.Server
		on                     bool
		idle, interval, probes int // 0: not checked
	}{
		{name: "off", cfg: config.Server{KeepaliveIdle: -1, KeepaliveInterval: -1, KeepaliveCount: -1}},
		{name: "tuned", cfg: config.Server{Keepalive: true, KeepaliveIdle: 42, KeepaliveInterval: 7, KeepaliveCount: 3}, on: true, idle: 42, interval: 7, probes: 3},
		{name: "system values", cfg: config.Server{Keepalive: true, KeepaliveIdle: -1, KeepaliveInterval: 9, KeepaliveCount: -1}, on: true, interval: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lns, err := listenAll(context.Background(), listenConfig(&tt.cfg), []bindAddr{{host: "127.0.0.1"}}, 0, discardLogger())
			if err != nil {
				t.Fatal(err)
			}
			defer lns[0].Close()
			c, err := net.Dial("tcp", lns[0].Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := lns[0].Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := sockopt(t, s, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 0; got != tt.on {
				t.Errorf("SO_KEEPALIVE = %v, want %v", got, tt.on)
			}
			for _, o := range []struct {
				name string
				opt  int
				want int
			}{{"TCP_KEEPIDLE", syscall.TCP_KEEPIDLE, tt.idle}, {"TCP_KEEPINTVL", syscall.TCP_KEEPINTVL, tt.interval}, {"TCP_KEEPCNT", syscall.TCP_KEEPCNT, tt.probes}} {
				if o.want == 0 {
					continue
				}
				if got := sockopt(t, s, syscall.IPPROTO_TCP, o.opt); got != o.want {
					t.Errorf("%s = %d, want %d", o.name, got, o.want)
				}
			}
		})
	}
}

func TestListenAllFailureClosesAll(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	addrs := []bindAddr{{host: "127.0.0.2"}, {host: "127.0.0.1"}}
	if _, err := listenAll(context.Background(), net.ListenConfig{}, addrs, port, discardLogger()); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("listenAll on a busy port: %v, want EADDRINUSE", err)
	}
	// 127.0.0.2 was bound first, then released.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("127.0.0.2 not released after the failure: %v", err)
	}
	ln.Close()
}

// fakeServer records how waitStop drives the server.
type fakeServer struct {
	mu        sync.Mutex
	calls     []string
	shutdown  chan struct{} // Shutdown blocks until closed or ctx ends
	deadlines []bool
}

func (f *fakeServer) Shutdown(ctx context.Context) error {
	_, has := ctx.Deadline()
	f.mu.Lock()
	f.calls = append(f.calls, "shutdown")
	f.deadlines = append(f.deadlines, has)
	f.mu.Unlock()
	select {
	case <-f.shutdown:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeServer) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "close")
	return nil
}

func (f *fakeServer) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type fakeLog struct {
	mu      sync.Mutex
	reopens int
	fail    bool
}

func (f *fakeLog) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reopens++
	if f.fail {
		return errors.New("disk gone")
	}
	return nil
}

func TestWaitStop(t *testing.T) {
	t.Parallel()
	type step struct {
		sig    os.Signal
		admin  *bool
		serve  error
		cancel bool // ctx ends
	}
	yes, no := true, false
	tests := []struct {
		name       string
		steps      []step
		finishJobs bool // running jobs finish (Shutdown returns)
		wantCalls  []string
		wantDead   []bool // per Shutdown call: had a deadline
		wantErr    bool
		reopens    int
	}{
		{name: "TERM", steps: []step{{sig: syscall.SIGTERM}}, finishJobs: true, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{true}},
		{name: "INT with jobs that do not finish", steps: []step{{sig: syscall.SIGINT}}, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{true}},
		{name: "USR1", steps: []step{{sig: syscall.SIGUSR1}}, finishJobs: true, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{false}},
		{name: "USR1 then TERM", steps: []step{{sig: syscall.SIGUSR1}, {sig: syscall.SIGTERM}}, wantCalls: []string{"shutdown", "shutdown", "close"}, wantDead: []bool{false, true}},
		{name: "HUP twice then TERM", steps: []step{{sig: syscall.SIGHUP}, {sig: syscall.SIGHUP}, {sig: syscall.SIGTERM}}, finishJobs: true, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{true}, reopens: 2},
		{name: "admin shutdown", steps: []step{{admin: &no}}, finishJobs: true, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{true}},
		{name: "admin shutdown graceful", steps: []step{{admin: &yes}}, finishJobs: true, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{false}},
		{name: "context end", steps: []step{{cancel: true}}, finishJobs: true, wantCalls: []string{"shutdown", "close"}, wantDead: []bool{true}},
		{name: "serve error", steps: []step{{serve: errors.New("accept: too many open files")}}, wantCalls: []string{"close"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &fakeServer{shutdown: make(chan struct{})}
			if tt.finishJobs {
				close(srv.shutdown)
			}
			sigs := make(chan os.Signal, len(tt.steps))
			admin := make(chan bool, 1)
			serveErr := make(chan error, 1)
			lg := &fakeLog{}
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { done <- waitStop(ctx, srv, sigs, admin, serveErr, 1, lg, discardLogger()) }()
			for _, s := range tt.steps {
				switch {
				case s.cancel:
					cancel()
				case s.sig != nil:
					sigs <- s.sig
				case s.admin != nil:
					admin <- *s.admin
				default:
					serveErr <- s.serve
				}
			}
			select {
			case err := <-done:
				if (err != nil) != tt.wantErr {
					t.Errorf("waitStop error %v, want error: %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("waitStop did not return")
			}
			if got := srv.log(); !reflect.DeepEqual(got, tt.wantCalls) {
				t.Errorf("calls %q, want %q", got, tt.wantCalls)
			}
			if tt.wantDead != nil && !reflect.DeepEqual(srv.deadlines, tt.wantDead) {
				t.Errorf("Shutdown deadlines %v, want %v", srv.deadlines, tt.wantDead)
			}
			if lg.reopens != tt.reopens {
				t.Errorf("reopens %d, want %d", lg.reopens, tt.reopens)
			}
		})
	}
}

func TestNewLoggerFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ format, want string }{{"json", `"msg":"hello"`}, {"text", `msg=hello`}} {
		var buf bytes.Buffer
		l := newLogger(&config.Server{LogFormat: tt.format, Verbose: "INFO"}, &buf)
		l.WithField("conn_id", 7).Info("hello")
		l.Debug("hidden")
		if !strings.Contains(buf.String(), tt.want) || !strings.Contains(buf.String(), "conn_id") || strings.Contains(buf.String(), "hidden") {
			t.Errorf("%s log %q", tt.format, buf.String())
		}
	}
}

func TestPidFileLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.pid")
	pf, err := lockPidFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file holds %q, want our pid", b)
	}
	_, err = lockPidFile(path)
	want := "pid file " + path + " is locked by running process " + strconv.Itoa(os.Getpid()) + " (is gserverd already running?)"
	if err == nil || err.Error() != want {
		t.Errorf("second lock: %v, want %q", err, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the failed lock removed the pid file: %v", err)
	}
	if err := pf.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pid file left after Remove: %v", err)
	}
}

func TestLookupUser(t *testing.T) {
	t.Parallel()
	src := config.Source{Kind: config.SourceFlag, Name: "--user"}
	if _, err := lookupUser("root", 1000, src); err == nil || err.Error() != `flag --user: switching to user "root" needs root (running as uid 1000)` {
		t.Errorf("non-root: %v", err)
	}
	if _, err := lookupUser("no-such-user-gserverd", 0, src); err == nil || !strings.HasPrefix(err.Error(), "flag --user: ") {
		t.Errorf("unknown user: %v", err)
	}
	c, err := lookupUser("root", 0, src)
	if err != nil || c.UID != 0 || c.GID != 0 {
		t.Errorf("root: %+v, %v", c, err)
	}
}

// TestPidFileMissingDir: as gearmand, a pid file in a missing directory
// fails the start instead of creating the directory.
func TestPidFileMissingDir(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "x.pid")
	pf, err := lockPidFile(path)
	if err == nil {
		pf.Remove()
		t.Fatal("pid file in a missing directory locked")
	}
	if want := "pid file: open " + path + ": no such file or directory"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory was created: %v", err)
	}
}
