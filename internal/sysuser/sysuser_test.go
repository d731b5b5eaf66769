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
// Become run with it in /proc/PID/status's Groups, besides the user's
// uid and gid.
func TestSupplementaryGroups(t *testing.T) {
	t.Parallel()
	name, group := sysusertest.UserInGroup(t)
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	u, err := sysuser.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(u.Groups, uint32(gid)) || !slices.Contains(u.Groups, u.GID) {
		t.Errorf("Lookup(%q).Groups = %v, want %s's gid %d and the primary %d", name, u.Groups, group, gid, u.GID)
	}
	byID, err := sysuser.Lookup(strconv.FormatUint(uint64(u.UID), 10))
	if err != nil || byID.Name != name || !slices.Equal(byID.Groups, u.Groups) {
		t.Errorf("Lookup by uid %d = %+v, %v; want %+v", u.UID, byID, err, u)
	}

	t.Run("Credential", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		pid := strconv.Itoa(cmd.Process.Pid)
		// Start returns once execve has begun; the ids are set before it.
		st, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			t.Fatal(err)
		}
		checkStatus(t, "child "+pid, string(st), u, uint32(gid))
	})
	t.Run("Become", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envBecome+"="+name)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, stderr.String())
		}
		checkStatus(t, "a process after Become", string(out), u, uint32(gid))
	})
}

// checkStatus checks the Uid, Gid and Groups lines of a /proc/PID/status.
func checkStatus(t *testing.T, who, status string, u sysuser.User, group uint32) {
	t.Helper()
	var uid, gid string
	var groups []string
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch f := strings.Fields(v); k {
		case "Uid":
			uid = strings.Join(f, " ")
		case "Gid":
			gid = strings.Join(f, " ")
		case "Groups":
			groups = f
		}
	}
	u4 := strings.Repeat(strconv.FormatUint(uint64(u.UID), 10)+" ", 4)
	g4 := strings.Repeat(strconv.FormatUint(uint64(u.GID), 10)+" ", 4)
	if uid != strings.TrimSpace(u4) || gid != strings.TrimSpace(g4) {
		t.Errorf("%s runs as Uid %q Gid %q, want %d and %d (real, effective, saved, fs)", who, uid, gid, u.UID, u.GID)
	}
	if !slices.Contains(groups, strconv.FormatUint(uint64(group), 10)) {
		t.Errorf("%s has Groups %v, want the supplementary group %d among them", who, groups, group)
	}
}
