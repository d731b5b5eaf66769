package jobs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
)

func TestFunctionName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base string
		want string
		ok   bool
	}{
		{"job_wordcount.sh", "wordcount", true},
		{"job_shout.php", "shout", true},
		{"job_resize", "resize", true},
		{"job_Mixed.Case.v2", "Mixed.Case.v2", true},
		{"job_x.py", "x", true},
		{"job_", "", false},
		{"job_.sh", "", false},
		{"wordcount.sh", "", false},
		{"Job_x", "", false},
	}
	for _, tt := range tests {
		got, ok := jobs.FunctionName(tt.base)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FunctionName(%q) = %q, %v; want %q, %v", tt.base, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	found, skipped, err := jobs.Discover("examples", "testdata/jobs")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range found {
		names = append(names, f.Function)
	}
	want := []string{"env", "fail", "fd3", "hang", "leftover", "shout", "silent", "strrev", "wordcount"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("functions %v, want %v", names, want)
	}
	for _, f := range found {
		switch f.Function {
		case "strrev": // GearmanDaemon's layout: no #!, not executable
			if f.Kind != jobs.KindPHP || f.Callable != "fnc_strrev" {
				t.Errorf("strrev: kind %v callable %q, want the PHP runtime calling fnc_strrev", f.Kind, f.Callable)
			}
		case "shout": // #! and executable: run once per job
			if f.Kind != jobs.KindExec {
				t.Errorf("shout: kind %v, want an executable", f.Kind)
			}
		}
	}
	if len(skipped) != 1 || filepath.Base(skipped[0].Path) != "job_noexec.sh" || !strings.Contains(skipped[0].String(), "job_noexec.sh: not executable (chmod +x") {
		t.Errorf("skipped %v, want job_noexec.sh, not executable", skipped)
	}

	// The same function in two directories is an error naming both.
	dup := t.TempDir()
	if err := os.WriteFile(filepath.Join(dup, "job_wordcount"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobs.Discover("examples", dup); !errors.Is(err, jobs.ErrDuplicate) || !strings.Contains(err.Error(), "job_wordcount.sh") {
		t.Errorf("duplicate: err = %v", err)
	}
	if _, _, err := jobs.Discover(filepath.Join(dup, "missing")); err == nil {
		t.Error("missing directory: no error")
	}
}

// TestDiscoverWorkerDirs checks GearmanManager's naming: <Function>.php
// serves the Gearman function <Function>, and the prefix begins only the
// PHP name the runtime calls.
func TestDiscoverWorkerDirs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"Reverse_String.php", "Fetch.php", ".hidden.php", "notes.txt", "bad name.php"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("<?php\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string // function=callable
	}{
		{"", []string{"Fetch=Fetch", "Reverse_String=Reverse_String"}},
		{"Worker_", []string{"Fetch=Worker_Fetch", "Reverse_String=Worker_Reverse_String"}},
	} {
		found, _, err := jobs.DiscoverWorkerDirs(tc.prefix, dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range found {
			if f.Kind != jobs.KindPHP {
				t.Errorf("%s: kind %v, want PHP", f.Function, f.Kind)
			}
			got = append(got, f.Function+"="+f.Callable)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("prefix %q: found %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

// TestExecutable runs real scripts (shell and PHP) through the adapter.
func TestExecutable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		payload  string
		php      bool
		want     string
		status   []string
		data     []string
		warnings []string
		// failures
		exitCode  int
		exception string // "" = no exception expected
	}{
		{name: "shell example", path: "examples/job_wordcount.sh", payload: "the quick brown\nfox jumps",
			want: " words=5\n", status: []string{"0/2", "1/2", "2/2"}, data: []string{"lines=2"}},
		{name: "shell example fails with stderr", path: "examples/job_wordcount.sh", payload: "",
			status: []string{"0/2"}, exitCode: 2, exception: "wordcount: the workload is empty"},
		{name: "php example", path: "examples/job_shout.php", payload: "hello\nworld\n", php: true,
			want: "HELLO\nWORLD", status: []string{"1/2", "2/2"}, data: []string{"HELLO", "WORLD"}},
		{name: "php example fails", path: "examples/job_shout.php", payload: "", php: true,
			exitCode: 1, exception: "shout: nothing to shout (H:test:1)"},
		{name: "environment", path: "testdata/jobs/job_env.sh",
			want: "H:test:1|env|u-1|1|extra-value|jobs"},
		{name: "fd 3 lines, malformed ones ignored", path: "testdata/jobs/job_fd3.sh",
			want: "res\x00ult", status: []string{"1/3", "3/3"}, data: []string{"first chunk"}, warnings: []string{"low disk"}},
		{name: "exception carries the stderr tail", path: "testdata/jobs/job_fail.sh", payload: "x",
			exitCode: 3, exception: "the real reason: input rejected"},
		{name: "silent failure is a plain failure", path: "testdata/jobs/job_silent.sh", exitCode: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.php {
				testpeer.Require(t, "php")
			}
			fn, _ := jobs.FunctionName(filepath.Base(tt.path))
			h := &jobs.Executable{Path: tt.path, Env: []string{"EXTRA_VAR=extra-value"}, StderrTail: 200}
			job := newJob(fn, tt.payload)
			res, err := h.Run(context.Background(), job)
			status, data, warnings := job.sent()
			if tt.exitCode == 0 {
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				if string(res) != tt.want {
					t.Errorf("result %q, want %q", res, tt.want)
				}
			} else {
				var xe *jobs.ExitError
				if !errors.As(err, &xe) || xe.Code != tt.exitCode {
					t.Fatalf("err = %v, want exit status %d", err, tt.exitCode)
				}
				var ex *worker.ExceptionError
				isEx := errors.As(err, &ex)
				switch {
				case tt.exception == "" && isEx:
					t.Errorf("got exception %q, want a plain failure", ex.Error())
				case tt.exception != "" && !isEx:
					t.Errorf("err %v is not an exception", err)
				case tt.exception != "" && ex.Error() != tt.exception && !strings.HasSuffix(ex.Error(), "\n"+tt.exception):
					t.Errorf("exception %q, want it to end with %q", ex.Error(), tt.exception)
				}
				if isEx && len(ex.Error()) > 200 {
					t.Errorf("exception of %d bytes, want the 200-byte tail", len(ex.Error()))
				}
			}
			if !reflect.DeepEqual(status, tt.status) || !reflect.DeepEqual(data, tt.data) || !reflect.DeepEqual(warnings, tt.warnings) {
				t.Errorf("sent status %q data %q warnings %q; want %q %q %q", status, data, warnings, tt.status, tt.data, tt.warnings)
			}
		})
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the ")" that closes the command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPids(t *testing.T, path string) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(strings.Fields(string(b))) > 0 {
			var pids []int
			for _, f := range strings.Fields(string(b)) {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("pid file %q: %v", b, err)
				}
				pids = append(pids, n)
			}
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("script did not write %s", path)
		}
		time.Sleep(10 * time.Millisecond) // polling a file another process writes
	}
}

// TestExecutableCancelKillsGroup: cancelling the job's context kills the
// script and its grandchild at once.
func TestExecutableCancelKillsGroup(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pids")
	h := &jobs.Executable{Path: "testdata/jobs/job_hang.sh"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	job := newJob("hang", pidfile)
	go func() {
		_, err := h.Run(ctx, job)
		done <- err
	}()
	pids := readPids(t, pidfile)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, pid := range pids {
		for deadline := time.Now().Add(5 * time.Second); alive(pid); {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still alive after cancel", pid)
			}
			time.Sleep(10 * time.Millisecond) // waiting for init to reap an orphan
		}
	}
}

// TestExecutableLeftoverKilled: a background process left by a finished
// script neither delays the result nor survives the job.
func TestExecutableLeftoverKilled(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pids")
	h := &jobs.Executable{Path: "testdata/jobs/job_leftover.sh", WaitDelay: 30 * time.Second}
	start := time.Now()
	res, err := h.Run(context.Background(), newJob("leftover", pidfile))
	if err != nil || string(res) != "done\n" {
		t.Fatalf("Run = %q, %v", res, err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Run took %v: it waited for the leftover's pipe", el)
	}
	pid := readPids(t, pidfile)[0]
	for deadline := time.Now().Add(5 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("leftover pid %d survived the job", pid)
		}
		time.Sleep(10 * time.Millisecond) // waiting for init to reap an orphan
	}
}

// TestExecutableBadShebang: a job file whose #! interpreter is missing
// fails its job with an error naming the interpreter, not a bare "no
// such file or directory".
func TestExecutableBadShebang(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "job_x.sh")
	if err := os.WriteFile(path, []byte("#!/usr/bin/nonexistent-interpreter -x\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := &jobs.Executable{Path: path, Function: "x"}
	_, err := h.Run(context.Background(), newJob("x", ""))
	if err == nil || !strings.Contains(err.Error(), "job_x.sh: interpreter /usr/bin/nonexistent-interpreter not found") {
		t.Fatalf("err = %v, want it to name the missing interpreter", err)
	}
}
