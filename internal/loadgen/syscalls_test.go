package loadgen

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

// Output of the tools as they print it (strace 6.1, perf 6.1).
const (
	straceSample = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 33.58    0.002255          75        30           mmap
 13.15    0.000883          22        39        19 openat
  2.37    0.000159          22         7           read
  0.95    0.000064          32         2         2 statfs
------ ----------- ----------- --------- --------- ----------------
100.00    0.006716          45        78        21 total
`
	strace32Sample = straceSample + `System call usage summary for 32 bit mode:
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010          10         1           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010          10         1           total
`
	perfSample = `# started on Mon Dec  7 23:49:08 2026

120,,raw_syscalls:sys_enter,4993303,100.00,,
7,,syscalls:sys_enter_read,4993303,100.00,,
1,,syscalls:sys_enter_write,4993303,100.00,,
<not counted>,,syscalls:sys_enter_fork,0,100.00,,
<not supported>,,syscalls:sys_enter_iopl,0,100.00,,
0,,syscalls:sys_enter_futex,4993303,100.00,,
34,,syscalls:sys_enter_openat,4993303,100.00,,
`
)

func TestParseSyscallSummaries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		parse   func([]byte) (Syscalls, error)
		in      string
		want    map[string]int64
		total   int64
		wantErr bool
	}{
		{"strace", parseStraceSummary, straceSample, map[string]int64{"mmap": 30, "openat": 39, "read": 7, "statfs": 2}, 78, false},
		{"strace two personalities", parseStraceSummary, strace32Sample, map[string]int64{"mmap": 30, "openat": 39, "read": 8, "statfs": 2}, 79, false},
		{"strace without total", parseStraceSummary, "% time seconds usecs/call calls errors syscall\n 1.00 0.1 1 5 read\n", nil, 0, true},
		{"strace bad count", parseStraceSummary, " 1.00 0.1 1 x read\n100.00 0.1 1 5 total\n", nil, 0, true},
		{"strace saw no call", parseStraceSummary, "\n", map[string]int64{}, 0, false},
		{"perf", parsePerfStat, perfSample, map[string]int64{"read": 7, "write": 1, "futex": 0, "openat": 34}, 120, false},
		{"perf without the total", parsePerfStat, "3,,syscalls:sys_enter_read,1,100.00,,\n4,,syscalls:sys_enter_futex,1,100.00,,\n", map[string]int64{"read": 3, "futex": 4}, 7, false},
		{"perf nothing", parsePerfStat, "# started on Mon\n\n", nil, 0, true},
		{"perf bad count", parsePerfStat, "x7,,syscalls:sys_enter_read,1,100.00,,\n", nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.parse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("got err %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errSummary) {
					t.Errorf("got %v, want errSummary", err)
				}
				return
			}
			if !maps.Equal(got.Counts, tc.want) || got.Total != tc.total {
				t.Errorf("got %v total %d, want %v total %d", got.Counts, got.Total, tc.want, tc.total)
			}
		})
	}
}

func TestSyscallsTop(t *testing.T) {
	t.Parallel()
	counts := map[string]int64{"read": 10, "write": 10, "futex": 30, "close": 1, "mmap": 0}
	tests := []struct {
		name  string
		total int64
		n     int
		want  []SyscallCount
	}{
		{"named only", 51, 3, []SyscallCount{{"futex", 30}, {"read", 10}, {"write", 10}}},
		{"uncalled left out", 51, 10, []SyscallCount{{"futex", 30}, {"read", 10}, {"write", 10}, {"close", 1}}},
		{"the rest as other", 71, 2, []SyscallCount{{"futex", 30}, {OtherSyscalls, 20}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Syscalls{Total: tc.total, Counts: counts}.Top(tc.n)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Top(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func fuzzSummary(f *testing.F, parse func([]byte) (Syscalls, error), seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parse(b)
		if err != nil {
			return
		}
		var named int64
		for name, n := range s.Counts {
			if n < 0 || name == "" {
				t.Errorf("parse(%q): count %q = %d", b, name, n)
			}
			named += n
		}
		if s.Total < named {
			t.Errorf("parse(%q): total %d below the named calls' %d", b, s.Total, named)
		}
	})
}

func FuzzParseStraceSummary(f *testing.F) {
	fuzzSummary(f, parseStraceSummary, straceSample, strace32Sample)
}

func FuzzParsePerfStat(f *testing.F) { fuzzSummary(f, parsePerfStat, perfSample) }

// TestSyscallCountAgainstGearmand counts the system calls of a real
// gearmand with each tool while a client makes ECHO round trips: each
// costs the server at least a read and a write.
func TestSyscallCountAgainstGearmand(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{ToolPerf, ToolStrace} {
		t.Run(tool, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := SyscallTool(ctx, tool); err != nil {
				t.Skipf("%s cannot count system calls on this machine: %v", tool, err)
			}
			p := startGearmand(t)
			c, err := dial(ctx, p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			sc, err := StartSyscallCount(ctx, tool, p.PID)
			if err != nil {
				t.Fatal(err)
			}
			const echoes = 300
			for range echoes {
				if err := c.echo(); err != nil {
					t.Fatal(err)
				}
			}
			s, err := sc.Stop(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tool != tool {
				t.Errorf("got tool %q, want %q", s.Tool, tool)
			}
			if s.Total < 2*echoes {
				t.Errorf("counted %d system calls (%v), want at least %d for %d ECHO round trips", s.Total, s.Counts, 2*echoes, echoes)
			}
			if top := s.Top(5); len(top) == 0 || top[0].Count < echoes {
				t.Errorf("top 5 %v: want the first called at least %d times", top, echoes)
			}
			// gearmand still answers: the counter detached cleanly.
			if err := c.echo(); err != nil {
				t.Errorf("echo after the count: %v", err)
			}
		})
	}
}

func TestSyscallToolUnknown(t *testing.T) {
	t.Parallel()
	if _, err := SyscallTool(context.Background(), "dtrace"); !errors.Is(err, ErrNoSyscallTool) {
		t.Errorf("SyscallTool(dtrace): got %v, want ErrNoSyscallTool", err)
	}
}
