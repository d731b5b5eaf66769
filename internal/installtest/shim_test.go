package installtest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The shims stand in for the programs of the README's lines that act on
// the machine rather than on files: the test binary, linked under their
// names into a directory that comes first in the lines' PATH, acts as
// each of them (TestMain calls runShim first).
const (
	envRoot     = "INSTALLTEST_ROOT"      // the temporary root
	envSock     = "INSTALLTEST_SYSTEMCTL" // the fake systemd's socket
	envSysusers = "INSTALLTEST_SYSUSERS"  // the real systemd-sysusers
	envTmpfiles = "INSTALLTEST_TMPFILES"  // the real systemd-tmpfiles
)

// shimNames are the programs the shims stand in for:
//   - sudo runs its command as it is: the test runs as root already, and
//     what the command changes is in the temporary root;
//   - systemd-sysusers and systemd-tmpfiles run the real ones with
//     --root, so that the users and directories are made in the
//     temporary root's /etc/passwd and /var;
//   - systemctl asks the test's fake systemd (systemd_test.go).
func shimNames() []string {
	return []string{"sudo", "systemctl", "systemd-sysusers", "systemd-tmpfiles"}
}

// runShim runs the shim called name, if it is one, and returns its exit
// status.
func runShim(name string, args []string) (int, bool) {
	switch name {
	case "sudo":
		return shimSudo(args), true
	case "systemctl":
		return shimSystemctl(args), true
	case "systemd-sysusers":
		return shimRoot(os.Getenv(envSysusers), args), true
	case "systemd-tmpfiles":
		return shimRoot(os.Getenv(envTmpfiles), args), true
	}
	return 0, false
}

func shimSudo(args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "installtest sudo: takes a command and no option")
		return 2
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "installtest sudo:", err)
		return 127
	}
	err = syscall.Exec(path, args, os.Environ())
	fmt.Fprintln(os.Stderr, "installtest sudo:", err)
	return 126
}

func shimRoot(real string, args []string) int {
	root := os.Getenv(envRoot)
	if real == "" || root == "" {
		fmt.Fprintf(os.Stderr, "installtest: %s or %s is not set\n", envRoot, "the real program")
		return 2
	}
	err := syscall.Exec(real, append([]string{real, "--root=" + root}, args...), os.Environ())
	fmt.Fprintln(os.Stderr, "installtest:", err)
	return 126
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

// installShims links the test binary under each shim's name into dir.
func installShims(t *testing.T, dir string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range shimNames() {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
}
