package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	_ "image/jpeg" // the resized outputs
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// TestMakeRun runs deploy/run.sh (what `make run` starts) with the built
// binaries on a free port: it waits for the lines it prints, runs the
// resize and wordcount commands it suggests, checks the resized images,
// the admin status and both dashboards, then presses Ctrl-C (SIGINT to
// the process group) and checks that every process it started is gone.
func TestMakeRun(t *testing.T) {
	t.Parallel()
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, name := range []string{"gserverd", "gworkerd", "gclient"} {
		if err := os.Symlink(testpeer.Binary(t, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	port := freePortRun(t)
	runDir := t.TempDir()
	cmd := exec.Command("sh", "deploy/run.sh", bin)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GWORKERD_RUN_PORT="+strconv.Itoa(port), "GWORKERD_RUN_DIR="+runDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	})

	// The message, up to the line that says how to stop.
	var msg []string
	deadline := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("run.sh ended early; printed %q; stderr:\n%s", msg, stderr.String())
			}
			msg = append(msg, l)
			done = strings.Contains(l, "Ctrl-C stops everything")
		case <-deadline:
			t.Fatalf("run.sh printed %q in 60s; stderr:\n%s", msg, stderr.String())
		}
	}
	go func() { // keep draining what gworkerd logs to stdout
		for range lines {
		}
	}()
	suggested := func(contains string) string {
		for _, l := range msg {
			if strings.Contains(l, contains) {
				c, _, _ := strings.Cut(l, "#")
				return strings.TrimSpace(c)
			}
		}
		t.Fatalf("run.sh suggests no %q command:\n%s", contains, strings.Join(msg, "\n"))
		return ""
	}
	shell := func(line string) string {
		t.Helper()
		c := exec.Command("sh", "-c", line)
		c.Dir = root
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		done := make(chan error, 1)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\n%s%s", line, err, out.String(), errOut.String())
			}
		case <-time.After(60 * time.Second):
			_ = c.Process.Kill()
			<-done
			t.Fatalf("%s: no answer in 60s (gworkerd serving?)\nrun.sh stderr:\n%s", line, stderr.String())
		}
		return out.String()
	}

	// The foreground resize returns JSON naming real, resized images.
	out := shell(suggested("submit resize")) // the first one is the background submit
	if !strings.HasPrefix(strings.TrimSpace(out), "H:") {
		t.Errorf("background submit printed %q, want a job handle", out)
	}
	out = shell(suggested("photo.json --wait"))
	var res struct {
		Files []struct {
			Path   string `json:"path"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Files) != 2 {
		t.Fatalf("resize result %q: %v, want two files", out, err)
	}
	for _, f := range res.Files {
		fh, err := os.Open(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := image.DecodeConfig(fh)
		fh.Close()
		if err != nil || cfg.Width != f.Width || cfg.Height != f.Height || !strings.HasPrefix(f.Path, filepath.Join(runDir, "out")) {
			t.Errorf("%s: %dx%d (%v), result says %dx%d under %s/out", f.Path, cfg.Width, cfg.Height, err, f.Width, f.Height, runDir)
		}
	}
	if got := []int{res.Files[0].Width, res.Files[1].Width}; got[0] != 320 || got[1] != 100 {
		t.Errorf("widths %v, want [320 100]", got)
	}
	if out := shell(suggested("submit wordcount")); !strings.Contains(out, "words=2") {
		t.Errorf("wordcount printed %q, want words=2", out)
	}
	if out := shell(suggested("submit strrev")); out != "PHP ,olleH" {
		t.Errorf("strrev (job_strrev.php, resident PHP) printed %q, want %q", out, "PHP ,olleH")
	}
	if out := shell(suggested("admin status")); !strings.Contains(out, "resize") {
		t.Errorf("admin status printed %q, want the resize function", out)
	}
	for _, p := range []int{port + 1, port + 2} {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p) + "/")
		if err != nil {
			t.Fatalf("dashboard on %d: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("<html")) {
			t.Errorf("dashboard on %d: %s %.80q", p, resp.Status, body)
		}
	}

	poisonDropped(t, "127.0.0.1:"+strconv.Itoa(port), "http://127.0.0.1:"+strconv.Itoa(port+1))

	// Ctrl-C: the terminal sends SIGINT to the whole foreground group.
	if err := syscall.Kill(-pgid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		// Ctrl-C is how make run is meant to end: not an error, so
		// that make does not print "*** Error 1".
		if err != nil {
			t.Errorf("run.sh after Ctrl-C: %v, want exit status 0; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run.sh still running 60s after Ctrl-C; stderr:\n%s", stderr.String())
	}
	gone := time.Now().Add(10 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(gone) {
			t.Fatalf("processes of run.sh's group still alive 10s after it exited")
		}
		time.Sleep(50 * time.Millisecond) // polling the kernel for the group's end
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group check: %v", err)
	}
}

// freePortRun returns a loopback port p such that p, p+1 and p+2 are
// free now (run.sh puts the dashboards on the next two ports).
func freePortRun(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := testpeer.FreePort(t)
		ok := true
		for _, q := range []int{p + 1, p + 2} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no three consecutive free ports")
	return 0
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// poisonDropped checks that make run's gserverd gives up on a job that
// times out again and again (issue 10, item 16): stuck workers take it
// under CAN_DO_TIMEOUT and never answer; after a finite number of runs
// the client gets WORK_FAIL and the server counts the job as dropped.
func poisonDropped(t *testing.T, addr, api string) {
	t.Helper()
	var assigned atomic.Int32 // runs of the job
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	done := make(chan struct{})
	defer func() { // the workers end when their connections do
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		closed = true
		mu.Unlock()
		<-done
	}()
	// Each stuck worker sleeps (PRE_SLEEP) until the server wakes it for
	// the job, takes it and holds it without answering; then the next
	// one waits for the job to come back. (A worker that holds a job must
	// not PRE_SLEEP: that stops the server's timer of the job, as in
	// gearmand.)
	go func() {
		defer close(done)
		for {
			conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			ended := closed
			conns = append(conns, conn)
			mu.Unlock()
			if ended || !stuckWorker(conn) {
				_ = conn.Close()
				return
			}
			assigned.Add(1)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if out, err := testpeer.SubmitJob(ctx, addr, "poison", "x", false, false); !errors.Is(err, testpeer.ErrJobFailed) {
		t.Fatalf("a job that always times out: %q, %v; want WORK_FAIL once its retries are spent", out, err)
	}
	if n := assigned.Load(); n < 1 || n > 5 {
		t.Errorf("the stuck job ran %d times before it was dropped, want a few", n)
	}
	resp, err := http.Get(api + "/api/v1/server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Dropped uint64 `json:"dropped"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Dropped != 1 {
		t.Errorf("/api/v1/server dropped = %d (%v), want 1", st.Dropped, err)
	}
}

// stuckWorker registers poison with a 1 s CAN_DO_TIMEOUT on conn, sleeps
// until it gets the job and returns true once it holds it; false when
// the connection ends first.
func stuckWorker(conn net.Conn) bool {
	send := func(ty protocol.Type, args ...[]byte) bool {
		_, err := conn.Write(protocol.AppendPacket(nil, protocol.Req, ty, args...))
		return err == nil
	}
	if !send(protocol.CanDoTimeout, []byte("poison"), []byte("1")) || !send(protocol.PreSleep) {
		return false
	}
	r := protocol.NewReader(conn, protocol.Limits{})
	for {
		f, err := r.Next()
		if err != nil {
			return false
		}
		switch f.Packet.Type {
		case protocol.JobAssignUniq:
			return true
		case protocol.Noop:
			send(protocol.GrabJobUniq)
		case protocol.NoJob:
			send(protocol.PreSleep)
		}
	}
}
