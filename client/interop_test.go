package client_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		for _, payload := range [][]byte{{}, []byte("hello"), []byte("a\x00b\x00"), bytes.Repeat([]byte("x"), 1<<20)} {
			got, addr, err := c.Echo(ctxT(t, 10*time.Second), payload)
			if err != nil {
				t.Fatalf("Echo(%d bytes): %v", len(payload), err)
			}
			if !bytes.Equal(got, payload) || addr != srv.Addr {
				t.Errorf("Echo(%d bytes) = %d bytes from %s, want the same from %s", len(payload), len(got), addr, srv.Addr)
			}
		}
	})
}

func TestForegroundGearmanCLIWorker(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		fn := fname(t)
		startGearmanWorker(t, srv.Addr, fn, "tr", "a-z", "A-Z")
		failFn := fname(t)
		startGearmanWorker(t, srv.Addr, failFn, "false")
		c := newClient(t, srv.Addr)
		tests := []struct {
			fn, payload string
			opts        []client.SubmitOption
			want        string
			wantErr     error
		}{
			{fn: fn, payload: "hello", want: "HELLO"},
			{fn: fn, payload: "high", opts: []client.SubmitOption{client.Priority(client.High)}, want: "HIGH"},
			{fn: fn, payload: "low", opts: []client.SubmitOption{client.Priority(client.Low)}, want: "LOW"},
			{fn: fn, payload: "uniq", opts: []client.SubmitOption{client.Unique("u-" + fn)}, want: "UNIQ"},
			{fn: failFn, payload: "x", wantErr: client.ErrJobFailed},
		}
		for _, tt := range tests {
			job, err := c.Submit(ctxT(t, 10*time.Second), tt.fn, []byte(tt.payload), tt.opts...)
			if err != nil {
				t.Fatalf("Submit(%s, %q): %v", tt.fn, tt.payload, err)
			}
			if job.Handle == "" || job.Server != srv.Addr {
				t.Errorf("job handle %q server %q, want a handle from %s", job.Handle, job.Server, srv.Addr)
			}
			res, err := job.Wait(ctxT(t, 10*time.Second))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Wait(%s, %q) error = %v, want %v", tt.fn, tt.payload, err, tt.wantErr)
			}
			if err == nil && string(res.Output()) != tt.want {
				t.Errorf("Wait(%s, %q) output = %q, want %q", tt.fn, tt.payload, res.Output(), tt.want)
			}
		}
	})
}

