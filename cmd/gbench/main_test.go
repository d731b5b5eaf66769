package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestMain builds gserverd and gworkerd once for the tests (unless
// GWORKERD_BIN points at a build) and checks for leaked goroutines.
func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd", "gworkerd")) }

// TestQuickAgainstGearmand runs `gbench -quick -json` on gserverd (built
// from this module) and the C gearmand, and checks the output is sane:
// every figure measured on both servers with all of its jobs completed.
// It makes no claim about speed. The durable scenario is left out:
// gearmand's SQLite queue takes minutes to finish even the quick counts.
func TestQuickAgainstGearmand(t *testing.T) {
	t.Parallel()
	gearmand := testpeer.Require(t, "gearmand")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard: the counts bound the run
	defer cancel()
	var out, log bytes.Buffer
	args := []string{"-quick", "-json", "-scenarios", "fg,submit,e2e,drain,rss,client", "-rss-wait", "10ms",
		"-gserverd", testpeer.Binary(t, "gserverd"), "-gearmand", gearmand}
	if err := run(ctx, args, &out, &log); err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, log.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	wantIDs := []string{"1a", "1b", "1c", "2", "3", "4a", "4b", "4c", "5a", "5b", "5c", "7a", "7b"}
	var gotIDs []string
	for _, r := range rep.Rows {
		gotIDs = append(gotIDs, r.ID)
	}
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
		t.Fatalf("got rows %v, want %v", gotIDs, wantIDs)
	}
	for _, r := range rep.Rows {
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
	for id, want := range map[string]int{"1a": 2000, "2": 10000, "3": 5000, "4a": 5000, "4b": 5000, "4c": 5000, "5a": 20000, "5b": 20000, "7a": 5000, "7b": 5000} {
		for _, name := range []string{"gserverd", "gearmand"} {
			if got := rep.find(id).Cells[name].Jobs; got != want {
				t.Errorf("%s %s: got %d jobs, want %d", id, name, got, want)
			}
		}
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

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(t *testing.T, c config)
	}{
		{"defaults", []string{"-gserverd", "x"}, false, func(t *testing.T, c config) {
			if len(c.scenarios) != 8 {
				t.Errorf("got %d scenarios, want 8", len(c.scenarios))
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
