package supervise

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/internal/clock"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// The test binary doubles as the child (helper-process pattern): with
// GWORKERD_TEST_CHILD set it runs the named child mode instead of tests.
const envChild = "GWORKERD_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(helperChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// helperSpec is a FunctionSpec whose children are this test binary in
// the given mode.
func helperSpec(name, mode string, env ...string) FunctionSpec {
	return FunctionSpec{
		Name:  name,
		Count: 1,
		Path:  os.Args[0],
		Args:  []string{"-test.run=^$"},
		Env:   append([]string{envChild + "=" + mode, "GWORKERD_TEST_FUNCTION=" + name}, env...),
	}
}

func helperChild(mode string) int {
	rep := OpenReporter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "crashing at start")
		return 3
	case "idle":
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go rep.Run(ctx, clock.Real{}, 100*time.Millisecond)
		rep.Ready()
		fmt.Println("idle child ready")
		<-term
		return 0
	case "stubborn":
		// No signal.Notify: it would undo the Ignore.
		signal.Ignore(syscall.SIGTERM)
		go rep.Run(ctx, clock.Real{}, 100*time.Millisecond)
		rep.Ready()
		fmt.Println("stubborn child ready")
		<-ctx.Done() // never: killed
		return 0
	case "command":
		return helperCommand(rep)
	case "forker":
		return helperForker()
	case "grandchild":
		signal.Ignore(syscall.SIGTERM)
		if mb, _ := strconv.Atoi(os.Getenv(envAllocMB)); mb > 0 {
			ballast = append(ballast, touched(mb))
		}
		fmt.Println("grandchild up")
		time.Sleep(time.Hour) // until killed with its group
		return 0
	case "worker":
		return helperWorker(ctx, rep, os.Getenv("GWORKERD_TEST_SERVER"), os.Getenv("GWORKERD_TEST_FUNCTION"))
	case "master":
		return helperMaster()
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// helperMaster runs a supervisor of three idle children and prints their
// pids; the test kills it with SIGKILL.
func helperMaster() int {
	s, err := New(Options{Functions: []FunctionSpec{func() FunctionSpec { f := helperSpec("idle", "idle"); f.Count = 3; return f }()}})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	ctx := context.Background()
	go func() { _ = s.Run(ctx) }()
	for {
		st, err := s.Status(ctx)
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		var pids []string
		for _, c := range st.Children {
			if c.State == StateRunning {
				pids = append(pids, strconv.Itoa(c.Pid))
			}
		}
		if len(pids) == 3 {
			fmt.Println("PIDS " + strings.Join(pids, " "))
			select {}
		}
		time.Sleep(20 * time.Millisecond) // helper process, polling its own status
	}
}

var ballast [][]byte // memory the "mem:N" jobs keep, to grow the RSS