func TestForegroundPHPWorker(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		prefix := fname(t)
		startPHPWorker(t, srv.Addr, prefix)
		c := newClient(t, srv.Addr)

		t.Run("events", func(t *testing.T) {
			job, err := c.Submit(ctxT(t, 10*time.Second), prefix+".events", []byte("p1"))
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for ev := range job.Events(ctxT(t, 10*time.Second)) {
				kinds = append(kinds, ev.Kind.String()+"="+string(ev.Data))
			}
			want := "data=chunk1:,data=chunk2:,warning=careful,status=,complete=done:p1"
			if got := strings.Join(kinds, ","); got != want {
				t.Errorf("events = %s, want %s", got, want)
			}
			res, err := job.Wait(ctxT(t, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Data) != "done:p1" || len(res.Chunks) != 2 || len(res.Warnings) != 1 ||
				res.Numerator != 1 || res.Denominator != 2 || string(res.Output()) != "chunk1:chunk2:done:p1" {
				t.Errorf("result = %+v, want data done:p1, 2 chunks, 1 warning, status 1/2", res)
			}
		})
		t.Run("fail", func(t *testing.T) {
			job, err := c.Submit(ctxT(t, 10*time.Second), prefix+".fail", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := job.Wait(ctxT(t, 10*time.Second)); !errors.Is(err, client.ErrJobFailed) {
				t.Errorf("Wait = %v, want ErrJobFailed", err)
			}
		})
		t.Run("exception", func(t *testing.T) {
			job, err := c.Submit(ctxT(t, 10*time.Second), prefix+".exception", []byte("e1"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = job.Wait(ctxT(t, 10*time.Second))
			var ex *client.ExceptionError
			if !errors.As(err, &ex) || string(ex.Data) != "boom:e1" {
				t.Errorf("Wait = %v, want an ExceptionError with data boom:e1", err)
			}
		})
		t.Run("status", func(t *testing.T) {
			release := filepath.Join(t.TempDir(), "release")
			job, err := c.Submit(ctxT(t, 10*time.Second), prefix+".block", []byte(release), client.Unique("st-"+prefix))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := job.Next(ctxT(t, 10*time.Second))
			if err != nil || ev.Kind != client.EventStatus {
				t.Fatalf("first event = %+v, %v; want a status event", ev, err)
			}
			st, err := c.Status(ctxT(t, 5*time.Second), client.Handle{Server: job.Server, ID: job.Handle})
			if err != nil {
				t.Fatal(err)
			}
			want := client.Status{Handle: job.Handle, Server: srv.Addr, Known: true, Running: true, Numerator: 1, Denominator: 2}
			if st != want {
				t.Errorf("Status = %+v, want %+v", st, want)
			}
			// Without the server: every server is asked.
			if st2, err := c.Status(ctxT(t, 5*time.Second), client.Handle{ID: job.Handle}); err != nil || st2 != want {
				t.Errorf("Status without server = %+v, %v; want %+v", st2, err, want)
			}
			stu, err := c.StatusUnique(ctxT(t, 5*time.Second), "st-"+prefix)
			if err != nil {
				t.Fatal(err)
			}
			wantU := client.Status{Handle: "st-" + prefix, Server: srv.Addr, Known: true, Running: true, Numerator: 1, Denominator: 2, Clients: 1}
			if stu != wantU {
				t.Errorf("StatusUnique = %+v, want %+v", stu, wantU)
			}
			if err := os.WriteFile(release, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := job.Wait(ctxT(t, 10*time.Second))
			if err != nil || string(res.Data) != "released" {
				t.Fatalf("Wait = %q, %v; want released", res.Data, err)
			}
			st, err = c.Status(ctxT(t, 5*time.Second), client.Handle{Server: job.Server, ID: job.Handle})
			if err != nil || st.Known {
				t.Errorf("Status after the end = %+v, %v; want unknown", st, err)
			}
		})
	})
}

func TestBackgroundStatusAndCoalescing(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		fn := fname(t)
		ctx := ctxT(t, 20*time.Second)
		h1, err := c.SubmitBackground(ctx, fn, []byte("a"), client.Unique("same"))
		if err != nil {
			t.Fatal(err)
		}
		h2, err := c.SubmitBackground(ctx, fn, []byte("b"), client.Unique("same"))
		if err != nil {
			t.Fatal(err)
		}
		h3, err := c.SubmitBackground(ctx, fn, []byte("c"))
		if err != nil {
			t.Fatal(err)
		}
		if h1 != h2 || h1 == h3 || h1.Server != srv.Addr {
			t.Errorf("handles %v %v %v: want the first two equal (same unique), the third different", h1, h2, h3)
		}
		// Foreground submits coalesce with the queued job too.
		j1, err := c.Submit(ctx, fn, []byte("d"), client.Unique("same"))
		if err != nil {
			t.Fatal(err)
		}
		j2, err := c.Submit(ctx, fn, []byte("e"), client.Unique("same"))
		if err != nil {
			t.Fatal(err)
		}
		if j1.Handle != h1.ID || j2.Handle != h1.ID {
			t.Errorf("foreground handles %q %q, want %q", j1.Handle, j2.Handle, h1.ID)
		}
		st, err := c.Status(ctx, h1)
		if err != nil || !st.Known || st.Running {
			t.Errorf("Status(%v) = %+v, %v; want known, not running", h1, st, err)
		}
		stu, err := c.StatusUnique(ctx, "same")
		if err != nil || !stu.Known || stu.Clients != 2 {
			t.Errorf("StatusUnique = %+v, %v; want known with 2 clients", stu, err)
		}
		out := filepath.Join(t.TempDir(), "out")
		startGearmanWorker(t, srv.Addr, fn, "sh", "-c", "cat >> "+out+"; echo >> "+out)
		for _, j := range []*client.Job{j1, j2} {
			res, err := j.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Output()) != 0 {
				t.Errorf("output %q, want empty", res.Output())
			}
		}
		waitFor(t, 10*time.Second, "both jobs to run", func() bool { return strings.Count(readFile(out), "\n") == 2 })
		// The first submit's payload wins; the job ran once.
		if got := readFile(out); got != "a\nc\n" {
			t.Errorf("worker saw %q, want %q", got, "a\nc\n")
		}
		st, err = c.Status(ctx, h1)
		if err != nil || st.Known {
			t.Errorf("Status after run = %+v, %v; want unknown", st, err)
		}
	})
}

