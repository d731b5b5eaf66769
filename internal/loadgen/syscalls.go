package loadgen

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Syscalls is what a counter saw one process call.
type Syscalls struct {
	// Tool is the counter: "perf" or "strace".
	Tool string
	// Total counts every call. perf names only the calls of
	// perfSyscalls (each named tracepoint costs its stop time), so Total
	// may exceed the sum of Counts: Top shows the rest as "other".
	Total int64
	// Counts holds the calls by system call name.
	Counts map[string]int64
}

// SyscallCount is one system call's count.
type SyscallCount struct {
	Name  string
	Count int64
}

// OtherSyscalls names, in Top, the calls counted in Total but not by name.
const OtherSyscalls = "other"

// Top returns the n most called system calls, most first (ties by name),
// with the calls not counted by name as one, OtherSyscalls.
func (s Syscalls) Top(n int) []SyscallCount {
	all := make([]SyscallCount, 0, len(s.Counts)+1)
	var named int64
	for name, c := range s.Counts {
		named += c
		if c > 0 {
			all = append(all, SyscallCount{name, c})
		}
	}
	if other := s.Total - named; other > 0 {
		all = append(all, SyscallCount{OtherSyscalls, other})
	}
	slices.SortFunc(all, func(a, b SyscallCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Name, b.Name))
	})
	return all[:min(n, len(all))]
}

// perfSyscalls are the system calls perf counts by name: those a network
// server makes in its steady state (sockets, polling, scheduling, memory),
// a few dozen of the few hundred tracepoints, because perf stops each
// tracepoint it used in about 20 ms (an RCU grace period each: 8 s for
// all of them). The total comes from raw_syscalls:sys_enter, exact.
const perfSyscalls = `read write readv writev pread64 pwrite64 recvfrom sendto recvmsg sendmsg
	recvmmsg sendmmsg splice sendfile64 epoll_wait epoll_pwait epoll_pwait2 epoll_ctl
	poll ppoll select pselect6 io_uring_enter futex nanosleep clock_nanosleep
	sched_yield tgkill getpid gettid rt_sigreturn rt_sigprocmask sigaltstack mmap
	munmap madvise mprotect brk accept accept4 socket connect close shutdown
	setsockopt getsockopt getsockname getpeername fcntl ioctl eventfd2 pipe2 clone
	clone3 exit openat newfstatat fstat lseek fsync fdatasync getrandom`

// perfEvents returns perf's events: the total and the perfSyscalls this
// kernel has tracepoints for (tracefs lists them), or, when tracefs
// cannot be read, every syscall tracepoint.
func perfEvents() string {
	for _, dir := range []string{"/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls"} {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		events := []string{"raw_syscalls:sys_enter"}
		for _, name := range strings.Fields(perfSyscalls) {
			if _, err := os.Stat(filepath.Join(dir, "sys_enter_"+name)); err == nil {
				events = append(events, "syscalls:sys_enter_"+name)
			}
		}
		return strings.Join(events, ",")
	}
	return "syscalls:sys_enter_*"
}

// The syscall counters SyscallTool knows.
const (
	ToolPerf   = "perf"   // perf stat on the syscalls:sys_enter_* tracepoints
	ToolStrace = "strace" // strace -c -f
)

// ErrNoSyscallTool reports that no syscall counter works here.
var ErrNoSyscallTool = errors.New("loadgen: no syscall counter")

// SyscallTool returns the counter to use: want is ToolPerf, ToolStrace
// or "auto", which prefers perf (a tracepoint costs the traced process
// far less than strace's two stops per call) and falls back on strace.
// Each must work to be taken: perf must count a system call of `true`
// (it may be installed without the tracepoints or the permission to read
// them), strace must attach to a process that is not its child (Yama's
// ptrace_scope may forbid it).
func SyscallTool(ctx context.Context, want string) (string, error) {
	var why []string
	if want == ToolPerf || want == "auto" {
		err := probePerf(ctx)
		if err == nil {
			return ToolPerf, nil
		}
		why = append(why, err.Error())
	}
	if want == ToolStrace || want == "auto" {
		err := probeStrace(ctx)
		if err == nil {
			return ToolStrace, nil
		}
		why = append(why, err.Error())
	}
	if len(why) == 0 {
		return "", fmt.Errorf("%w: unknown counter %q (want auto, perf or strace)", ErrNoSyscallTool, want)
	}
	return "", fmt.Errorf("%w: %s", ErrNoSyscallTool, strings.Join(why, "; "))
}

