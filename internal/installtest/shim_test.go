package installtest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The shims stand in for the programs of the README's lines that act on
// the machine rather than on files, from a directory that comes first in
// the lines' PATH.
const (
	envRoot     = "INSTALLTEST_ROOT"      // the temporary root
	envSock     = "INSTALLTEST_SYSTEMCTL" // the fake systemd's socket
	envSysusers = "INSTALLTEST_SYSUSERS"  // the real systemd-sysusers
	envTmpfiles = "INSTALLTEST_TMPFILES"  // the real systemd-tmpfiles
)

// shimScripts are the shims written as shell scripts, by name:
//   - sudo runs its command as it is: the test runs as root already, and
//     what the command changes is in the temporary root;
//   - systemd-sysusers and systemd-tmpfiles run the real ones with
//     --root, so that the users and directories are made in the
//     temporary root's /etc/passwd and /var.
//
// The shim systemctl is the test binary, which asks the test's fake
// systemd (systemd_test.go).
func shimScripts() map[string]string {
	return map[string]string{
		"sudo": `case "$1" in ""|-*) echo "installtest sudo: takes a command and no option" >&2; exit 2;; esac
exec "$@"`,
		"systemd-sysusers": `exec "$` + envSysusers + `" --root="$` + envRoot + `" "$@"`,
		"systemd-tmpfiles": `exec "$` + envTmpfiles + `" --root="$` + envRoot + `" "$@"`,
	}
}

// runShim runs the shim called name, if it is one, and returns its exit
// status.
func runShim(name string, args []string) (int, bool) {
	if name == "systemctl" {
		return shimSystemctl(args), true
	}
	return 0, false
}

// systemctlReply is the fake systemd's answer to one systemctl command.
type systemctlReply struct {
	Out string `json:"out"`
	Err string `json:"err,omitempty"`
}

func shimSystemctl(args []string) int {
	c, err := net.Dial("unix", os.Getenv(envSock))
	if err != nil {
		fmt.Fprintln(os.Stderr, "installtest systemctl:", err)
		return 1
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(args); err != nil {
		fmt.Fprintln(os.Stderr, "installtest systemctl:", err)
		return 1
	}
	var rep systemctlReply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		fmt.Fprintln(os.Stderr, "installtest systemctl:", err)
		return 1
	}
	fmt.Fprint(os.Stderr, rep.Out)
	if rep.Err != "" {
		fmt.Fprintln(os.Stderr, "installtest systemctl:", rep.Err)
		return 1
	}
	return 0
}

// installShims writes the shims into dir.
func installShims(t *testing.T, dir string) {
	t.Helper()
	for name, script := range shimScripts() {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "systemctl")); err != nil {
		t.Fatal(err)
	}
}
