package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/loadgen"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestMain builds gserverd and gworkerd once for the tests (unless
// GWORKERD_BIN points at a build) and checks for leaked goroutines.
func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd", "gworkerd")) }

// TestQuickAgainstGearmand runs `gbench -quick -json` on gserverd (built
// from this module) and the C gearmand, and checks the output is sane:
// every figure measured on both servers with all of its jobs completed,
// and a ratio for each. It makes no claim about speed. The durable
// scenario is left out: gearmand's SQLite queue takes minutes to finish
// even the quick counts.
func TestQuickAgainstGearmand(t *testing.T) {
	t.Parallel()
	gearmand := testpeer.Require(t, "gearmand")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard: the counts bound the run
	defer cancel()
	// Scenario 11 needs perf or strace: where neither works, its figure
	// must say it was not run, and the rest must still be measured.
	_, noCounter := loadgen.SyscallTool(ctx, "auto")
	var out, log bytes.Buffer
	args := []string{"-quick", "-json", "-scenarios", "fg,submit,e2e,drain,rss,client,openloop,cpu,syscalls", "-rss-wait", "10ms",
		"-gserverd", testpeer.Binary(t, "gserverd"), "-gearmand", gearmand}
	if err := run(ctx, args, &out, &log); err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, log.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	wantIDs := []string{"1a", "1b", "1c", "1d", "2", "3", "4a", "4b", "4c", "5a", "5b", "5c", "7a", "7b",
		"9a", "9b", "9c", "9d", "9e", "9f", "9g", "9h", "9i", "9j", "10", "11"}
	var gotIDs []string
	for _, r := range rep.Rows {
		gotIDs = append(gotIDs, r.ID)
	}
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
		t.Fatalf("got rows %v, want %v", gotIDs, wantIDs)
	}
	for _, r := range rep.Rows {
		if r.ID == syscallsScenario && noCounter != nil {
			for _, name := range []string{"gserverd", "gearmand"} {
				if c := r.Cells[name]; !c.NotRun || !strings.Contains(c.Err, "cannot be counted") {
					t.Errorf("11 %s without a syscall counter (%v): got %+v, want not run, saying why", name, noCounter, c)
				}
			}
			continue
		}
		for _, name := range []string{"gserverd", "gearmand"} {
			c, ok := r.Cells[name]
			if !ok || !c.OK || c.Partial || c.Err != "" {
				t.Errorf("%s %s: got %+v, want a complete measurement", r.ID, name, c)
				continue
			}
			if c.Value <= 0 {
				t.Errorf("%s %s: got value %v, want > 0", r.ID, name, c.Value)
			}
			if c.Jobs <= 0 || c.Jobs != c.Sent {
				t.Errorf("%s %s: got %d jobs completed of %d sent, want all of them and > 0", r.ID, name, c.Jobs, c.Sent)
			}
		}
		if r.Ratio == nil || *r.Ratio <= 0 {
			t.Errorf("%s: got ratio %v, want a positive ratio", r.ID, r.Ratio)
		}
	}
	// The counts are the quick mode's, bounded by count and not by time.
	quick := quickLoads()
	counts := map[string]int{"1a": 2000, "2": 10000, "3": 5000, "4a": 5000, "4b": 5000, "4c": 5000, "5a": 20000, "5b": 20000, "7a": 5000, "7b": 5000,
		"10": quick.cpu.Jobs}
	for _, id := range []string{"9a", "9b", "9c", "9d", "9e", "9f", "9g", "9h", "9i", "9j"} {
		counts[id] = quick.open.minJobs
	}
	if noCounter == nil {
		counts["11"] = quick.syscalls.Jobs
	}
	for id, want := range counts {
		for _, name := range []string{"gserverd", "gearmand"} {
			if got := rep.find(id).Cells[name].Jobs; got != want {
				t.Errorf("%s %s: got %d jobs, want %d", id, name, got, want)
			}
		}
	}
	// The open loop ran both servers at the same rates, from gearmand's 1a.
	if want := "gearmand's closed-loop foreground rate in 1a"; !strings.Contains(rep.Meta.OpenLoop, want) {
		t.Errorf("open loop header %q, want it to name %q", rep.Meta.OpenLoop, want)
	}
	for _, id := range []string{"9a", "9f"} {
		g, c := rep.find(id).Cells["gserverd"].Note, rep.find(id).Cells["gearmand"].Note
		gRate, _, _ := strings.Cut(g, " jobs/s")
		cRate, _, _ := strings.Cut(c, " jobs/s")
		if gRate == "" || gRate != cRate {
			t.Errorf("%s: gserverd ran at %q jobs/s, gearmand at %q, want the same rate (notes %q and %q)", id, gRate, cRate, g, c)
		}
	}
	if noCounter == nil {
		for _, name := range []string{"gserverd", "gearmand"} {
			c := rep.find(syscallsScenario).Cells[name]
			var sum float64
			for _, v := range c.PerJob {
				sum += v
			}
			if len(c.PerJob) == 0 || math.Abs(sum-c.Value) > 0.01*c.Value {
				t.Errorf("11 %s: per job %v sums to %v, want the figure %v", name, c.PerJob, sum, c.Value)
			}
		}
		if !slices.ContainsFunc(rep.Meta.Derived, func(d string) bool { return strings.HasPrefix(d, "11 system calls per job, gserverd/gearmand: all ") }) {
			t.Errorf("derived notes %q lack the system call comparison", rep.Meta.Derived)
		}
	}
}

