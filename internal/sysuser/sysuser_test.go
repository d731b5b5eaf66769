package sysuser_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/sysuser"
	"github.com/gworkerd/gworkerd/internal/sysuser/sysusertest"
)

// envBecome makes the test binary a helper process: it becomes the user
// named in it, prints its /proc/self/status and exits.
const envBecome = "SYSUSER_TEST_BECOME"

func TestMain(m *testing.M) {
	if name := os.Getenv(envBecome); name != "" {
		os.Exit(become(name))
	}
	os.Exit(m.Run())
}

func become(name string) int {
	u, err := sysuser.Lookup(name)
	if err == nil {
		err = u.Become()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Stdout.Write(st)
	return 0
}

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		want    sysuser.User // zero for an error
		unknown bool         // the error says the user is unknown
	}{
		{"root", sysuser.User{Name: "root", UID: 0, GID: 0}, false},
		{"0", sysuser.User{Name: "root", UID: 0, GID: 0}, false},
		{"no-such-user-sysuser", sysuser.User{}, true},
		{"4000000123", sysuser.User{}, true},
		{"", sysuser.User{}, true},
		{"-1", sysuser.User{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			got, err := sysuser.Lookup(tc.spec)
			if tc.want.Name == "" {
				var byName user.UnknownUserError
				var byID user.UnknownUserIdError
				if err == nil || (tc.unknown && !errors.As(err, &byName) && !errors.As(err, &byID)) {
					t.Errorf("Lookup(%q) = %+v, %v; want an unknown-user error", tc.spec, got, err)
				}
				return
			}
			if err != nil || got.Name != tc.want.Name || got.UID != tc.want.UID || got.GID != tc.want.GID {
				t.Fatalf("Lookup(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
			}
			if len(got.Groups) == 0 || got.Groups[0] != got.GID {
				t.Errorf("Lookup(%q).Groups = %v, want the primary group %d first", tc.spec, got.Groups, got.GID)
			}
		})
	}
}

// A user created in a second group: Lookup, by name and by uid, lists
// that group; a child started with Credential and a process that called
// Become run with it in /proc/PID/status's Groups, and with the user's
// uid and gid.
func TestSupplementaryGroups(t *testing.T) {
	t.Parallel()
	tu := sysusertest.UserInGroup(t)
	u, err := sysuser.Lookup(tu.Name)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(l ...uint32) []string {
		var out []string
		for _, id := range l {
			out = append(out, strconv.FormatUint(uint64(id), 10))
		}
		return out
	}
	if got := ids(u.UID, u.GID); got[0] != tu.UID || got[1] != tu.GID || !slices.Contains(ids(u.Groups...), tu.GroupID) {
		t.Errorf("Lookup(%q) = %+v, want uid %s gid %s and the group %s", tu.Name, u, tu.UID, tu.GID, tu.GroupID)
	}
	byID, err := sysuser.Lookup(tu.UID)
	if err != nil || byID.Name != tu.Name || !slices.Equal(byID.Groups, u.Groups) {
		t.Errorf("Lookup by uid %s = %+v, %v; want %+v", tu.UID, byID, err, u)
	}

	t.Run("Credential", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		// Start returns once execve has begun; the ids are set before it.
		if got := sysusertest.ProcIDs(t, cmd.Process.Pid); !got.Runs(tu) {
			t.Errorf("child %d runs with %+v, want %+v", cmd.Process.Pid, got, tu)
		}
	})
	t.Run("Become", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envBecome+"="+tu.Name)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, stderr.String())
		}
		if got := sysusertest.ParseStatus(string(out)); !got.Runs(tu) {
			t.Errorf("a process after Become runs with %+v, want %+v", got, tu)
		}
	})
}
