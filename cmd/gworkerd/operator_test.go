package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runIn runs gworkerd with args in the working directory dir and
// returns its stdout, stderr and exit status.
func runIn(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runInEnv(t, dir, nil, args...)
}

// runInEnv is runIn with env added to the environment.
func runInEnv(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gworkerdBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var xe *exec.ExitError
	switch {
	case errors.As(err, &xe):
		code = xe.ExitCode()
	case err != nil:
		t.Fatalf("gworkerd %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// TestSkippedJobFileReported: a job_ file without the executable bit is
// reported, with the reason and the fix, by check, start, reload and the
// log (at warning level), instead of being skipped without a word.
func TestSkippedJobFileReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "127.0.0.1:1", "  reverse: {}\n", 5*time.Second)
	noexec := filepath.Join(e.jobs, "job_x.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\ncat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := noexec + ": not executable (chmod +x, or name it .php/.py to run it resident)"
	for _, args := range [][]string{{"check"}, {"start"}, {"reload"}} {
		out := e.must(args...)
		if !strings.Contains(out, want) {
			t.Errorf("gworkerd %s said %q, want %q", args[0], out, want)
		}
	}
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	if _, ok := find(e.logEntries(), "job file skipped", "path="+noexec, "level=warning"); !ok {
		t.Errorf("no warning for %s in the log:\n%s", noexec, e.logTail())
	}
}

// TestRelativeConfigPaths: relative paths in the config are relative to
// the config file's directory, whatever the working directory: the
// daemon (which works from "/") puts its socket where start and status
// look for it. A config broken while the daemon runs does not lock the
// operator out: status, ctl and stop warn, then reach the daemon
// through the pid file and the socket.
func TestRelativeConfigPaths(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, jobs: filepath.Join(dir, "jobs"), cfg: filepath.Join(dir, "g.yaml"),
		pidFile: filepath.Join(dir, "run", "g.pid"), sock: filepath.Join(dir, "run", "g.sock"), log: filepath.Join(dir, "g.log")}
	t.Cleanup(e.cleanup)
	if err := os.MkdirAll(e.jobs, 0o755); err != nil {
		t.Fatal(err)
	}
	e.script("rel", "cat")
	cfg := "servers: [127.0.0.1:1]\njob_dirs: [jobs]\npid_file: run/g.pid\ncontrol_socket: run/g.sock\nlog_file: g.log\nhttp_listen: \"\"\nstop_timeout: 5s\n"
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	if out, errOut, code := runIn(t, elsewhere, "--config", e.cfg, "start"); code != 0 {
		t.Fatalf("start: exit %d\n%s%s\nlog:\n%s", code, out, errOut, e.logTail())
	}
	pid := e.masterPid()
	defer reap(pid)
	if _, err := os.Stat(e.sock); err != nil {
		t.Fatalf("control socket not next to the config: %v", err)
	}
	waitFor(t, 15*time.Second, "rel child", func() bool { return len(e.status().Children) == 1 })
	if out, errOut, code := runIn(t, elsewhere, "--config", e.cfg, "ctl", "scale", "nosuch", "2"); code != 1 || errOut != "gworkerd: scale: unknown function: \"nosuch\"\n" {
		t.Errorf("ctl scale of an unknown function: exit %d, %q %q", code, out, errOut)
	}

	// A typo in the running daemon's config.
	e.appendConfig("stop_timout: 5s\n")
	out, errOut, code := runIn(t, elsewhere, "--config", e.cfg, "status")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("gworkerd pid %d", pid)) || !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "stop_timout") {
		t.Errorf("status with a broken config: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := runIn(t, elsewhere, "--config", e.cfg, "ctl", "status"); code != 0 || !strings.Contains(out, "rel") {
		t.Errorf("ctl status with a broken config: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runIn(t, elsewhere, "--config", e.cfg, "stop")
	if code != 0 || out != fmt.Sprintf("gworkerd stopped (pid %d)\n", pid) {
		t.Fatalf("stop with a broken config: exit %d\n%s%s", code, out, errOut)
	}

	// Nothing running: status and stop say it alike, once.
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	notRunning := "gworkerd is not running (no pid file at " + e.pidFile + ")\n"
	if err := os.Remove(e.pidFile); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if out, _, code := runIn(t, elsewhere, "--config", e.cfg, "status"); code != 3 || out != notRunning {
		t.Errorf("status, nothing running: exit %d %q, want 3 %q", code, out, notRunning)
	}
	if out, _, code := runIn(t, elsewhere, "--config", e.cfg, "stop"); code != 0 || out != notRunning {
		t.Errorf("stop, nothing running: exit %d %q, want 0 %q", code, out, notRunning)
	}
	if _, errOut, code := runIn(t, elsewhere, "--config", e.cfg, "reload"); code != 1 || errOut != notRunning {
		t.Errorf("reload, nothing running: exit %d %q, want 1 %q", code, errOut, notRunning)
	}
}

// TestFlagsAndEnvironmentReachTheDaemon: every setting is also a flag
// and a GWORKERD_* variable, whose relative paths are from the working
// directory; the detached daemon (which works from "/") gets them as
// start had them, and a reload keeps them. stop and status reach it by
// the same flags even when the config file is gone.
func TestFlagsAndEnvironmentReachTheDaemon(t *testing.T) {
	t.Parallel()
	dir, elsewhere := t.TempDir(), t.TempDir()
	e := &env{t: t, dir: dir, jobs: filepath.Join(dir, "jobs"), cfg: filepath.Join(dir, "g.yaml"),
		pidFile: filepath.Join(elsewhere, "run", "g.pid"), sock: filepath.Join(elsewhere, "run", "g.sock"), log: filepath.Join(elsewhere, "g.log")}
	t.Cleanup(e.cleanup)
	if err := os.MkdirAll(e.jobs, 0o755); err != nil {
		t.Fatal(err)
	}
	e.script("rel", "cat")
	// The file's own pid file and socket are overridden by the flags.
	cfg := "servers: [127.0.0.1:1]\njob_dirs: [jobs]\npid_file: file.pid\ncontrol_socket: file.sock\nhttp_listen: \"\"\nstop_timeout: 5s\n"
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := []string{"GWORKERD_LOG_FILE=g.log", "GWORKERD_STOP_TIMEOUT=4s"}
	flags := []string{"--config", e.cfg, "--pid-file", "run/g.pid", "--control-socket", "run/g.sock"}
	if out, errOut, code := runInEnv(t, elsewhere, vars, append(flags, "start")...); code != 0 {
		t.Fatalf("start: exit %d\n%s%s\nlog:\n%s", code, out, errOut, e.logTail())
	}
	pid := e.masterPid()
	defer reap(pid)
	for _, f := range []string{"file.pid", "file.sock"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("the daemon made the file's %s, not the flag's", f)
		}
	}
	if _, err := os.Stat(e.log); err != nil {
		t.Errorf("log file from GWORKERD_LOG_FILE: %v", err)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != "/" {
		t.Errorf("the daemon works in %q (%v), want /", cwd, err)
	}
	waitFor(t, 15*time.Second, "rel child", func() bool { return len(e.status().Children) == 1 })
	if out, errOut, code := runInEnv(t, elsewhere, vars, append(flags, "reload")...); code != 0 {
		t.Errorf("reload: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(e.sock); err != nil {
		t.Errorf("after the reload: %v", err)
	}

	if err := os.Remove(e.cfg); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runInEnv(t, elsewhere, vars, append(flags, "status")...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("gworkerd pid %d", pid)) || !strings.Contains(errOut, "cannot read the config file") {
		t.Errorf("status without the config file: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runIn(t, elsewhere, "--config", e.cfg, "--pid-file", e.pidFile, "--control-socket", "run/g.sock", "stop")
	if code != 0 || out != fmt.Sprintf("gworkerd stopped (pid %d)\n", pid) {
		t.Fatalf("stop by flags without the config file: exit %d\n%s%s", code, out, errOut)
	}
}

// TestUsageErrors: an unknown command or flag exits with 2, as the help
// says, the suggestions on lines of their own.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	help, _, code := runIn(t, dir, "--help")
	if code != 0 || !strings.Contains(help, "2 usage error") {
		t.Errorf("help: exit %d, %q does not document exit status 2", code, help)
	}
	_, errOut, code := runIn(t, dir, "stat")
	if code != 2 || !strings.HasPrefix(errOut, "gworkerd: unknown command \"stat\"") || !strings.Contains(errOut, "\nDid you mean this?\n") || !strings.Contains(errOut, "\n\tstatus\n") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	_, errOut, code = runIn(t, dir, "status", "--bogus")
	if code != 2 || !strings.HasPrefix(errOut, "gworkerd: unknown flag: --bogus\n") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{"stop", "now"}, {"ctl", "scale", "f"}, {"ctl", "frobnicate"}} {
		if _, errOut, code := runIn(t, dir, args...); code != 2 {
			t.Errorf("%s: exit %d, %q; want 2", strings.Join(args, " "), code, errOut)
		}
	}
}