// TestQuickOpenLoopReference runs the open loop alone, where no 1a gives
// it its reference rate: a probe of gearmand measures it, or
// -openloop-max sets it.
func TestQuickOpenLoopReference(t *testing.T) {
	t.Parallel()
	gearmand := testpeer.Require(t, "gearmand")
	tests := []struct {
		name     string
		args     []string
		columns  []string
		header   string
		rate50   string // 9a's rate, when known beforehand
		ratioRow bool
	}{
		{"probe of gearmand", []string{"-gearmand", gearmand}, []string{"gserverd", "gearmand"},
			"gearmand's closed-loop foreground rate in a probe like 1a", "", true},
		{"given", []string{"-gearmand", "", "-openloop-max", "3000"}, []string{"gserverd"},
			"3000 jobs/s, given by -openloop-max", "1500", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
			defer cancel()
			var out, log bytes.Buffer
			args := append([]string{"-quick", "-json", "-scenarios", "openloop", "-gserverd", testpeer.Binary(t, "gserverd")}, tc.args...)
			if err := run(ctx, args, &out, &log); err != nil {
				t.Fatalf("run %v: %v\n%s", args, err, log.String())
			}
			var rep report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			if !strings.Contains(rep.Meta.OpenLoop, tc.header) {
				t.Errorf("open loop header %q, want it to name %q", rep.Meta.OpenLoop, tc.header)
			}
			if len(rep.Rows) != 2*openLoopFiguresPerLevel {
				t.Fatalf("got %d rows, want %d", len(rep.Rows), 2*openLoopFiguresPerLevel)
			}
			for _, r := range rep.Rows {
				for _, name := range tc.columns {
					if c := r.Cells[name]; !c.OK || c.Partial || c.Value <= 0 || c.Jobs != quickLoads().open.minJobs {
						t.Errorf("%s %s: got %+v, want a complete measurement of %d jobs", r.ID, name, c, quickLoads().open.minJobs)
					}
				}
				if (r.Ratio != nil) != tc.ratioRow {
					t.Errorf("%s: got ratio %v, want one: %v", r.ID, r.Ratio, tc.ratioRow)
				}
			}
			if tc.rate50 != "" {
				if note := rep.find("9a").Cells["gserverd"].Note; !strings.HasPrefix(note, tc.rate50+" jobs/s (50%)") {
					t.Errorf("9a note %q, want it to start with %q", note, tc.rate50+" jobs/s (50%)")
				}
			}
		})
	}
}

// TestTableNamesEveryFigure checks the Markdown table for a report.
func TestTableNamesEveryFigure(t *testing.T) {
	t.Parallel()
	ratio := 2.5
	rep := &report{
		Meta: meta{Columns: []string{"gserverd", "gearmand"}, Commands: map[string]string{"gserverd": "bin/gserverd", "gearmand": "gearmand"}},
		Rows: []*row{
			{ID: "2", Figure: "pipelined", Unit: "submits/s", Cells: map[string]cell{
				"gserverd": {Value: 250000, OK: true}, "gearmand": {Value: 100000, OK: true}}, Ratio: &ratio},
			{ID: "6a", Figure: "durable", Unit: "submits/s", Cells: map[string]cell{
				"gserverd": {NotRun: true, Err: "not run: no -q embedded"}, "gearmand": {Value: 950, OK: true, Partial: true}}},
			{ID: "5a", Figure: "rss", Unit: "bytes", Lower: true, Cells: map[string]cell{
				"gserverd": {Err: "boom"}, "gearmand": {Value: 910, OK: true}}},
		},
	}
	var b bytes.Buffer
	if err := rep.writeTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 2  | pipelined | submits/s | higher | 250000   | 100000        | 2.50              |",
		"| 6a | durable   | submits/s | higher | not run  | 950 (partial) | -",
		"| 5a | rss       | bytes     | lower  | failed   | 910",
		"- 6a gserverd: not run: no -q embedded",
		"gserverd/gearmand: above 1.0 is better where higher is better (rates); 1.0 or below is better where lower is better (latency, CPU, system calls, memory)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if !rep.failed() {
		t.Error("failed() = false with a failed cell, want true")
	}
	rep.Rows = rep.Rows[:2] // a not-run cell and a partial one are no failure
	if rep.failed() {
		t.Error("failed() = true with only not-run and partial cells, want false")
	}
}

