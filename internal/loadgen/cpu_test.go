package loadgen

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// Fields after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime cutime cstime ...
	const rest = " S 1 2 3 0 -1 4194560 100 0 0 0 %s 7 0 20 0 8 0 100 0 0\n"
	tests := []struct {
		name    string
		line    string
		want    CPUTime
		wantErr bool
	}{
		{"plain", "123 (gearmand)" + strings.Replace(rest, "%s", "250 31", 1), CPUTime{2500 * time.Millisecond, 310 * time.Millisecond}, false},
		{"name with spaces and parens", "9 (a) b (c)" + strings.Replace(rest, "%s", "1 2", 1), CPUTime{10 * time.Millisecond, 20 * time.Millisecond}, false},
		{"zero", "1 (x)" + strings.Replace(rest, "%s", "0 0", 1), CPUTime{}, false},
		{"no name", "1 x S 1 2", CPUTime{}, true},
		{"too short", "1 (x) S 1 2 3 0 -1 4194560 100 0 0 0 5", CPUTime{}, true},
		{"not a number", "1 (x)" + strings.Replace(rest, "%s", "5 x", 1), CPUTime{}, true},
		{"negative", "1 (x)" + strings.Replace(rest, "%s", "-5 1", 1), CPUTime{}, true},
		{"out of range", "1 (x)" + strings.Replace(rest, "%s", "9223372036854775807 1", 1), CPUTime{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatCPU([]byte(tc.line))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStatCPU(%q): got err %v, want error %v", tc.line, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, errStat) {
				t.Errorf("got %v, want errStat", err)
			}
			if got != tc.want {
				t.Errorf("parseStatCPU(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
}

func FuzzParseStatCPU(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("1 (x) S 1 2 3 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 8 0 100 0 0"))
	f.Add([]byte("1 ()) R 1 2 3 0 -1 0 0 0 0 0 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseStatCPU(b)
		if err != nil {
			if c != (CPUTime{}) {
				t.Errorf("error %v with a reading %+v", err, c)
			}
			return
		}
		if c.User < 0 || c.System < 0 || c.User%CPUResolution != 0 || c.System%CPUResolution != 0 {
			t.Errorf("parseStatCPU(%q) = %+v, want whole non-negative ticks", b, c)
		}
	})
}

// TestProcCPU reads the test's own processor time while it spins, and
// checks it against getrusage, which counts the same from the kernel's
// other side.
func TestProcCPU(t *testing.T) {
	p := &Proc{PID: os.Getpid()}
	before, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	x := 0
	for {
		for i := range 1_000_000 {
			x += i ^ x
		}
		now, err := p.CPU()
		if err != nil {
			t.Fatal(err)
		}
		if now.Sub(before).User >= 100*time.Millisecond {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("user time grew %v in 60s of spinning (%d), want 100ms", now.Sub(before).User, x)
		}
	}
	got, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// Read one after the other, with rounding to ticks on each side.
	if d := want - got.Total(); d < 0 || d > 100*time.Millisecond {
		t.Errorf("CPU total %v, getrusage %v: want getrusage at most 100ms above", got.Total(), want)
	}
}
