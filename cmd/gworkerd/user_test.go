package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/sysuser/sysusertest"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// A function's user keeps its supplementary groups down to the job
// program: a job_ script of a function with `user:` set to a user created
// in a second group reports that group in its /proc/self/status, and
// the user's uid.
func TestJobProgramRunsWithUsersGroups(t *testing.T) {
	t.Parallel()
	tu := sysusertest.UserInGroup(t)
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  ids:\n    count: 1\n    user: "+tu.Name+"\n", 5*time.Second)
	e.script("ids", "grep -E '^(Uid|Gid|Groups):' /proc/self/status")
	// The child is gworkerd run again as the user: it needs a binary and
	// a job directory the user may enter.
	bin := filepath.Join(e.dir, "gworkerd")
	if out, err := exec.Command("cp", gworkerdBin, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	for _, p := range []string{e.dir, e.jobs} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gw := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"--config", e.cfg}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gworkerd %s: %v\n%s\nlog:\n%s", strings.Join(args, " "), err, out, e.logTail())
		}
		return string(out)
	}
	gw("start")
	pid := e.masterPid()
	defer func() { _ = exec.Command(bin, "--config", e.cfg, "stop").Run(); reap(pid) }()
	waitFor(t, 15*time.Second, "ids running", func() bool { return len(e.running("ids")) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := submit(ctx, gd.Addr, "ids", "", false)
	if err != nil {
		t.Fatalf("ids job: %v\nlog:\n%s", err, e.logTail())
	}
	if ids := sysusertest.ParseStatus(got); !ids.Runs(tu) {
		t.Errorf("the job program ran with %+v, want %s's ids and its group %s (gid %s)\n%s", ids, tu.Name, tu.Group, tu.GroupID, got)
	}
}
