// Package sysuser resolves the user a process is to run as, once for
// both daemons: gserverd's -u/--user (the process drops root with
// Become) and gworkerd's per-function user (each child is started with
// Credential). Both keep the user's supplementary groups, as
// initgroups(3) sets them for su, login and systemd's User=.
package sysuser

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// User is a user's ids.
type User struct {
	Name string // the name in the user database
	UID  uint32
	GID  uint32 // the primary group
	// Groups are the supplementary groups, the primary one included, as
	// initgroups(3) would set them.
	Groups []uint32
}

// Lookup resolves spec, a user name or else a numeric uid (a name is
// tried first, as chown does). The user must be in the user database: a
// uid alone has no primary group to run with.
func Lookup(spec string) (User, error) {
	u, err := user.Lookup(spec)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && isUint32(spec) {
		u, err = user.LookupId(spec)
	}
	if err != nil {
		return User{}, fmt.Errorf("sysuser: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("sysuser: user %q: non-numeric uid %q or gid %q", spec, u.Uid, u.Gid)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return User{}, fmt.Errorf("sysuser: user %q: groups: %w", spec, err)
	}
	out := User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Groups: []uint32{uint32(gid)}}
	for _, id := range ids {
		g, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return User{}, fmt.Errorf("sysuser: user %q: non-numeric group id %q", spec, id)
		}
		if !slices.Contains(out.Groups, uint32(g)) {
			out.Groups = append(out.Groups, uint32(g))
		}
	}
	return out, nil
}

// Credential is u for a process started by os/exec
// (SysProcAttr.Credential), its supplementary groups included: a nil
// Groups would give the child none at all.
func (u User) Credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: slices.Clone(u.Groups)}
}

// Become switches the whole process (every thread: Go applies the calls
// to all) to u: supplementary groups, then gid, then uid, the order in
// which each step is still allowed. It needs root and cannot be undone.
func (u User) Become() error {
	groups := make([]int, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("sysuser: become %s: setgroups: %w", u.Name, err)
	}
	if err := syscall.Setgid(int(u.GID)); err != nil {
		return fmt.Errorf("sysuser: become %s: setgid: %w", u.Name, err)
	}
	if err := syscall.Setuid(int(u.UID)); err != nil {
		return fmt.Errorf("sysuser: become %s: setuid: %w", u.Name, err)
	}
	return nil
}

func isUint32(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}
