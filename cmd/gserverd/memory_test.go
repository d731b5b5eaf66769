package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// submitBgOnce sends one SUBMIT_JOB_BG on a new connection and returns the
// answer: "JOB_CREATED", or "ERROR <code>".
func submitBgOnce(t *testing.T, addr, fn string, data []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return "dial failed"
	}
	defer c.Close()
	return submitBgOn(c, fn, data)
}

// submitBgOn sends one SUBMIT_JOB_BG on c and returns the answer, as
// submitBgOnce. The payload is written from data itself, not from a
// copy of it in the packet.
func submitBgOn(c net.Conn, fn string, data []byte) string {
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	head := protocol.AppendHeader(nil, protocol.Req, protocol.SubmitJobBg, len(fn)+2+len(data))
	head = append(append(head, fn...), 0, 0) // the function, an empty unique
	bufs := net.Buffers{head, data}
	if _, err := bufs.WriteTo(c); err != nil {
		return "write: " + err.Error()
	}
	f, err := protocol.NewReader(c, protocol.Limits{}).Next()
	if err != nil {
		return "read: " + err.Error()
	}
	switch f.Packet.Type {
	case protocol.JobCreated:
		return "JOB_CREATED"
	case protocol.Error:
		return "ERROR " + string(f.Packet.Arg(0))
	}
	return f.Packet.Type.String()
}

// drainOne grabs one job of fn as a worker and completes it.
func drainOne(t *testing.T, addr, fn string) {
	t.Helper()
	c := dialOpen(t, addr)
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	defer c.SetDeadline(time.Time{})
	r := protocol.NewReader(c, protocol.Limits{})
	if _, err := c.Write(protocol.AppendPacketString(protocol.AppendPacketString(nil, protocol.Req, protocol.CanDo, fn), protocol.Req, protocol.GrabJob)); err != nil {
		t.Fatal(err)
	}
	f, err := r.Next()
	if err != nil || f.Packet.Type != protocol.JobAssign {
		t.Fatalf("grab: %v %v, want JOB_ASSIGN", f.Packet.Type, err)
	}
	h := string(f.Packet.Arg(0))
	if _, err := c.Write(protocol.AppendPacketString(protocol.AppendPacketString(nil, protocol.Req, protocol.WorkComplete, h, ""), protocol.Req, protocol.EchoReq, "x")); err != nil {
		t.Fatal(err)
	}
	if f, err := r.Next(); err != nil || f.Packet.Type != protocol.EchoRes {
		t.Fatalf("after WORK_COMPLETE: %v %v, want ECHO_RES", f.Packet.Type, err)
	}
}

// TestBinaryMaxQueueMemory (issue 10, item 7): with --max-queue-memory,
// background submits beyond the bound get ERROR QUEUE_ERROR, never
// JOB_CREATED; the server keeps serving; once a worker drained a job,
// a submit succeeds again. For the in-memory and the embedded store.
func TestBinaryMaxQueueMemory(t *testing.T) {
	t.Parallel()
	for _, q := range []string{"builtin", "embedded"} {
		t.Run(q, func(t *testing.T) {
			t.Parallel()
			p := startGserverd(t, "-q", q, "--http-listen=", "--max-queue-memory", "1MiB")
			data := []byte(strings.Repeat("m", 400<<10))
			for i, want := range []string{"JOB_CREATED", "JOB_CREATED", "ERROR QUEUE_ERROR", "ERROR QUEUE_ERROR"} {
				if got := submitBgOnce(t, p.Addr, "mem", data); got != want {
					t.Fatalf("submit %d of 400 KiB under a 1 MiB bound: %s, want %s", i+1, got, want)
				}
			}
			if !probe(t, dialOpen(t, p.Addr)) {
				t.Fatal("the server closed a connection after the refusals")
			}
			drainOne(t, p.Addr, "mem")
			if got := submitBgOnce(t, p.Addr, "mem", data); got != "JOB_CREATED" {
				t.Fatalf("submit after a job was drained: %s, want JOB_CREATED", got)
			}
			if got := submitBgOnce(t, p.Addr, "mem", data); got != "ERROR QUEUE_ERROR" {
				t.Fatalf("submit beyond the bound again: %s, want ERROR QUEUE_ERROR", got)
			}
		})
	}
}

