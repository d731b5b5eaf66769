package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// These tests put gserverd's embedded store on a full disk (a small tmpfs,
// root only) and on a damaged write-ahead log (issue 10, items 3 and 4).

// submitBg submits a background job and returns "" for JOB_CREATED or the
// ERROR code.
func submitBg(rc *rawConn, fn, unique, data string) string {
	rc.t.Helper()
	rc.send(protocol.SubmitJobBg, fn, unique, data)
	_ = rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := rc.r.Next()
	if err != nil {
		rc.t.Fatalf("submit %s: %v (the server died?)", unique, err)
	}
	switch {
	case f.Text:
		rc.t.Fatalf("submit %s: text answer %q", unique, f.Line)
	case f.Packet.Type == protocol.JobCreated:
		return ""
	case f.Packet.Type == protocol.Error && len(f.Packet.Args) > 0:
		return string(f.Packet.Args[0])
	}
	rc.t.Fatalf("submit %s: got %v", unique, f.Packet.Type)
	return ""
}

// drainUniques runs a worker on fn until the queue is empty and returns the
// uniques it completed.
func drainUniques(t *testing.T, addr, fn string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	done := map[string]int{}
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		werr <- drainWorker(addr, fn, func(u string) { mu.Lock(); done[u]++; mu.Unlock() }, stop)
	}()
	eventually(t, "the worker drains "+fn, func() bool { return queueTotal(t, addr, fn) == 0 })
	close(stop)
	<-werr
	mu.Lock()
	defer mu.Unlock()
	return done
}

// TestBinaryFullDisk: gserverd (embedded store) on a 48 MiB tmpfs takes
// 16 KiB background jobs until the disk is full. Beyond that, submits get
// ERROR QUEUE_ERROR (never an ack, never EOF); the server keeps answering;
// a worker drains every stored job; new submits succeed again once the
// space is back; after a restart, every job acknowledged and not yet done
// comes back.
func TestBinaryFullDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testpeer.Tmpfs(t, 48<<20), "data")
	args := []string{"-q", "embedded", "--data-dir", dir}
	p := startGserverd(t, args...)
	rc := dialRaw(t, p.Addr)
	data := strings.Repeat("d", 16<<10)

	acked := map[string]bool{}
	refused := 0
	for i := 0; refused < 20; i++ {
		u := "a" + strconv.Itoa(i)
		switch code := submitBg(rc, "disk", u, data); code {
		case "":
			acked[u] = true
		case protocol.CodeQueueError:
			refused++
		default:
			t.Fatalf("submit %s: ERROR %s, want QUEUE_ERROR", u, code)
		}
		if i > 10000 {
			t.Fatal("10,000 jobs of 16 KiB acknowledged on a 48 MiB filesystem")
		}
	}
	if len(acked) < 100 {
		t.Fatalf("only %d jobs acknowledged before the disk was full", len(acked))
	}
	echo(t, p.Addr)
	t.Logf("%d jobs acknowledged, then %d refused with QUEUE_ERROR", len(acked), refused)

	// A worker drains every acknowledged job.
	done := drainUniques(t, p.Addr, "disk")
	for u := range acked {
		if done[u] == 0 {
			t.Fatalf("acknowledged job %s was not drained", u)
		}
	}
	// The refusals are logged, but not one line each: at most one a
	// second, with their count.
	eventually(t, "the log line about the failed writes", func() bool {
		return strings.Contains(p.Output(), "store: add failed")
	})
	if n := strings.Count(p.Output(), "store: add failed"); n >= refused {
		t.Errorf("%d log lines for %d refused submits, want them summed", n, refused)
	}

	// Space comes back (the store flushes its log of done jobs): submits
	// are acknowledged again.
	again := map[string]bool{}
	for i := 0; len(again) < 100; i++ {
		u := "b" + strconv.Itoa(i)
		var code string
		eventually(t, "a submit is acknowledged after the drain", func() bool {
			code = submitBg(rc, "disk", u, data)
			return code != protocol.CodeQueueError
		})
		if code != "" {
			t.Fatalf("submit %s after the drain: ERROR %s", u, code)
		}
		again[u] = true
	}

	p.Stop()
	select {
	case <-p.Done():
	default:
		t.Fatal("gserverd did not stop")
	}
	if strings.Contains(p.Output(), "panic") {
		t.Fatalf("gserverd panicked:\n%s", p.Output())
	}
	p = startGserverd(t, args...)
	done = drainUniques(t, p.Addr, "disk")
	lost := 0
	for u := range again {
		if done[u] == 0 {
			lost++
		}
	}
	if lost > 0 || len(done) != len(again) {
		t.Fatalf("after a restart: %d of %d acknowledged jobs lost, %d jobs came back", lost, len(again), len(done))
	}
}

