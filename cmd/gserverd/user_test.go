package main

import (
	"testing"

	"github.com/gworkerd/gworkerd/internal/sysuser/sysusertest"
)

// -u/--user, by name or by uid, keeps the user's supplementary groups
// (initgroups): a user created in a second group runs gserverd with that
// group in /proc/PID/status's Groups, and with its uid and gid.
func TestBinaryUserKeepsGroups(t *testing.T) {
	t.Parallel()
	tu := sysusertest.UserInGroup(t)
	for _, spec := range []string{tu.Name, tu.UID} {
		t.Run(spec, func(t *testing.T) {
			p := startGserverd(t, "-u", spec, "-q", "builtin")
			echo(t, p.Addr) // serving: it has switched
			if got := sysusertest.ProcIDs(t, p.Cmd.Process.Pid); !got.Runs(tu) {
				t.Errorf("gserverd -u %s runs with %+v, want %s's ids and its group %s (gid %s)", spec, got, tu.Name, tu.Group, tu.GroupID)
			}
		})
	}
}