func TestPriorities(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		fn := fname(t)
		ctx := ctxT(t, 20*time.Second)
		submits := []struct {
			payload string
			prio    client.SubmitOption
		}{
			{"low1", client.Priority(client.Low)},
			{"norm1", client.Priority(client.Normal)},
			{"norm2", client.Priority(client.Normal)},
			{"high1", client.Priority(client.High)},
			{"low2", client.Priority(client.Low)},
			{"high2", client.Priority(client.High)},
		}
		for _, s := range submits {
			if _, err := c.SubmitBackground(ctx, fn, []byte(s.payload), s.prio); err != nil {
				t.Fatal(err)
			}
		}
		ps, err := c.Admin("").PriorityStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range ps {
			if p.Function == fn {
				found = true
				if p.High != 2 || p.Normal != 2 || p.Low != 2 {
					t.Errorf("prioritystatus %+v, want 2 2 2", p)
				}
			}
		}
		if !found {
			t.Errorf("prioritystatus has no %s: %+v", fn, ps)
		}
		out := filepath.Join(t.TempDir(), "out")
		startGearmanWorker(t, srv.Addr, fn, "sh", "-c", "cat >> "+out+"; echo >> "+out)
		waitFor(t, 10*time.Second, "all jobs to run", func() bool { return strings.Count(readFile(out), "\n") == len(submits) })
		want := "high1\nhigh2\nnorm1\nnorm2\nlow1\nlow2\n"
		if got := readFile(out); got != want {
			t.Errorf("run order %q, want %q", got, want)
		}
	})
}

func TestEpochJob(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		fn := fname(t)
		ctx := ctxT(t, 20*time.Second)
		out := filepath.Join(t.TempDir(), "out")
		startGearmanWorker(t, srv.Addr, fn, "sh", "-c", "cat >> "+out+"; echo >> "+out)
		due := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
		h, err := c.SubmitBackground(ctx, fn, []byte("epoch"), client.RunAt(due))
		if err != nil {
			t.Fatal(err)
		}
		// Until it is due the job waits although a worker is idle.
		for time.Now().Before(due.Add(-200 * time.Millisecond)) {
			st, err := c.Status(ctx, h)
			if err != nil || !st.Known || st.Running {
				t.Fatalf("Status before due = %+v, %v; want known, not running", st, err)
			}
			if got := readFile(out); got != "" {
				t.Fatalf("epoch job ran before it was due: %q", got)
			}
			time.Sleep(100 * time.Millisecond) // sampling the job while it must stay queued
		}
		waitFor(t, 3*time.Second, "the due time", func() bool { return time.Now().After(due) })
		// gearmand 1.1.20 does not wake sleeping workers when an epoch job
		// falls due (docs/PROTOCOL.md 4.9): a second job wakes the worker.
		if _, err := c.SubmitBackground(ctx, fn, []byte("nudge")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "both jobs to run", func() bool { return strings.Count(readFile(out), "\n") == 2 })
		if got := readFile(out); !strings.Contains(got, "epoch\n") {
			t.Errorf("worker saw %q, want the epoch job", got)
		}
		if _, err := c.Submit(ctx, fn, nil, client.RunAt(due)); !errors.Is(err, client.ErrOptions) {
			t.Errorf("foreground RunAt: %v, want ErrOptions", err)
		}
	})
}

