package main

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/internal/sysuser/sysusertest"
)

// -u/--user, by name or by uid, keeps the user's supplementary groups
// (initgroups): a user created in a second group runs gserverd with that
// group in /proc/PID/status's Groups, and with its uid and gid.
func TestBinaryUserKeepsGroups(t *testing.T) {
	t.Parallel()
	name, group := sysusertest.UserInGroup(t)
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{name, u.Uid} {
		t.Run(spec, func(t *testing.T) {
			p := startGserverd(t, "-u", spec, "-q", "builtin")
			echo(t, p.Addr) // serving: it has switched
			st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Cmd.Process.Pid), "status"))
			if err != nil {
				t.Fatal(err)
			}
			var uid, gid string
			var groups []string
			for _, line := range strings.Split(string(st), "\n") {
				k, v, _ := strings.Cut(line, ":")
				switch f := strings.Fields(v); k {
				case "Uid":
					uid = f[0]
				case "Gid":
					gid = f[0]
				case "Groups":
					groups = f
				}
			}
			if uid != u.Uid || gid != u.Gid || !slices.Contains(groups, g.Gid) {
				t.Errorf("gserverd -u %s runs as uid %s gid %s groups %v, want %s %s and the group %s (gid %s)",
					spec, uid, gid, groups, u.Uid, u.Gid, group, g.Gid)
			}
		})
	}
}
