// Package sysusertest creates throw-away users for the tests that start
// processes as another user.
package sysusertest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// UserInGroup creates a user (no home, no login shell) whose
// supplementary groups include a group created with it, and removes
// both when t ends. It skips t, saying why, when not run as root (CI
// runs the tests as root) or when useradd is missing.
func UserInGroup(t testing.TB) (name, group string) {
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
	name, group = "gwu"+suffix, "gwg"+suffix
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
	return name, group
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