func TestReduceJob(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		fn := fname(t)
		ctx := ctxT(t, 20*time.Second)
		h, err := c.SubmitBackground(ctx, fn, []byte("r"), client.Reducer("count"), client.Unique("ru"))
		if err != nil {
			t.Fatal(err)
		}
		j, err := c.Submit(ctx, fn, []byte("r2"), client.Reducer("count"))
		if err != nil {
			t.Fatal(err)
		}
		if j.Handle == h.ID {
			t.Errorf("two jobs got one handle %q", h.ID)
		}
		ps, err := c.Admin("").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Function == fn && p.Total != 2 {
				t.Errorf("status %+v, want 2 jobs", p)
			}
		}
		if _, err := c.SubmitBackground(ctx, fn, nil, client.Reducer("x"), client.Priority(client.High)); !errors.Is(err, client.ErrOptions) {
			t.Errorf("Reducer with High: %v, want ErrOptions", err)
		}
		// A worker asking with GRAB_JOB_ALL gets the reducer the client sent.
		w, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		_ = w.SetDeadline(time.Now().Add(10 * time.Second))
		for _, p := range [][]byte{
			protocol.AppendPacketString(nil, protocol.Req, protocol.CanDo, fn),
			protocol.AppendPacketString(nil, protocol.Req, protocol.GrabJobAll),
		} {
			if _, err := w.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		f, err := protocol.NewReader(w, protocol.Limits{}).Next()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{h.ID, fn, "ru", "count", "r"}
		if f.Packet.Type != protocol.JobAssignAll || len(f.Packet.Args) != len(want) {
			t.Fatalf("GRAB_JOB_ALL got %v %q, want JOB_ASSIGN_ALL %q", f.Packet.Type, f.Packet.Args, want)
		}
		for i, a := range f.Packet.Args {
			if string(a) != want[i] {
				t.Errorf("JOB_ASSIGN_ALL arg %d = %q, want %q", i, a, want[i])
			}
		}
	})
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	forTargets(t, func(t *testing.T, srv *testpeer.Process) {
		c := newClient(t, srv.Addr)
		a := c.Admin(srv.Addr)
		ctx := ctxT(t, 20*time.Second)
		fn := fname(t)
		h, err := c.SubmitBackground(ctx, fn, []byte("x"), client.Unique("adm-u"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := a.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hasFunc(st, fn, 1) {
			t.Errorf("status %+v lacks %s with 1 job", st, fn)
		}
		jobs, err := a.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hasJob(jobs, h.ID) {
			t.Errorf("show jobs %+v lacks %s", jobs, h.ID)
		}
		uniq, err := a.UniqueJobs(ctx)
		if err != nil || !contains(uniq, "adm-u") {
			t.Errorf("show unique jobs = %q, %v; want adm-u", uniq, err)
		}
		if err := a.CancelJob(ctx, h.ID); err != nil {
			t.Errorf("cancel job: %v", err)
		}
		var ae interface{ Error() string }
		if err := a.CancelJob(ctx, "H:nope:999999"); err == nil {
			t.Errorf("cancel unknown job: nil error")
		} else {
			ae = err
			if !strings.Contains(ae.Error(), "UNKNOWN_JOB") {
				t.Errorf("cancel unknown job: %v, want UNKNOWN_JOB", err)
			}
		}
		if err := a.CreateFunction(ctx, "created"+fn); err != nil {
			t.Errorf("create function: %v", err)
		}
		if st, _ := a.Status(ctx); !hasFunc(st, "created"+fn, 0) {
			t.Errorf("status lacks the created function %q: %+v", "created"+fn, st)
		}
		if err := a.MaxQueue(ctx, "created"+fn, 1); err != nil {
			t.Errorf("maxqueue: %v", err)
		}
		if _, err := c.SubmitBackground(ctx, "created"+fn, nil); err != nil {
			t.Errorf("first submit under maxqueue 1: %v", err)
		}
		if _, err := c.SubmitBackground(ctx, "created"+fn, nil); err == nil || !strings.Contains(err.Error(), "QUEUE_ERROR") {
			t.Errorf("second submit under maxqueue 1: %v, want QUEUE_ERROR", err)
		}
		if err := a.MaxQueue(ctx, "created"+fn, 0, 0, 0); err != nil {
			t.Errorf("maxqueue with 3 sizes: %v", err)
		}
		if err := a.DropFunction(ctx, "nosuch"+fn); err == nil {
			t.Errorf("drop unknown function: nil error")
		}
		if err := a.CreateFunction(ctx, "drop"+fn); err != nil {
			t.Fatal(err)
		}
		if err := a.DropFunction(ctx, "drop"+fn); err != nil {
			t.Errorf("drop function: %v", err)
		}
		pid, err := a.PID(ctx)
		if err != nil || pid != srv.Cmd.Process.Pid {
			t.Errorf("getpid = %d, %v; want %d", pid, err, srv.Cmd.Process.Pid)
		}
		if v, err := a.Version(ctx); err != nil || v == "" {
			t.Errorf("version = %q, %v", v, err)
		}
		if v, err := a.Verbose(ctx); err != nil || v == "" {
			t.Errorf("verbose = %q, %v", v, err)
		}
		named, err := client.New([]string{srv.Addr}, client.WithClientID("named-"+fn))
		if err != nil {
			t.Fatal(err)
		}
		defer named.Close()
		if _, _, err := named.Echo(ctx, nil); err != nil {
			t.Fatal(err)
		}
		w, err := a.Workers(ctx)
		found := false
		for _, x := range w {
			found = found || x.ClientID == "named-"+fn
		}
		if err != nil || !found {
			t.Errorf("workers = %+v, %v; want a connection with client id named-%s", w, err, fn)
		}
	})
}

func hasFunc(st []protocolStatus, fn string, total int) bool {
	for _, s := range st {
		if s.Function == fn && s.Total == total {
			return true
		}
	}
	return false
}

func hasJob(jobs []protocolJob, h string) bool {
	for _, j := range jobs {
		if j.Handle == h {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var _ = strconv.Itoa
