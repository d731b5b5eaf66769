// Package sysusertest creates throw-away users for the tests that start
// processes as another user.
package sysusertest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// User is a user created for a test.
type User struct {
	Name, UID, GID string // the user, its uid and its primary group's gid
	Group, GroupID string // the second group it is in, and that group's gid
}

// UserInGroup creates a user (no home, no login shell) whose
// supplementary groups include a group created with it, and removes
// both when t ends. It skips t, saying why, when not run as root (CI
// runs the tests as root) or when useradd is missing.
func UserInGroup(t testing.TB) User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a user needs root; CI runs the tests as root")
	}
	for _, tool := range []string{"groupadd", "useradd", "userdel", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on this machine: %v", tool, err)
		}
	}
	suffix := strconv.FormatUint(rand.Uint64()%(1<<40), 36) // names stay under 32 characters
	name, group := "gwu"+suffix, "gwg"+suffix
	if err := run("groupadd", group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("groupdel", group); err != nil {
			t.Error(err)
		}
	})
	if err := run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", group, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before groupdel: cleanups run last first
		if err := run("userdel", name); err != nil {
			t.Error(err)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	return User{Name: name, UID: u.Uid, GID: u.Gid, Group: group, GroupID: g.Gid}
}

// IDs are a process's ids as /proc/PID/status gives them.
type IDs struct {
	UIDs, GIDs []string // real, effective, saved, filesystem
	Groups     []string // the supplementary groups
}

// ProcIDs reads the ids of process pid.
func ProcIDs(t testing.TB, pid int) IDs {
	t.Helper()
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	return ParseStatus(string(st))
}

// ParseStatus reads the ids in the text of a /proc/PID/status.
func ParseStatus(status string) IDs {
	var ids IDs
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch f := strings.Fields(v); k {
		case "Uid":
			ids.UIDs = f
		case "Gid":
			ids.GIDs = f
		case "Groups":
			ids.Groups = f
		}
	}
	return ids
}

// Runs reports whether ids are all u's (uid and primary gid) and hold
// u's second group.
func (ids IDs) Runs(u User) bool {
	for _, l := range [][]string{ids.UIDs, ids.GIDs} {
		if len(l) == 0 {
			return false
		}
	}
	for _, id := range ids.UIDs {
		if id != u.UID {
			return false
		}
	}
	for _, id := range ids.GIDs {
		if id != u.GID {
			return false
		}
	}
	return slices.Contains(ids.Groups, u.GroupID)
}

// run runs a user database tool, again while another process holds the
// database's lock (tests of other packages create users at the same
// time), for up to a minute.
func run(args ...string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err == nil {
			return nil
		}
		locked := bytes.Contains(bytes.ToLower(out), []byte("lock"))
		if !locked || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(50 * time.Millisecond) // polling a lock that another process holds
	}
}