// memoryCgroup creates a memory cgroup limited to limit bytes (v1 or v2,
// whichever has a writable memory controller) and returns the file to
// write a pid to, the file counting OOM kills and a reader of that
// count; it skips the test when there is none.
func memoryCgroup(t *testing.T, limit int64) (procs string, ooms func() int) {
	t.Helper()
	name := fmt.Sprintf("gserverd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	try := []struct {
		mount, limitFile, events string
		ok                       func() bool
	}{
		{"/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.oom_control", func() bool { return true }},
		{"/sys/fs/cgroup", "memory.max", "memory.events", func() bool {
			b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
			return err == nil && strings.Contains(" "+string(b)+" ", " memory")
		}},
	}
	var why []string
	for _, c := range try {
		if _, err := os.Stat(filepath.Join(c.mount, c.limitFile)); err != nil && c.limitFile == "memory.limit_in_bytes" {
			why = append(why, c.mount+": no cgroup v1 memory controller")
			continue
		}
		if !c.ok() {
			why = append(why, c.mount+": the memory controller is not enabled for children")
			continue
		}
		dir := filepath.Join(c.mount, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", c.mount, err))
			continue
		}
		t.Cleanup(func() {
			// The cgroup can be removed once its processes are gone
			// (the cleanups of the process run before this one).
			deadline := time.Now().Add(30 * time.Second)
			for os.Remove(dir) != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // the kernel gives no event for an emptied v1 cgroup here
			}
		})
		if err := os.WriteFile(filepath.Join(dir, c.limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", c.limitFile, err))
			continue
		}
		events := filepath.Join(dir, c.events)
		return filepath.Join(dir, "cgroup.procs"), func() int {
			b, _ := os.ReadFile(events)
			m := regexp.MustCompile(`(?m)^oom_kill (\d+)`).FindSubmatch(b)
			if m == nil {
				return 0
			}
			n, _ := strconv.Atoi(string(m[1]))
			return n
		}
	}
	t.Skipf("SKIP: no writable cgroup memory controller: %s", strings.Join(why, "; "))
	return "", nil
}

// TestBinaryCgroupMemory (issue 10, item 7): gserverd started in a
// memory cgroup derives --max-queue-memory from the cgroup's limit (a
// quarter of it), and clients sending large background jobs at once get
// ERROR QUEUE_ERROR beyond it instead of the OOM killer: the process
// lives, the acknowledged jobs can be drained, and submits succeed again.
func TestBinaryCgroupMemory(t *testing.T) {
	tests := []struct {
		queue       string
		limit       int64
		jobs, jobMB int
	}{
		{"builtin", 512 << 20, 12, 24},
		// The figures. The embedded store needs more beside the
		// jobs: its memtables and the compactions of large values.
		{"embedded", 1536 << 20, 13, 60},
	}
	for _, tt := range tests {
		t.Run(tt.queue, func(t *testing.T) {
			// Not parallel: large payloads, and memory in the cgroups.
			limit, q := tt.limit, tt.queue
			procs, ooms := memoryCgroup(t, limit)
			args := []string{"-L", "127.0.0.1", "-p", "0", "--log-file", "stderr", "--verbose", "INFO", "--http-listen=", "-q", q}
			cmd := exec.Command("sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, procs, testpeer.Binary(t, "gserverd")}, args...)...)
			cmd.Env = append(os.Environ(), dataDirEnv(t))
			p := logOnFailure(t, testpeer.Start(t, cmd))
			eventually(t, "gserverd logs its address", func() bool {
				if m := startedAddr.FindStringSubmatch(p.Output()); m != nil {
					p.Addr = m[1] + m[2] + m[3]
					return true
				}
				select {
				case <-p.Done():
					t.Fatalf("gserverd exited: %s", p.Output())
				default:
				}
				return false
			})
			want := fmt.Sprintf("max_queue_memory=%d", limit/4)
			if out := p.Output(); !strings.Contains(out, want) || !strings.Contains(out, fmt.Sprintf("1/4 of %d bytes (%s", limit, filepath.Dir(procs))) {
				t.Fatalf("the queue memory bound is not a quarter of the cgroup limit: want %q in\n%s", want, out)
			}

			// Clients send large jobs at once, beyond the bound (a
			// quarter of the limit); unbounded, this killed gserverd.
			// The clients connect first, one by one, then send at once,
			// each from the one payload: while the others copied and
			// sent their payloads (with -race, on a loaded machine), a
			// client's connect missed its 10 s dial timeout, and this
			// test is about the answers, not the connects.
			data := []byte(strings.Repeat("c", tt.jobMB<<20))
			conns := make([]net.Conn, tt.jobs)
			for i := range conns {
				conns[i] = dialOpen(t, p.Addr)
			}
			got := make([]string, tt.jobs)
			fit := int(limit / 4 / int64(len(data)))
			var wg sync.WaitGroup
			for i, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i] = submitBgOn(c, "big", data)
				}()
			}
			wg.Wait()
			acked, refused := 0, 0
			for _, g := range got {
				switch g {
				case "JOB_CREATED":
					acked++
				case "ERROR QUEUE_ERROR":
					refused++
				}
			}
			select {
			case <-p.Done():
				t.Fatalf("gserverd died (OOM kills in the cgroup: %d); answers %q", ooms(), got)
			default:
			}
			if n := ooms(); n != 0 {
				t.Fatalf("%d OOM kills in the cgroup; answers %q", n, got)
			}
			if acked+refused != len(got) || acked == 0 || refused == 0 || acked > fit {
				t.Fatalf("answers %q: want some JOB_CREATED (at most %d fit in the bound) and ERROR QUEUE_ERROR for the rest", got, fit)
			}
			if !probe(t, dialOpen(t, p.Addr)) {
				t.Fatal("the server closed a connection after the refusals")
			}
			for range acked {
				drainOne(t, p.Addr, "big")
			}
			if g := submitBgOnce(t, p.Addr, "big", data); g != "JOB_CREATED" {
				t.Fatalf("submit after the drain: %s, want JOB_CREATED", g)
			}
			p.Stop()
		})
	}
}