// TestDeriveSyscalls checks the closing comparison of scenario 11: the
// top calls of each server, side by side, with the calls only one of
// them makes.
func TestDeriveSyscalls(t *testing.T) {
	t.Parallel()
	ratio := 0.5
	rep := &report{
		Meta: meta{Columns: []string{"gserverd", "gearmand"}},
		Rows: []*row{{ID: syscallsScenario, Ratio: &ratio, Cells: map[string]cell{
			"gserverd": {OK: true, Value: 10, PerJob: map[string]float64{"read": 4, "write": 3, "epoll_pwait": 1, "futex": 1, "nanosleep": 0.5, "other": 0.25, "close": 0.25}},
			"gearmand": {OK: true, Value: 20, PerJob: map[string]float64{"recvfrom": 5, "read": 4, "epoll_wait": 3, "sendto": 3, "futex": 2, "close": 3}},
		}}},
	}
	rep.derive()
	want := "11 system calls per job, gserverd/gearmand: all 10.0/20.0 (0.50); the top 5 of each: read 4.00/4.00 (1.00), recvfrom 0.00/5.00 (0.00), " +
		"close 0.25/3.00 (0.08), epoll_wait 0.00/3.00 (0.00), futex 1.00/2.00 (0.50), sendto 0.00/3.00 (0.00), write 3.00/0.00 (-), epoll_pwait 1.00/0.00 (-), nanosleep 0.50/0.00 (-)"
	if len(rep.Meta.Derived) != 1 || rep.Meta.Derived[0] != want {
		t.Errorf("derived %q,\nwant [%q]", rep.Meta.Derived, want)
	}
	// A partial count is not compared.
	c := rep.Rows[0].Cells["gearmand"]
	c.Partial = true
	rep.Rows[0].Cells["gearmand"] = c
	rep.Meta.Derived = nil
	rep.derive()
	if len(rep.Meta.Derived) != 0 {
		t.Errorf("derived %q from a partial count, want nothing", rep.Meta.Derived)
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(t *testing.T, c config)
	}{
		{"defaults", []string{"-gserverd", "x"}, false, func(t *testing.T, c config) {
			if len(c.scenarios) != 11 {
				t.Errorf("got %d scenarios, want 11", len(c.scenarios))
			}
			if c.openLoopMax != 0 || c.syscallTool != "auto" {
				t.Errorf("got -openloop-max %v -syscall-tool %q, want 0 and auto", c.openLoopMax, c.syscallTool)
			}
			if strings.Join(c.gserverdMemArgs, " ") != "-q builtin" {
				t.Errorf("got mem args %q, want -q builtin", c.gserverdMemArgs)
			}
		}},
		{"names and numbers", []string{"-gserverd", "x", "-scenarios", "fg,2,durable"}, false, func(t *testing.T, c config) {
			if !c.scenarios["1"] || !c.scenarios["2"] || !c.scenarios["6"] || len(c.scenarios) != 3 {
				t.Errorf("got %v, want 1, 2 and 6", c.scenarios)
			}
		}},
		{"pass-through", []string{"-gserverd", "x", "-gserverd-args", "-t 2  --job-retries 3"}, false, func(t *testing.T, c config) {
			if strings.Join(c.gserverdArgs, "|") != "-t|2|--job-retries|3" {
				t.Errorf("got %q", c.gserverdArgs)
			}
		}},
		{"the cost scenarios by name", []string{"-gserverd", "x", "-scenarios", "openloop,cpu,syscalls", "-syscall-tool", "strace", "-openloop-max", "1e4"}, false, func(t *testing.T, c config) {
			if !c.scenarios["9"] || !c.scenarios["10"] || !c.scenarios["11"] || len(c.scenarios) != 3 {
				t.Errorf("got %v, want 9, 10 and 11", c.scenarios)
			}
			if c.openLoopMax != 10000 || c.syscallTool != "strace" {
				t.Errorf("got -openloop-max %v -syscall-tool %q, want 10000 and strace", c.openLoopMax, c.syscallTool)
			}
		}},
		{"negative open loop max", []string{"-gserverd", "x", "-openloop-max", "-1"}, true, nil},
		{"unknown syscall tool", []string{"-gserverd", "x", "-syscall-tool", "dtrace"}, true, nil},
		{"unknown scenario", []string{"-gserverd", "x", "-scenarios", "nope"}, true, nil},
		{"nothing to run", []string{"-gserverd", "", "-gearmand", ""}, true, nil},
		{"stray argument", []string{"-gserverd", "x", "extra"}, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseFlags(%q): got err %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err == nil && tc.check != nil {
				tc.check(t, c)
			}
			if errors.Is(err, flag.ErrHelp) {
				t.Errorf("got ErrHelp")
			}
		})
	}
}
