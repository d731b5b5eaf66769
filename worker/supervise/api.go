package supervise

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
)

// ChildStatus is the state of one child slot.
type ChildStatus struct {
	Function string `json:"function"`
	ID       int    `json:"id"`
	Pid      int    `json:"pid"`
	// Command: the child is a plain program (FunctionSpec.Command); its
	// jobs are unknown and its memory is read by the master.
	Command    bool          `json:"command,omitempty"`
	State      State         `json:"state"`
	Uptime     time.Duration `json:"uptime_ns"`
	JobsDone   int           `json:"jobs_done"`
	Failures   int           `json:"failures"`
	CurrentJob string        `json:"current_job,omitempty"`
	JobAge     time.Duration `json:"job_age_ns,omitempty"`
	// RSS is the child's memory in bytes, measured as Status.Memory
	// says.
	RSS      int64  `json:"rss"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit,omitempty"`
	Recycle  string `json:"recycle,omitempty"`
}

// FunctionStatus is the state of one function.
type FunctionStatus struct {
	Function string `json:"function"`
	Desired  int    `json:"desired"`
	Min      int    `json:"min,omitempty"`
	Max      int    `json:"max,omitempty"`
	Stopped  bool   `json:"stopped,omitempty"`
}

// Status is a snapshot of the supervisor.
type Status struct {
	// Memory says how the memory of a child (ChildStatus.RSS, and
	// memory_limit) is measured: "cgroup v1 <dir>" or "cgroup v2 <dir>"
	// (the working set of each child's cgroup, under dir), or "process
	// tree" (the RSS of its process tree) with why no cgroup is used.
	Memory    string           `json:"memory_accounting"`
	Functions []FunctionStatus `json:"functions"`
	Children  []ChildStatus    `json:"children"`
}

// Status returns a snapshot, sorted by function and child.
func (s *Supervisor) Status(ctx context.Context) (Status, error) {
	st := Status{Memory: s.memoryAccounting()}
	err := s.call(ctx, func() error {
		now := s.clk.Now()
		for _, g := range s.groups {
			fs := FunctionStatus{Function: g.spec.Name, Desired: g.desired, Stopped: g.stopped}
			if g.spec.autoscaled() {
				fs.Min, fs.Max = g.spec.Min, g.spec.Max
			}
			if g.stopped || g.removed {
				fs.Desired = 0
			}
			st.Functions = append(st.Functions, fs)
			for _, c := range g.children {
				cs := ChildStatus{
					Function: g.spec.Name, ID: c.id, Command: c.command, State: c.state, JobsDone: c.jobsDone, Failures: c.failures,
					RSS: c.rss, Restarts: c.restarts, LastExit: c.lastExit, Recycle: c.recycleWhy,
				}
				if c.proc != nil {
					cs.Pid = c.pid
					cs.Uptime = now.Sub(c.started)
				}
				var oldest time.Time
				for h, since := range c.current {
					if oldest.IsZero() || since.Before(oldest) || (since.Equal(oldest) && h < cs.CurrentJob) {
						oldest, cs.CurrentJob = since, h
					}
				}
				if !oldest.IsZero() {
					cs.JobAge = now.Sub(oldest)
				}
				st.Children = append(st.Children, cs)
			}
		}
		return nil
	})
	sort.Slice(st.Functions, func(i, j int) bool { return st.Functions[i].Function < st.Functions[j].Function })
	sort.Slice(st.Children, func(i, j int) bool {
		a, b := st.Children[i], st.Children[j]
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		return a.ID < b.ID
	})
	return st, err
}