// touched returns mb MiB of memory, every page written so that it is
// resident.
func touched(mb int) []byte {
	b := make([]byte, mb<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

// Settings of the command helpers, in their environment.
const (
	// envExitAfter makes the "command" helper exit with status 4 after
	// this duration.
	envExitAfter = "GWORKERD_TEST_EXIT_AFTER"
	// envAllocMB makes the "grandchild" helper hold this many MiB.
	envAllocMB = "GWORKERD_TEST_ALLOC_MB"
	// envOwnGroup makes the "forker" helper start its grandchild in a
	// process group of its own.
	envOwnGroup = "GWORKERD_TEST_OWN_GROUP"
)

// commandSpec is a Command FunctionSpec running this test binary as a
// plain program in the given mode. The Go runtime's cgroup probe, which
// would hold files open at descriptor 3, is off, and so is the race
// detector's one-second sleep at exit.
func commandSpec(name, mode string, env ...string) FunctionSpec {
	f := helperSpec(name, mode, append([]string{"GODEBUG=containermaxprocs=0,updatemaxprocs=0", "TSAN_OPTIONS=atexit_sleep_ms=0"}, env...)...)
	f.Command = true
	return f
}

// helperCommand is a plain worker program: it has no report pipe and
// exits on SIGTERM (or by itself after envExitAfter).
func helperCommand(rep *Reporter) int {
	if rep != nil {
		fmt.Fprintln(os.Stderr, "a command child got a report pipe")
		return 5
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("command child up")
	if d, err := time.ParseDuration(os.Getenv(envExitAfter)); err == nil {
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return 4
		case <-term:
			return 0
		}
	}
	<-term
	return 0
}

// helperForker is a plain program that ignores SIGTERM and starts a
// grandchild (which ignores it too), in its process group or, with
// envOwnGroup set, in a group of its own; it writes the grandchild's pid
// to grandchild.<own pid> in its working directory.
func helperForker() int {
	signal.Ignore(syscall.SIGTERM)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=grandchild")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: os.Getenv(envOwnGroup) != ""}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start grandchild:", err)
		return 1
	}
	name := "grandchild." + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(name+".tmp", []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil || os.Rename(name+".tmp", name) != nil {
		fmt.Fprintln(os.Stderr, "write pid:", err)
		return 1
	}
	fmt.Println("forker up")
	_ = cmd.Wait()
	return 0
}

// helperWorker is a minimal Gearman worker on the raw protocol: one job
// at a time; SIGTERM makes it exit after the current job.
func helperWorker(ctx context.Context, rep *Reporter, server, fn string) int {
	conn, err := net.Dial("tcp", server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 1
	}
	defer conn.Close()
	var stopping atomic.Bool
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	packets := make(chan protocol.Packet)
	go func() {
		r := protocol.NewReader(conn, protocol.Limits{})
		for {
			f, err := r.Next()
			if err != nil {
				close(packets)
				return
			}
			packets <- f.Packet.Clone()
		}
	}()
	send := func(t protocol.Type, args ...string) {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		if err := protocol.WritePacket(conn, protocol.Req, t, b...); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
	}
	send(protocol.CanDo, fn)
	go rep.Run(ctx, clock.Real{}, 100*time.Millisecond)
	rep.Ready()
	for !stopping.Load() {
		send(protocol.GrabJobUniq)
	wait:
		for {
			select {
			case <-term:
				stopping.Store(true)
				return 0
			case p, ok := <-packets:
				if !ok {
					return 1
				}
				switch p.Type {
				case protocol.NoJob:
					send(protocol.PreSleep)
				case protocol.Noop:
					break wait
				case protocol.JobAssignUniq:
					handle, data := string(p.Args[0]), string(p.Args[3])
					started := time.Now()
					rep.JobStarted(handle, started)
					result := helperJob(data, term, &stopping)
					send(protocol.WorkComplete, handle, result)
					rep.JobFinished(handle, true, nil, time.Since(started))
					rep.Heartbeat()
					break wait
				}
			}
		}
	}
	return 0
}

func helperJob(data string, term chan os.Signal, stopping *atomic.Bool) string {
	switch {
	case strings.HasPrefix(data, "sleep:"):
		d, _ := time.ParseDuration(strings.TrimPrefix(data, "sleep:"))
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				return "slept " + d.String()
			case <-term: // finish the job first
				stopping.Store(true)
			}
		}
	case strings.HasPrefix(data, "mem:"):
		mb, _ := strconv.Atoi(strings.TrimPrefix(data, "mem:"))
		ballast = append(ballast, touched(mb))
		return "grew " + strconv.Itoa(mb) + "MB"
	}
	return "echo " + data
}

// submit runs one job on the raw protocol and returns its result; a
// background job returns its handle.
func submit(ctx context.Context, addr, fn, data string, background bool) (string, error) {
	return testpeer.SubmitJob(ctx, addr, fn, data, background, false)
}

// waitFor polls cond (which reads state the test does not own) until it
// holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling processes we do not own
	}
}

// alive reports whether pid exists and is not a zombie, from /proc.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