// probePerf checks that perf counts the exit_group of `true`.
func probePerf(ctx context.Context) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return err
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, perf, "stat", "-x,", "-e", "syscalls:sys_enter_exit_group", "--", truePath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf stat on the syscall tracepoints: %w: %s", err, bytes.TrimSpace(out))
	}
	s, err := parsePerfStat(out)
	if err != nil || s.Counts["exit_group"] < 1 {
		return fmt.Errorf("perf stat on the syscall tracepoints counted no exit_group of true (%v): %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// probeStrace attaches strace to a sleep of ours and detaches.
func probeStrace(ctx context.Context) error {
	if _, err := exec.LookPath("strace"); err != nil {
		return err
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return err
	}
	p, err := Spawn(sleep, nil, "60")
	if err != nil {
		return err
	}
	defer p.Stop()
	c, err := StartSyscallCount(ctx, ToolStrace, p.PID)
	if err != nil {
		return err
	}
	_, err = c.Stop(ctx)
	return err
}

// SyscallCounter counts the system calls of one running process, all of
// its threads, with perf or strace attached to it. It is used by one
// goroutine: StartSyscallCount, then Stop.
type SyscallCounter struct {
	tool     string
	proc     *Proc  // perf or strace
	dir      string // their files
	out      string // the summary
	ctl, ack *os.File
}

// StartSyscallCount attaches tool (ToolPerf or ToolStrace) to the
// process pid and returns once it counts, so that every call the process
// makes from then on is counted until Stop.
func StartSyscallCount(ctx context.Context, tool string, pid int) (*SyscallCounter, error) {
	dir, err := os.MkdirTemp("", "gbench-syscalls-")
	if err != nil {
		return nil, fmt.Errorf("loadgen: syscall count: %w", err)
	}
	c := &SyscallCounter{tool: tool, dir: dir, out: filepath.Join(dir, "summary")}
	switch tool {
	case ToolPerf:
		err = c.startPerf(ctx, pid)
	case ToolStrace:
		err = c.startStrace(ctx, pid)
	default:
		err = fmt.Errorf("%w: unknown counter %q", ErrNoSyscallTool, tool)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("loadgen: syscall count with %s: %w", tool, err)
	}
	return c, nil
}

// startPerf runs perf stat with its events disabled and a control FIFO,
// and enables them: its acknowledgement says it counts.
func (c *SyscallCounter) startPerf(ctx context.Context, pid int) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return err
	}
	ctl, ack := filepath.Join(c.dir, "ctl"), filepath.Join(c.dir, "ack")
	for _, f := range []string{ctl, ack} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			return fmt.Errorf("mkfifo %s: %w", f, err)
		}
	}
	// Opened read-write, a FIFO does not wait for its other end.
	if c.ctl, err = os.OpenFile(ctl, os.O_RDWR, 0); err != nil {
		return err
	}
	if c.ack, err = os.OpenFile(ack, os.O_RDWR, 0); err != nil {
		return err
	}
	c.proc, err = Spawn(perf, nil, "stat", "-x,", "--no-big-num", "-e", perfEvents(),
		"-p", strconv.Itoa(pid), "-D", "-1", "--control", "fifo:"+ctl+","+ack, "-o", c.out)
	if err != nil {
		return err
	}
	return c.perfCommand(ctx, "enable")
}

// perfCommand sends perf a control command and waits for its ack.
func (c *SyscallCounter) perfCommand(ctx context.Context, cmd string) error {
	if _, err := c.ctl.WriteString(cmd + "\n"); err != nil {
		return fmt.Errorf("perf %s: %w", cmd, err)
	}
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.ack.Read(buf)
		// perf writes "ack\n" and the string's terminating NUL.
		if err == nil && string(bytes.Trim(buf[:n], "\x00\n ")) != "ack" {
			err = fmt.Errorf("perf answered %q, want ack", buf[:n])
		}
		got <- err
	}()
	bound := time.NewTimer(30 * time.Second)
	defer bound.Stop()
	var why error
	select {
	case err := <-got:
		if err != nil {
			return fmt.Errorf("perf %s: %w", cmd, err)
		}
		return nil
	case <-c.proc.Done():
		why = fmt.Errorf("perf exited: %s", c.proc.Output())
	case <-bound.C:
		why = errors.New("no ack within 30s")
	case <-ctx.Done():
		why = ctx.Err()
	}
	_ = c.ack.SetReadDeadline(time.Now()) // ends the read
	<-got
	return fmt.Errorf("perf %s: %w", cmd, why)
}

