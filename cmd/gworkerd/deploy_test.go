package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func deployDir(t *testing.T) string {
	t.Helper()
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy")
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// The systemd units pass `systemd-analyze verify` without a message. It
// runs in a scratch root holding the system's units, the binaries at the
// paths the units name, and the units under test.
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testpeer.Missing(t, "systemd-analyze", "systemd")
	}
	sysUnits := "/usr/lib/systemd/system"
	if _, err := os.Stat(sysUnits); err != nil {
		testpeer.Missing(t, sysUnits, "systemd")
	}
	dir := deployDir(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", sysUnits, filepath.Join(root, "usr/lib/systemd")+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v %s", sysUnits, err, out)
	}
	copyFile(t, gworkerdBin, filepath.Join(root, "usr/local/sbin/gworkerd"), 0o755)
	// verify only needs an executable at the path gserverd.service
	// names; the gworkerd binary stands in for gserverd.
	copyFile(t, gworkerdBin, filepath.Join(root, "usr/local/sbin/gserverd"), 0o755)
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, kill, filepath.Join(root, "bin/kill"), 0o755)
	var units []string
	for _, u := range []string{"gworkerd.service", "gserverd.service"} {
		copyFile(t, filepath.Join(dir, u), filepath.Join(root, "etc/systemd/system", u), 0o644)
		units = append(units, "/etc/systemd/system/"+u)
	}
	out, err := exec.Command(sa, append([]string{"verify", "--root=" + root}, units...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range []string{"gworkerd.service", "gserverd.service"} {
		b, _ := os.ReadFile(filepath.Join(dir, u))
		for _, want := range []string{"Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", u, want)
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "gworkerd.service"))
	if !strings.Contains(string(b), "start --foreground") {
		t.Errorf("gworkerd.service does not run in the foreground")
	}
}

// The sample configs are valid for their programs.
func TestSampleConfigs(t *testing.T) {
	t.Parallel()
	dir := deployDir(t)
	cmd := exec.Command(gworkerdBin, "check", "--config", filepath.Join(dir, "gworkerd.yaml"))
	cmd.Env = append(os.Environ(), "GWORKERD_JOB_DIRS="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "OK") {
		t.Errorf("gworkerd check deploy/gworkerd.yaml: %v\n%s", err, out)
	}
	gs := testpeer.Binary(t, "gserverd")
	if out, err := exec.Command(gs, "--check-args", "--config-file", filepath.Join(dir, "gserverd.yaml")).CombinedOutput(); err != nil {
		t.Errorf("gserverd --check-args deploy/gserverd.yaml: %v\n%s", err, out)
	}
}

// The logrotate file parses.
func TestLogrotateFile(t *testing.T) {
	t.Parallel()
	lr, err := exec.LookPath("logrotate")
	if err != nil {
		for _, p := range []string{"/usr/sbin/logrotate", "/sbin/logrotate"} {
			if _, e := os.Stat(p); e == nil {
				lr, err = p, nil
			}
		}
	}
	if err != nil {
		testpeer.Missing(t, "logrotate", "logrotate")
	}
	out, err := exec.Command(lr, "-d", "-s", filepath.Join(t.TempDir(), "state"), filepath.Join(deployDir(t), "logrotate")).CombinedOutput()
	if err != nil || strings.Contains(strings.ToLower(string(out)), "error") {
		t.Errorf("logrotate -d: %v\n%s", err, out)
	}
	for _, want := range []string{"gworkerd.log", "gserverd.log", "USR1", "HUP"} {
		if !strings.Contains(string(out)+readFile(t, filepath.Join(deployDir(t), "logrotate")), want) {
			t.Errorf("logrotate file lacks %q", want)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
