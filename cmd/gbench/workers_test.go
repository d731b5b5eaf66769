package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestQuickWorkerSection runs the worker section in quick mode against
// gserverd and checks that each of the four hostings ran every job it was
// given (the results are checked job by job: the reversed workload). It
// makes no claim about speed.
func TestQuickWorkerSection(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard: the counts bound the run
	defer cancel()
	var out, log bytes.Buffer
	args := []string{"-quick", "-json", "-scenarios", "workers", "-gearmand", "", "-php", php,
		"-gserverd", testpeer.Binary(t, "gserverd"), "-gworkerd", testpeer.Binary(t, "gworkerd")}
	if err := run(ctx, args, &out, &log); err != nil {
		t.Fatalf("run %v: %v\n%s\n%s", args, err, out.String(), log.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	quick := quickLoads()
	want := map[string]int{"8a": quick.hosted.Jobs, "8b": quick.hostedExec.Jobs, "8c": quick.hosted.Jobs, "8d": quick.hosted.Jobs, "8e": quick.hosted.Jobs, "8f": quick.hosted.Jobs}
	var gotIDs []string
	for _, r := range rep.Rows {
		gotIDs = append(gotIDs, r.ID)
	}
	if got := strings.Join(gotIDs, ","); got != "8a,8b,8c,8d,8e,8f" {
		t.Fatalf("got rows %s, want 8a,8b,8c,8d,8e,8f", got)
	}
	for _, r := range rep.Rows {
		c, ok := r.Cells["gserverd"]
		if !ok || !c.OK || c.Partial || c.NotRun || c.Err != "" {
			t.Errorf("%s (%s): got %+v, want a complete measurement", r.ID, r.Figure, c)
			continue
		}
		if c.Jobs != want[r.ID] || c.Sent != want[r.ID] {
			t.Errorf("%s (%s): got %d jobs done of %d sent, want %d of %d", r.ID, r.Figure, c.Jobs, c.Sent, want[r.ID], want[r.ID])
		}
		if c.Value <= 0 {
			t.Errorf("%s: got rate %v, want > 0", r.ID, c.Value)
		}
	}
	if len(rep.Meta.Derived) != 1 || !strings.HasPrefix(rep.Meta.Derived[0], "gserverd worker section: resident PHP ") {
		t.Errorf("got derived notes %q, want the worker section's closing note", rep.Meta.Derived)
	}
	if !strings.Contains(rep.Meta.Workers, "4 workers per hosting") {
		t.Errorf("got worker section description %q, want the setup", rep.Meta.Workers)
	}
}

// TestWorkerSectionNotRun checks that hostings whose programs are not
// given are reported as not run, which is no failure of the bench.
func TestWorkerSectionNotRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, log bytes.Buffer
	args := []string{"-quick", "-json", "-scenarios", "workers", "-gearmand", "", "-php", "", "-gworkerd", "",
		"-gserverd", testpeer.Binary(t, "gserverd")}
	if err := run(ctx, args, &out, &log); err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, log.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Rows) != len(hostings()) {
		t.Fatalf("got %d rows, want %d", len(rep.Rows), len(hostings()))
	}
	for _, r := range rep.Rows {
		if c := r.Cells["gserverd"]; !c.NotRun || c.OK {
			t.Errorf("%s: got %+v, want not run", r.ID, c)
		}
	}
}

// TestWorkerClosingNote checks the closing note: the six figures, and
// the two ratios against their goals.
func TestWorkerClosingNote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		resident, exec, pecl, g cell
		resident4, resident0    cell
		want                    []string
	}{
		{"all measured", cell{Value: 9500, OK: true}, cell{Value: 25, OK: true}, cell{Value: 10000, OK: true}, cell{Value: 20000, OK: true}, cell{Value: 7000, OK: true}, cell{Value: 6000, OK: true},
			[]string{"gserverd worker section: resident PHP 9500 jobs/s, per-job exec 25.0 jobs/s, native pecl loop 10000 jobs/s, Go built-in 20000 jobs/s, resident PHP in 4 children 7000 jobs/s, resident PHP without prefetch 6000 jobs/s",
				"resident / pecl loop 0.95 (goal >= 0.9: met)", "resident / per-job exec 380.00 (goal >= 20: met)"}},
		{"goal missed", cell{Value: 3000, OK: true}, cell{Value: 200, OK: true}, cell{Value: 10000, OK: true}, cell{Value: 5000, OK: true}, cell{Value: 2000, OK: true}, cell{Value: 1000, OK: true},
			[]string{"resident / pecl loop 0.30 (goal >= 0.9: NOT met)", "resident / per-job exec 15.00 (goal >= 20: NOT met)"}},
		{"not run and partial", cell{Value: 3000, OK: true, Partial: true}, cell{NotRun: true}, cell{Err: "boom"}, cell{Value: 5000, OK: true}, cell{NotRun: true}, cell{NotRun: true},
			[]string{"resident PHP 3000 jobs/s (partial), per-job exec not run, native pecl loop failed, Go built-in 5000 jobs/s, resident PHP in 4 children not run, resident PHP without prefetch not run",
				"resident / pecl loop -", "resident / per-job exec -"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := &report{Meta: meta{Columns: []string{"gserverd"}}}
			for i, c := range []cell{tc.resident, tc.exec, tc.pecl, tc.g, tc.resident4, tc.resident0} {
				rep.Rows = append(rep.Rows, &row{ID: "8" + sub(i, 6), Unit: "jobs/s", Cells: map[string]cell{"gserverd": c}})
			}
			rep.derive()
			if len(rep.Meta.Derived) != 1 {
				t.Fatalf("got derived %q, want one closing note", rep.Meta.Derived)
			}
			for _, w := range tc.want {
				if !strings.Contains(rep.Meta.Derived[0], w) {
					t.Errorf("closing note %q lacks %q", rep.Meta.Derived[0], w)
				}
			}
		})
	}
}

// TestGworkerdBesideGserverd checks the -gworkerd default.
func TestGworkerdBesideGserverd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"gserverd", "gworkerd"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var stderr bytes.Buffer
	c, err := parseFlags([]string{"-gserverd", filepath.Join(dir, "gserverd")}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "gworkerd"); c.gworkerd != want {
		t.Errorf("got -gworkerd %q, want %q beside gserverd", c.gworkerd, want)
	}
	for _, given := range []string{"other", ""} {
		c, err = parseFlags([]string{"-gserverd", filepath.Join(dir, "gserverd"), "-gworkerd", given}, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		if c.gworkerd != given {
			t.Errorf("got -gworkerd %q, want the flag's value %q", c.gworkerd, given)
		}
	}
}