// Reload replaces the set of functions: new ones start, removed ones stop
// (each child finishes its job), changed ones are replaced one child at
// a time, each new child running before the old one is asked to stop.
// A change of the numbers of children only scales.
func (s *Supervisor) Reload(ctx context.Context, specs []FunctionSpec) error {
	if err := validate("reload", specs, s.opts); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, f := range specs {
		seen[f.Name] = true
	}
	return s.call(ctx, func() error {
		if s.stopping {
			return ErrNotRunning
		}
		for name, g := range s.groups {
			if !seen[name] && !g.removed {
				g.removed = true
				s.log.WithField("function", name).Info("function removed from the config: stopping it")
				for _, c := range append([]*child(nil), g.children...) {
					s.retire(c, "function removed")
				}
				if len(g.children) == 0 {
					delete(s.groups, name)
				}
			}
		}
		for _, f := range specs {
			g, ok := s.groups[f.Name]
			if !ok || g.removed {
				if ok { // still draining: its children go on exiting
					delete(s.groups, f.Name)
					g2 := s.addGroup(f)
					for _, c := range g.children {
						c.g = g2
					}
					g2.children = append(g.children, g2.children...)
					continue
				}
				s.addGroup(f)
				continue
			}
			changed := !sameChildren(g.spec, f)
			g.spec = f
			if changed {
				g.gen++
				s.log.WithFields(logrus.Fields{"function": f.Name, "generation": g.gen}).Info("function changed: rolling replacement")
			}
			if f.autoscaled() {
				g.desired = min(max(g.desired, f.Min), f.Max)
			} else {
				g.desired = f.Count
			}
			s.reconcile(g)
		}
		return nil
	})
}

func (s *Supervisor) group(name string) (*group, error) {
	g, ok := s.groups[name]
	if !ok || g.removed {
		return nil, fmt.Errorf("%w: %q", ErrUnknownFunction, name)
	}
	return g, nil
}

// StartFunction starts a function stopped by StopFunction, and takes its
// fatal children out of the fatal state.
func (s *Supervisor) StartFunction(ctx context.Context, name string) error {
	return s.call(ctx, func() error {
		g, err := s.group(name)
		if err != nil {
			return err
		}
		g.stopped = false
		for _, c := range append([]*child(nil), g.children...) {
			if c.state == StateFatal {
				c.attempt = 0
				s.spawn(c)
			}
		}
		s.reconcile(g)
		return nil
	})
}

// StopFunction stops every child of a function (each finishes its job).
func (s *Supervisor) StopFunction(ctx context.Context, name string) error {
	return s.call(ctx, func() error {
		g, err := s.group(name)
		if err != nil {
			return err
		}
		g.stopped = true
		for _, c := range append([]*child(nil), g.children...) {
			s.retire(c, "stopped by request")
		}
		return nil
	})
}

// RestartFunction replaces the children of a function one at a time.
func (s *Supervisor) RestartFunction(ctx context.Context, name string) error {
	return s.call(ctx, func() error {
		g, err := s.group(name)
		if err != nil {
			return err
		}
		g.gen++
		g.stopped = false
		s.reconcile(g)
		return nil
	})
}

// Scale sets the number of children of a function. For an autoscaled
// function it sets the current number, kept within [Min, Max] widened to
// include n. Beyond Options.MaxChildrenPerFunction or MaxChildren it
// changes nothing and returns a *LimitError.
func (s *Supervisor) Scale(ctx context.Context, name string, n int) error {
	if n < 0 {
		return fmt.Errorf("supervise: scale %q: negative count %d", name, n)
	}
	if limit := s.opts.MaxChildrenPerFunction; limit > 0 && n > limit {
		return &LimitError{Function: name, N: n, Limit: LimitPerFunction, Max: limit}
	}
	return s.call(ctx, func() error {
		g, err := s.group(name)
		if err != nil {
			return err
		}
		if limit := s.opts.MaxChildren; limit > 0 {
			// Every function at its most, stopped ones too (a start
			// brings them back); this one at n, or its range widened to
			// include n.
			total := 0
			for _, o := range s.groups {
				switch {
				case o == g && g.spec.autoscaled():
					total += max(n, g.spec.Max)
				case o == g:
					total += n
				case !o.removed:
					total += o.spec.children()
				}
			}
			if total > limit {
				return &LimitError{Function: name, N: n, Limit: LimitTotal, Max: limit, Total: total}
			}
		}
		if g.spec.autoscaled() {
			g.spec.Min = min(g.spec.Min, n)
			g.spec.Max = max(g.spec.Max, n)
		} else {
			g.spec.Count = n
		}
		g.desired = n
		s.log.WithFields(logrus.Fields{"function": name, "count": n}).Info("scaled by request")
		s.reconcile(g)
		return nil
	})
}