// procStatusBytes returns a "kB" field of /proc/PID/status (VmRSS,
// VmHWM) in bytes.
func procStatusBytes(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status: %q: %v", pid, l, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// TestBinaryLargeJobMemory (issue 10, item 7): one 50 MiB background job
// through gserverd -q embedded raises the process's peak RSS by less
// than 2.5 times its size (the payload, and the decoder's growing of it
// as it arrives), whatever the sync mode; through pebble it was about 3
// times at JOB_CREATED and 4 once pebble had flushed it. SIGKILLed after
// JOB_CREATED, gserverd restarted on the same directory hands the job
// to a worker byte for byte.
func TestBinaryLargeJobMemory(t *testing.T) {
	t.Parallel()
	data := make([]byte, 50<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	for _, sync := range []string{"always", "interval", "none"} {
		t.Run(sync, func(t *testing.T) {
			t.Parallel()
			args := []string{"-q", "embedded", "--sync", sync, "--http-listen=", "--data-dir", filepath.Join(t.TempDir(), "data")}
			p := startGserverd(t, args...)
			pid := p.Cmd.Process.Pid
			// The store's first write, before measuring.
			if got := submitBgOnce(t, p.Addr, "warm", []byte("x")); got != "JOB_CREATED" {
				t.Fatalf("small submit: %s", got)
			}
			rss := procStatusBytes(t, pid, "VmRSS")
			if got := submitBgOnce(t, p.Addr, "big", data); got != "JOB_CREATED" {
				t.Fatalf("50 MiB submit: %s, want JOB_CREATED", got)
			}
			peak := procStatusBytes(t, pid, "VmHWM")
			grew := float64(peak-rss) / float64(len(data))
			t.Logf("--sync %s: RSS %d MiB before a 50 MiB job, peak %d MiB after (+%.2fx)", sync, rss>>20, peak>>20, grew)
			if grew > 2.5 {
				t.Errorf("--sync %s: one 50 MiB job raised the peak RSS by %.2f times its size (%d -> %d MiB), want at most 2.5", sync, grew, rss>>20, peak>>20)
			}

			p.Kill()
			p = startGserverd(t, args...)
			w := dialRaw(t, p.Addr)
			w.send(protocol.CanDo, "big")
			w.send(protocol.GrabJobUniq)
			_ = w.c.SetReadDeadline(time.Now().Add(time.Minute))
			f, err := w.r.Next()
			if err != nil || f.Text || f.Packet.Type != protocol.JobAssignUniq {
				t.Fatalf("grab after SIGKILL and restart: %v %v, want JOB_ASSIGN_UNIQ", f.Packet.Type, err)
			}
			if got := f.Packet.Args[3]; !bytes.Equal(got, data) {
				t.Fatalf("replayed job has %d bytes, not the 50 MiB submitted", len(got))
			}
		})
	}
}
