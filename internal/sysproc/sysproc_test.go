package sysproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	daemon "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"
)

// envHelper selects what a re-executed daemon of TestDaemonStart does.
const envHelper = "SYSPROC_TEST_DAEMON"

func TestMain(m *testing.M) {
	if IsChild(os.LookupEnv) {
		os.Exit(daemonHelper(os.Getenv(envHelper)))
	}
	os.Exit(m.Run())
}

// daemonHelper is the re-executed daemon of TestDaemonStart.
func daemonHelper(mode string) int {
	d := &Daemon{Name: "sysproctest", PidFile: os.Getenv(envHelper + "_PIDFILE")}
	c, err := d.Child(os.LookupEnv)
	if err != nil {
		return 1
	}
	defer c.Release()
	for _, v := range []string{readyEnv, daemon.MARK_NAME} {
		if _, ok := os.LookupEnv(v); ok {
			c.Ready(fmt.Errorf("%s still set in the daemon: its children would take it for theirs", v))
			return 1
		}
	}
	switch mode {
	case "ok":
		c.Ready(nil)
		c.Ready(errors.New("a second report is not sent"))
		// Serve until the test signals us; the pid file stays locked.
		time.Sleep(time.Minute) // the daemon's work: the test kills it
		return 0
	case "fail":
		c.Ready(errors.New("cannot bind 127.0.0.1:1\nsecond line"))
		return 1
	default: // exits without a report
		return 3
	}
}

func TestLockPidFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := LockPidFile(filepath.Join(dir, "missing", "d.pid")); err == nil {
		t.Error("a pid file in a missing directory was created; gearmand refuses it")
	}
	path := filepath.Join(dir, "d.pid")
	pf, err := LockPidFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file holds %q, want our pid %d", got, os.Getpid())
	}
	_, err = LockPidFile(path)
	var re *RunningError
	if !errors.As(err, &re) || re.Pid != os.Getpid() || re.File != path {
		t.Fatalf("second lock: %v, want a RunningError naming pid %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), "locked by running process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("message %q does not name the pid", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a failed lock removed the running process's pid file: %v", err)
	}
	if err := pf.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there after Remove: %v", err)
	}
	var nilPF *PidFile
	if err := nilPF.Remove(); err != nil {
		t.Errorf("nil Remove: %v", err)
	}
}

func TestLockHolder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.pid")
	if pid, err := LockHolder(ctx, missing, ""); pid != 0 || err != nil {
		t.Errorf("missing file: %d, %v; want 0, nil", pid, err)
	}
	stale := filepath.Join(dir, "stale.pid")
	if err := os.WriteFile(stale, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, err := LockHolder(ctx, stale, ""); pid != 0 || err != nil {
		t.Errorf("unlocked file naming pid 1: %d, %v; want 0, nil", pid, err)
	}

	held := filepath.Join(dir, "held.pid")
	pf, err := LockPidFile(held)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Remove()
	if pid, err := LockHolder(ctx, held, filepath.Join(dir, "no.sock")); pid != os.Getpid() || err != nil {
		t.Errorf("locked by us: %d, %v; want %d", pid, err, os.Getpid())
	}
	// A forged text: the lock is ours, the file names pid 1.
	if err := os.WriteFile(held, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, err := LockHolder(ctx, held, "")
	var nh *NotHolderError
	if pid != 0 || !errors.As(err, &nh) || nh.TextPid != 1 {
		t.Errorf("forged pid file: %d, %v; want 0 and a NotHolderError naming 1", pid, err)
	}
}

func TestAlive(t *testing.T) {
	t.Parallel()
	if !Alive(os.Getpid()) {
		t.Error("Alive(self) = false")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// A zombie until waited for: wait for it to exit without reaping.
	deadline := time.Now().Add(30 * time.Second)
	for !isZombie(pid) {
		if time.Now().After(deadline) {
			t.Fatal("child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond) // polling the child's state
	}
	if Alive(pid) {
		t.Error("Alive(zombie) = true")
	}
	_ = cmd.Wait()
	if Alive(pid) {
		t.Error("Alive(reaped) = true")
	}
}

func isZombie(pid int) bool {
	var info unix.Siginfo
	// WNOWAIT leaves the child a zombie.
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil && info.Signo != 0
}

func TestInheritNothing(t *testing.T) {
	t.Parallel()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// os.Open sets close-on-exec; clear it as go-daemon leaves its files.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	if err := InheritNothing(); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("descriptor still inherited after InheritNothing")
	}
}

func TestSetFileLimit(t *testing.T) {
	t.Parallel()
	cur, err := FileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if err := SetFileLimit(int(cur)); err != nil {
		t.Fatalf("setting the current limit again: %v", err)
	}
	if got, _ := FileLimit(); got != cur {
		t.Errorf("limit %d after setting %d", got, cur)
	}
}

func TestLogFileReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	var opened int
	lf, err := OpenLog(path, nil, func(*os.File) error { opened++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(lf, "before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(lf, "after")
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{path + ".1": "before\n", path: "after\n"} {
		if b, _ := os.ReadFile(file); string(b) != want {
			t.Errorf("%s holds %q, want %q", filepath.Base(file), b, want)
		}
	}
	if opened != 2 {
		t.Errorf("onOpen called %d times, want 2", opened)
	}
	var sb strings.Builder
	se, _ := OpenLog("stderr", &sb, nil)
	fmt.Fprint(se, "x")
	if err := se.Reopen(); err != nil || sb.String() != "x" {
		t.Errorf("stderr target: %q, %v", sb.String(), err)
	}
	if _, err := OpenLog(filepath.Join(dir, "no", "dir.log"), nil, nil); err == nil {
		t.Error("a log file in a missing directory opened")
	}
}

// TestDaemonStart re-executes this test binary as a daemon and checks
// each way a start can end: serving, a reported error, an exit without a
// report, and a pid file already locked.
func TestDaemonStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode, wantErr string
	}{
		{"ok", ""},
		{"fail", "cannot bind 127.0.0.1:1 second line"},
		{"exit", "sysproctest (pid "},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			pidFile := filepath.Join(dir, tc.mode+".pid")
			t.Setenv(envHelper, tc.mode)
			t.Setenv(envHelper+"_PIDFILE", pidFile)
			d := &Daemon{Name: "sysproctest", PidFile: pidFile, Args: []string{os.Args[0], "-test.run=^$"}}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pid, err := d.Start(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Start: %v, want an error containing %q", err, tc.wantErr)
				}
				var exited *ExitedError
				if got := errors.As(err, &exited); got != (tc.mode == "exit") {
					t.Errorf("Start: %v is an ExitedError: %v, want %v", err, got, tc.mode == "exit")
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer func() { _ = unix.Kill(pid, unix.SIGKILL) }()
			if got, err := LockHolder(ctx, pidFile, ""); got != pid || err != nil {
				t.Errorf("pid file held by %d (%v), want the daemon %d", got, err, pid)
			}
			_, err = d.Start(ctx)
			var re *RunningError
			if !errors.As(err, &re) || re.Pid != pid {
				t.Errorf("second start: %v, want a RunningError naming %d", err, pid)
			}
		})
	}
}
