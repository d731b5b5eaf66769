package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestBatchProgressOnTerminal runs `gclient submit --batch` with its
// output on a pseudo-terminal (util-linux script) and checks that it draws
// the progress bar, redrawn in place up to 100%, before the summary.
func TestBatchProgressOnTerminal(t *testing.T) {
	t.Parallel()
	script := testpeer.Require(t, "script")
	srv := testpeer.StartGserverd(t, "-q", "builtin")
	var lines []string
	for range 2000 {
		lines = append(lines, `{"payload":"x"}`)
	}
	batch := filepath.Join(t.TempDir(), "jobs.jsonl")
	if err := os.WriteFile(batch, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	line := strings.Join([]string{binary(t, "gclient"), "--servers", srv.Addr, "submit", "bar", "--batch", batch, ">/dev/null"}, " ")
	out, err := exec.CommandContext(ctx, script, "-qec", line, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("script -c %q: %v\n%q", line, err, out)
	}
	text := string(out)
	bars := regexp.MustCompile(`\r\[(#*)( *)\] +(\d+)% (\d+) jobs`).FindAllStringSubmatch(text, -1)
	if len(bars) == 0 {
		t.Fatalf("no progress bar on a terminal: %q", text)
	}
	last := bars[len(bars)-1]
	if len(last[1]) != 40 || last[3] != "100" || last[4] != "2000" {
		t.Errorf("last bar %q, want a full bar at 100%% with 2000 jobs", last[0])
	}
	for _, b := range bars {
		if len(b[1])+len(b[2]) != 40 {
			t.Errorf("bar %q is not 40 wide", b[0])
		}
	}
	if !strings.Contains(text, "submitted 2000 jobs, 0 failed") || strings.Index(text, "submitted") < strings.LastIndex(text, "\r[") {
		t.Errorf("no summary after the bar: %q", text)
	}
}