// startStrace runs strace -c -f on the process and waits until it says
// it attached (to every thread, with -f).
func (c *SyscallCounter) startStrace(ctx context.Context, pid int) error {
	strace, err := exec.LookPath("strace")
	if err != nil {
		return err
	}
	if c.proc, err = Spawn(strace, nil, "-c", "-f", "-p", strconv.Itoa(pid), "-o", c.out); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond) // polling another process's output
	defer tick.Stop()
	for !strings.Contains(c.proc.Output(), "attached") {
		select {
		case <-c.proc.Done():
			return fmt.Errorf("strace exited: %s", c.proc.Output())
		case <-ctx.Done():
			return fmt.Errorf("strace did not attach: %w: %s", ctx.Err(), c.proc.Output())
		case <-tick.C:
		}
	}
	return nil
}

// Stop stops counting, ends the counter and returns what it counted.
func (c *SyscallCounter) Stop(ctx context.Context) (Syscalls, error) {
	defer c.close()
	if c.tool == ToolPerf {
		if err := c.perfCommand(ctx, "disable"); err != nil {
			return Syscalls{}, fmt.Errorf("loadgen: syscall count: %w", err)
		}
	}
	// Both print their summary on SIGINT; strace detaches first.
	_ = syscall.Kill(c.proc.PID, syscall.SIGINT)
	bound := time.NewTimer(30 * time.Second)
	defer bound.Stop()
	select {
	case <-c.proc.Done():
	case <-bound.C:
		return Syscalls{}, fmt.Errorf("loadgen: syscall count: %s did not exit within 30s of SIGINT: %s", c.tool, c.proc.Output())
	case <-ctx.Done():
		return Syscalls{}, fmt.Errorf("loadgen: syscall count: %w", ctx.Err())
	}
	b, err := os.ReadFile(c.out)
	if err != nil {
		return Syscalls{}, fmt.Errorf("loadgen: syscall count: %s summary: %w: %s", c.tool, err, c.proc.Output())
	}
	var s Syscalls
	if c.tool == ToolPerf {
		s, err = parsePerfStat(b)
	} else {
		s, err = parseStraceSummary(b)
	}
	if err != nil {
		return s, fmt.Errorf("loadgen: syscall count: %w", err)
	}
	return s, nil
}

// close stops the counter's process, if it still runs, and removes its
// files.
func (c *SyscallCounter) close() {
	if c.proc != nil {
		c.proc.Stop()
	}
	for _, f := range []*os.File{c.ctl, c.ack} {
		if f != nil {
			_ = f.Close()
		}
	}
	_ = os.RemoveAll(c.dir)
}

// errSummary reports a counter's summary that cannot be read.
var errSummary = errors.New("bad syscall summary")

// parsePerfStat reads `perf stat -x,` output on syscall tracepoints:
// lines "count,unit,event,..."; "<not counted>" and "<not supported>"
// count nothing. raw_syscalls:sys_enter is the total; the names of
// syscalls:sys_enter_* lose their prefix. Without the total, the total
// is the sum.
func parsePerfStat(b []byte) (Syscalls, error) {
	s := Syscalls{Tool: ToolPerf, Counts: map[string]int64{}}
	events, total := 0, int64(-1)
	var named int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 || !strings.Contains(f[2], ":") {
			continue // perf's own messages
		}
		events++
		if strings.HasPrefix(f[0], "<") {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return s, fmt.Errorf("%w: perf line %q", errSummary, line)
		}
		if f[2] == "raw_syscalls:sys_enter" {
			total = n
			continue
		}
		_, name, _ := strings.Cut(f[2], ":")
		name = strings.TrimPrefix(name, "sys_enter_")
		if name == "" {
			return s, fmt.Errorf("%w: perf line %q", errSummary, line)
		}
		s.Counts[name] += n
		named += n
	}
	if events == 0 {
		return s, fmt.Errorf("%w: no perf event lines", errSummary)
	}
	s.Total = max(total, named)
	return s, nil
}

// parseStraceSummary reads the table of `strace -c`: "% time seconds
// usecs/call calls [errors] syscall" rows between dashed lines, a total
// row last; each personality (64-bit, 32-bit) has its own table. strace
// writes nothing when it saw no call complete.
func parseStraceSummary(b []byte) (Syscalls, error) {
	s := Syscalls{Tool: ToolStrace, Counts: map[string]int64{}}
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	totals := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || len(f) > 6 {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue // the header, dashes, "System call usage summary ..."
		}
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || n < 0 {
			return s, fmt.Errorf("%w: strace row %q", errSummary, sc.Text())
		}
		name := f[len(f)-1]
		if name == "total" {
			totals++
			continue
		}
		s.Counts[name] += n
		s.Total += n
	}
	if totals == 0 {
		return s, fmt.Errorf("%w: no strace total row", errSummary)
	}
	return s, nil
}
