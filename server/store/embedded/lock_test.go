package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// holdStore is the helper process of TestOpenLockedNamesHolder: it opens
// the store in dir, says so on stdout and keeps it open until its stdin
// closes.
func holdStore(dir string) {
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("open")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = s.Close()
}

// TestOpenLockedNamesHolder opens a store another process has open: Open
// fails with a *LockedError naming that process's pid, matching EAGAIN.
func TestOpenLockedNamesHolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GWORKERD_EMBEDDED_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "open\n" {
		t.Fatalf("helper said %q, %v; want open", line, err)
	}

	s, err := Open(context.Background(), Options{Dir: dir})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a store another process holds succeeded")
	}
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Open = %v, want a *LockedError", err)
	}
	if le.PID != cmd.Process.Pid {
		t.Errorf("LockedError.PID = %d, want the holder's %d", le.PID, cmd.Process.Pid)
	}
	if !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("Open = %v, want it to match EAGAIN", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("process %d", cmd.Process.Pid)) || strings.Contains(msg, "\n") {
		t.Errorf("message %q: want one line naming process %d", msg, cmd.Process.Pid)
	}
}

func TestParseProcLocks(t *testing.T) {
	t.Parallel()
	const text = `1: POSIX  ADVISORY  WRITE 30368 fe:00:869732 0 EOF
2: -> POSIX  ADVISORY  WRITE 777 fe:00:778595 0 EOF
2: POSIX  ADVISORY  WRITE 3829 fe:00:778595 0 EOF
3: OFDLCK ADVISORY  WRITE -1 08:11:5 0 EOF
4: FLOCK  ADVISORY  WRITE 0 08:11:6 0 EOF
5: POSIX  ADVISORY  WRITE 12 103:1a:7 0 EOF
`
	tests := []struct {
		major, minor uint32
		ino          uint64
		pid          int
		ok           bool
	}{
		{0xfe, 0, 869732, 30368, true},
		{0xfe, 0, 778595, 3829, true}, // the waiter is skipped
		{0x8, 0x11, 5, 0, false},      // OFD: no pid
		{0x8, 0x11, 6, 0, false},      // another pid namespace
		{0x103, 0x1a, 7, 12, true},
		{0xfe, 0, 1, 0, false},
		{0xfd, 0, 869732, 0, false},
	}
	for _, tt := range tests {
		pid, ok := parseProcLocks(strings.NewReader(text), tt.major, tt.minor, tt.ino)
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("parseProcLocks(%x:%x:%d) = %d, %v; want %d, %v", tt.major, tt.minor, tt.ino, pid, ok, tt.pid, tt.ok)
		}
	}
	long := strings.Repeat("x", 300) + "\n1: POSIX  ADVISORY  WRITE 5 fe:00:1 0 EOF\n"
	if pid, ok := parseProcLocks(strings.NewReader(long), 0xfe, 0, 1); ok {
		t.Errorf("after an overlong line: pid %d found, want the scan to stop", pid)
	}
}

// FuzzParseProcLocks: any text is parsed without panic, and a found pid
// is positive.
func FuzzParseProcLocks(f *testing.F) {
	f.Add([]byte("1: POSIX  ADVISORY  WRITE 3829 fe:00:778595 0 EOF\n"), uint32(0xfe), uint32(0), uint64(778595))
	f.Add([]byte("2: -> POSIX ADVISORY WRITE 7 1:2:3 0 EOF\n"), uint32(1), uint32(2), uint64(3))
	f.Fuzz(func(t *testing.T, text []byte, major, minor uint32, ino uint64) {
		pid, ok := parseProcLocks(strings.NewReader(string(text)), major, minor, ino)
		if ok && pid <= 0 {
			t.Fatalf("pid %d found", pid)
		}
	})
}