// TestBinaryStartOnFullDisk: gserverd started on a store whose disk
// another file filled comes up serving (the store read-only, said at
// error level): its jobs can be drained, submits get QUEUE_ERROR; once
// space is back submits are acknowledged again, and after a restart only
// the new job is there (the drained ones were deleted).
func TestBinaryStartOnFullDisk(t *testing.T) {
	t.Parallel()
	root := testpeer.Tmpfs(t, 16<<20)
	dir := filepath.Join(root, "data")
	args := []string{"-q", "embedded", "--data-dir", dir}
	p := startGserverd(t, args...)
	rc := dialRaw(t, p.Addr)
	for i := range 100 {
		if code := submitBg(rc, "full", "j"+strconv.Itoa(i), strings.Repeat("x", 1000)); code != "" {
			t.Fatalf("submit: ERROR %s", code)
		}
	}
	p.Stop()

	ballast := filepath.Join(root, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 64<<10))
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fill the disk: %v", err)
	}

	p = startGserverd(t, args...)
	if !strings.Contains(p.Output(), "level=error") || !strings.Contains(p.Output(), "filesystem is full") {
		t.Errorf("no error-level line saying the filesystem is full:\n%s", p.Output())
	}
	rc = dialRaw(t, p.Addr)
	if code := submitBg(rc, "full", "new", "x"); code != protocol.CodeQueueError {
		t.Fatalf("submit on a full disk: %q, want QUEUE_ERROR", code)
	}
	if done := drainUniques(t, p.Addr, "full"); len(done) != 100 {
		t.Fatalf("drained %d jobs on a full disk, want 100", len(done))
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a submit is acknowledged once space is back", func() bool {
		code := submitBg(rc, "full", "new", "x")
		if code != "" && code != protocol.CodeQueueError {
			t.Fatalf("submit once space is back: ERROR %s", code)
		}
		return code == ""
	})
	p.Stop()
	p = startGserverd(t, args...)
	if done := drainUniques(t, p.Addr, "full"); len(done) != 1 || done["new"] != 1 {
		t.Fatalf("after a restart: jobs %v, want only the new one", done)
	}
}

var lostJobs = regexp.MustCompile(`level=error .*lost_jobs=(\d+)`)

// TestBinaryDamagedStore overwrites 40 bytes in the middle of the
// write-ahead log of a stopped gserverd holding 2,000 jobs. gserverd
// reports the damage at error level with the jobs lost, and refuses to
// start, naming the file and --accept-store-damage; with that flag it
// starts with the other jobs.
func TestBinaryDamagedStore(t *testing.T) {
	t.Parallel()
	const jobs = 2000
	dir := filepath.Join(t.TempDir(), "data")
	args := []string{"-q", "embedded", "--data-dir", dir}
	p := startGserverd(t, args...)
	rc := dialRaw(t, p.Addr)
	for i := range jobs {
		if code := submitBg(rc, "dmg", "j"+strconv.Itoa(i), strings.Repeat("x", 100)); code != "" {
			t.Fatalf("submit: ERROR %s", code)
		}
	}
	p.Stop()

	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var logPath string
	var size int64
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil && st.Size() > size {
			logPath, size = l, st.Size()
		}
	}
	if logPath == "" {
		t.Fatalf("no write-ahead log in %s", dir)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, 40), size/2); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, errOut, code := runBinary(t, nil, append([]string{"-L", "127.0.0.1", "-p", "0", "--log-file", "stderr"}, args...)...)
	m := lostJobs.FindStringSubmatch(errOut)
	if code != 1 || m == nil || !strings.Contains(errOut, logPath) || !strings.Contains(errOut, "--accept-store-damage") {
		t.Fatalf("start on a damaged store: exit %d; want 1, an error-level line with lost_jobs, the file %s and --accept-store-damage:\n%s", code, logPath, errOut)
	}
	lost, _ := strconv.Atoi(m[1])

	p = startGserverd(t, append(args, "--accept-store-damage")...)
	n := queueTotal(t, p.Addr, "dmg")
	if lost <= 0 || n+lost != jobs {
		t.Fatalf("with --accept-store-damage: %d jobs + %d reported lost, want %d", n, lost, jobs)
	}
	if !lostJobs.MatchString(p.Output()) {
		t.Errorf("with --accept-store-damage: the loss is not logged at error level:\n%s", p.Output())
	}
	t.Logf("damaged log: %d jobs kept, %d reported lost", n, lost)
}
