package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/gworkerd/gworkerd/internal/loadgen"
)

// Scenarios 10 and 11 measure what a foreground job costs the server:
// processor time (user+sys from /proc/<pid>/stat around a closed-loop run
// like 1a's), and system calls, counted by perf or strace attached to the
// server during a short run of its own. A counter slows the server (strace
// stops it twice per call), so that run's rate is no throughput figure,
// and how the server batches under it may differ a little.

// syscallsScenario is the system call count's id.
const syscallsScenario = "11"

// syscallTop is how many system calls the notes name per server.
const syscallTop = 5

func (b *bench) cpu(ctx context.Context, t target) []cell {
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(1, t.name, err)
	}
	defer p.Stop()
	before, err := p.CPU()
	if err != nil {
		return failed(1, err)
	}
	l := b.loads.cpu
	r, runErr := loadgen.Foreground(ctx, p.Addr, l)
	after, err := p.CPU()
	if err != nil {
		return failed(1, err)
	}
	c := rateCell(r, runErr, "jobs") // OK, Partial, Err and the counts
	used := after.Sub(before)
	c.Value = perThousand(used.Total(), r.Jobs)
	c.Note = fmt.Sprintf("%s at %.0f jobs/s, %d clients, %d workers", cpuNote(used, r.Jobs), r.Rate(), l.Conns, l.Workers)
	if r.TimeBound {
		c.Note += fmt.Sprintf(", stopped by the time bound (%v) before %d jobs", l.Duration, l.Jobs)
	}
	if runErr != nil && c.OK {
		c.Note += "; incomplete: " + runErr.Error()
	}
	return []cell{c}
}

// toolChoice is scenario 11's counter, chosen once.
type toolChoice struct {
	tool string
	err  error // why there is none
}

func (b *bench) chooseSyscallTool(ctx context.Context) *toolChoice {
	if b.syscallTool == nil {
		b.syscallTool = &toolChoice{}
		if b.cfg.syscallTool == "none" {
			b.syscallTool.err = fmt.Errorf("-syscall-tool none")
		} else {
			b.syscallTool.tool, b.syscallTool.err = loadgen.SyscallTool(ctx, b.cfg.syscallTool)
		}
	}
	return b.syscallTool
}

func (b *bench) syscalls(ctx context.Context, t target) []cell {
	tc := b.chooseSyscallTool(ctx)
	if tc.err != nil {
		return notRun(1, "system calls cannot be counted here: "+tc.err.Error())
	}
	p, err := b.start(ctx, t, t.memArgs)
	if err != nil {
		return noStart(1, t.name, err)
	}
	defer p.Stop()
	counter, err := loadgen.StartSyscallCount(ctx, tc.tool, p.PID)
	if err != nil {
		// Installed but not allowed (ptrace, perf_event_paranoid): the
		// figure is unavailable, the bench goes on.
		return notRun(1, err.Error())
	}
	l := b.loads.syscalls
	r, runErr := loadgen.Foreground(ctx, p.Addr, l)
	s, err := counter.Stop(ctx)
	if err != nil {
		return failed(1, err)
	}
	c := rateCell(r, runErr, "jobs")
	if !c.OK {
		return []cell{c}
	}
	jobs := float64(r.Jobs)
	c.Value = float64(s.Total) / jobs
	c.PerJob = map[string]float64{}
	all := s.Top(len(s.Counts) + 1) // every call, and the rest as "other"
	var top []string
	for i, sc := range all {
		v := float64(sc.Count) / jobs
		c.PerJob[sc.Name] = v
		if i < syscallTop {
			top = append(top, fmt.Sprintf("%s %s", sc.Name, formatValue(v)))
		}
	}
	c.Note = fmt.Sprintf("%d calls by %s over %d jobs, %d clients, %d workers, per job: %s; the run took %s under the counter (not a throughput figure)",
		s.Total, s.Tool, r.Jobs, l.Conns, l.Workers, strings.Join(top, ", "), r.Elapsed.Round(1e6))
	if r.TimeBound {
		c.Note += fmt.Sprintf(", stopped by the time bound (%v) before %d jobs", l.Duration, l.Jobs)
	}
	if runErr != nil {
		c.Note += "; incomplete: " + runErr.Error()
	}
	return []cell{c}
}
