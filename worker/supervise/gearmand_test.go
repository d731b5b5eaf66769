package supervise

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// workerSpec is a function served by helper workers on the given server.
func workerSpec(name, server string) FunctionSpec {
	return helperSpec(name, "worker", "GWORKERD_TEST_SERVER="+server)
}

// Recycling by max_jobs and by memory_limit happens between jobs: no job
// fails, and the children are replaced.
func TestRecyclingBetweenJobs(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	byJobs := workerSpec("byjobs", gd.Addr)
	byJobs.MaxJobs = 3
	byMem := workerSpec("bymem", gd.Addr)
	byMem.MemoryLimit = 60 << 20
	s, _ := run(t, Options{Functions: []FunctionSpec{byJobs, byMem}})
	waitFor(t, 10*time.Second, "children running", func() bool {
		return len(running(t, s, "byjobs")) == 1 && len(running(t, s, "bymem")) == 1
	})
	firstJobs, firstMem := running(t, s, "byjobs")[0], running(t, s, "bymem")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var jobs []string
	for i := 0; i < 10; i++ {
		jobs = append(jobs, "sleep:50ms")
	}
	// Sequential submissions so that each lands between recycles too.
	seen := map[int]bool{}
	for i, d := range jobs {
		if _, err := submit(ctx, gd.Addr, "byjobs", d, false); err != nil {
			t.Fatalf("byjobs job %d failed: %v", i, err)
		}
		for _, c := range children(t, s, "byjobs") {
			if c.Pid != 0 {
				seen[c.Pid] = true
			}
			if c.JobsDone > byJobs.MaxJobs+1 {
				t.Errorf("child %d did %d jobs, max_jobs %d", c.Pid, c.JobsDone, byJobs.MaxJobs)
			}
		}
	}
	if len(seen) < 3 {
		t.Errorf("10 jobs with max_jobs 3 ran on %d children, want at least 3", len(seen))
	}
	// Each mem job grows the child by 25MB: the limit of 60MB is crossed
	// after a few jobs, and the child is replaced.
	for i := 0; i < 6; i++ {
		if _, err := submit(ctx, gd.Addr, "bymem", "mem:25", false); err != nil {
			t.Fatalf("bymem job %d failed: %v", i, err)
		}
	}
	waitFor(t, 10*time.Second, "the memory-hungry child replaced", func() bool {
		r := running(t, s, "bymem")
		return len(r) == 1 && r[0] != firstMem && len(children(t, s, "bymem")) == 1
	})
	if alive(firstMem) {
		t.Errorf("recycled child %d still alive", firstMem)
	}
	if r := running(t, s, "byjobs"); len(r) != 1 || r[0] == firstJobs {
		t.Errorf("byjobs children %v, first %d", r, firstJobs)
	}
	for _, fn := range []string{"byjobs", "bymem"} {
		for _, c := range children(t, s, fn) {
			if c.Restarts != 0 {
				t.Errorf("%s: %d restarts, recycling is not a failure", fn, c.Restarts)
			}
		}
	}
}

// Autoscaling: from min to max under a backlog, back to min when idle.
func TestAutoscale(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	f := workerSpec("scaled", gd.Addr)
	f.Min, f.Max, f.MaxIdle = 1, 4, 500*time.Millisecond
	s, _ := run(t, Options{
		Functions:     []FunctionSpec{f},
		Backlog:       AdminBacklog([]string{gd.Addr}, time.Second),
		ScaleInterval: 200 * time.Millisecond,
		TickInterval:  100 * time.Millisecond,
	})
	waitFor(t, 10*time.Second, "min children", func() bool { return len(running(t, s, "scaled")) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 12; i++ {
		if _, err := submit(ctx, gd.Addr, "scaled", "sleep:700ms", true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "max children under the backlog", func() bool { return len(running(t, s, "scaled")) == 4 })
	if n := len(children(t, s, "scaled")); n > 4 {
		t.Errorf("%d children, max is 4", n)
	}
	waitFor(t, 20*time.Second, "back to min when idle", func() bool {
		c := children(t, s, "scaled")
		return len(running(t, s, "scaled")) == 1 && len(c) == 1
	})
	done := 0
	for _, c := range children(t, s, "scaled") {
		done += c.JobsDone
	}
	t.Logf("the remaining child did %d jobs", done)
}

// SIGKILL of a child in the middle of a job: the server requeues the job
// and the new child completes it.
func TestKilledChildJobIsRedone(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	s, _ := run(t, Options{Functions: []FunctionSpec{workerSpec("slow", gd.Addr)}})
	waitFor(t, 10*time.Second, "child running", func() bool { return len(running(t, s, "slow")) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		got, err := submit(ctx, gd.Addr, "slow", "sleep:500ms", false)
		if err == nil && got != "slept 500ms" {
			err = fmt.Errorf("result %q", got)
		}
		result <- err
	}()
	var victim int
	waitFor(t, 10*time.Second, "the job to start", func() bool {
		for _, c := range children(t, s, "slow") {
			if c.CurrentJob != "" {
				victim = c.Pid
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatalf("job after SIGKILL of its worker: %v", err)
	}
	r := running(t, s, "slow")
	if len(r) != 1 || r[0] == victim {
		t.Errorf("running %v, victim %d", r, victim)
	}
}

func TestAdminBacklog(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := submit(ctx, gd.Addr, "queued", "x", true); err != nil {
			t.Fatal(err)
		}
	}
	dead := testpeer.DeadAddr(t)
	got, err := AdminBacklog([]string{dead, gd.Addr}, time.Second)(ctx)
	if err != nil {
		t.Fatalf("one server up: %v", err)
	}
	if got["queued"] != 3 {
		t.Errorf("backlog = %v, want queued: 3", got)
	}
	if _, err := AdminBacklog([]string{dead}, time.Second)(ctx); err == nil {
		t.Errorf("no server up: no error")
	}
}
