package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestMain builds gserverd once for the tests (unless GWORKERD_BIN points
// at a build) and checks for leaked goroutines.
func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd")) }

// TestQuickScenarios runs every scenario with the quick sizes against
// gserverd built from this module (gearmand left out: its SQLite queue is
// slow) and checks each printed one line with sane figures. It checks the
// harness, and the one promise of the server it exercises that is kept
// today: SIGKILL of gserverd loses no acknowledged job (--sync always and
// interval). Speed is not asserted.
func TestQuickScenarios(t *testing.T) {
	t.Parallel()
	var out, log bytes.Buffer
	ch := &chaos{
		cfg: config{gserverd: testpeer.Binary(t, "gserverd"), scenarios: scenarioNames(),
			pgAddr: "127.0.0.1:5432", pgOptions: "user=postgres dbname=test sslmode=disable connect_timeout=5", tmpDir: t.TempDir()},
		sizes: quickSizes(), out: &out, log: &log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs := ch.run(ctx)
	t.Logf("output:\n%s%s", out.String(), log.String())
	want := []string{"crash", "crash", "disk-full", "store-stall", "flood"}
	if len(rs) != len(want) {
		t.Fatalf("got %d results, want %d (%v)", len(rs), len(want), want)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(rs) {
		t.Fatalf("got %d lines for %d results", len(lines), len(rs))
	}
	pgUp := reachable("127.0.0.1:5432")
	for i, r := range rs {
		if r.scenario != want[i] {
			t.Errorf("result %d: scenario %q, want %q", i, r.scenario, want[i])
		}
		if !strings.HasPrefix(lines[i], r.scenario) || !strings.Contains(lines[i], "peak-rss=") {
			t.Errorf("line %d: %q, want the scenario and its figures", i, lines[i])
		}
		notRun := strings.Contains(strings.Join(r.notes, ";"), "not run")
		switch {
		case r.scenario == "disk-full" && os.Geteuid() != 0, r.scenario == "store-stall" && !pgUp:
			if !notRun {
				t.Errorf("%s without its peer: got %q, want a line saying not run", r.scenario, lines[i])
			}
			if r.scenario == "store-stall" && os.Getenv("GWORKERD_REQUIRE_PEERS") == "1" {
				t.Errorf("PostgreSQL not reachable at 127.0.0.1:5432 and GWORKERD_REQUIRE_PEERS=1")
			}
			continue
		}
		if r.err != nil || notRun {
			t.Errorf("%s %s: err %v notes %q, want a complete run", r.scenario, r.server, r.err, r.notes)
			continue
		}
		if r.probes.trips == 0 || r.peak <= 0 {
			t.Errorf("%s %s: %d probes, peak rss %d, want both > 0", r.scenario, r.server, r.probes.trips, r.peak)
		}
		if r.scenario == "flood" {
			if r.acked != ch.sizes.floodSubmits {
				t.Errorf("flood: %d JOB_CREATED for the duplicate submits, want %d", r.acked, ch.sizes.floodSubmits)
			}
			continue
		}
		c := r.counts
		if c == nil || c.Acked == 0 || c.Drained == 0 {
			t.Errorf("%s %s: counts %+v, want jobs acked and drained", r.scenario, r.server, c)
			continue
		}
		if r.scenario == "crash" && c.Lost != 0 {
			t.Errorf("%s %s: %d acknowledged jobs lost after SIGKILL, want 0", r.scenario, r.server, c.Lost)
		}
		if r.scenario == "crash" && !strings.Contains(strings.Join(r.notes, ";"), "1 SIGKILLs") {
			t.Errorf("%s %s: notes %q, want 1 SIGKILLs", r.scenario, r.server, r.notes)
		}
	}
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func TestLedgerCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(l *ledger)
		want counts
	}{
		{"all drained once", func(l *ledger) {
			l.ack(0, true)
			l.ack(1, false)
			l.ran([]byte(workload(0, 10)))
			l.ran([]byte(workload(1, 10)))
		}, counts{Acked: 2, Drained: 2}},
		{"lost and duplicated", func(l *ledger) {
			l.ack(0, true)
			l.ack(1, false)
			l.ack(2, true)
			l.ran([]byte(workload(1, 0)))
			l.ran([]byte(workload(1, 0)))
			l.ran([]byte(workload(1, 0)))
		}, counts{Acked: 3, Drained: 3, Lost: 2, LostEmpty: 2, Dups: 2}},
		{"refused, unanswered, stray", func(l *ledger) {
			l.ack(0, false)
			l.refuse(1, "QUEUE_ERROR")
			l.refuse(2, "QUEUE_ERROR")
			l.lostReply(5)
			l.ran([]byte(workload(0, 0)))
			l.ran([]byte(workload(1, 0))) // refused, yet stored
			l.ran([]byte(workload(7, 0))) // unanswered, stored
			l.ran([]byte("not ours"))
		}, counts{Acked: 1, Refused: 2, Codes: map[string]int{"QUEUE_ERROR": 2}, Unanswered: 5, Drained: 3, Unacked: 2, RefusedRan: 1, Foreign: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger()
			tc.do(l)
			got := l.counts()
			if tc.want.Codes == nil {
				tc.want.Codes = map[string]int{}
			}
			if got.String() != tc.want.String() || got.codes() != tc.want.codes() ||
				got.Lost != tc.want.Lost || got.LostEmpty != tc.want.LostEmpty || got.Drained != tc.want.Drained ||
				got.Unacked != tc.want.Unacked || got.RefusedRan != tc.want.RefusedRan ||
				got.Unanswered != tc.want.Unanswered || got.Foreign != tc.want.Foreign {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWorkload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id, size int
		wantLen  int
	}{{0, 0, 2}, {42, 100, 100}, {123456, 3, 7}} {
		w := workload(tc.id, tc.size)
		if len(w) != tc.wantLen {
			t.Errorf("workload(%d, %d) has %d bytes, want %d", tc.id, tc.size, len(w), tc.wantLen)
		}
		if id, ok := jobID([]byte(w)); !ok || id != tc.id {
			t.Errorf("jobID(workload(%d, %d)) = %d, %v", tc.id, tc.size, id, ok)
		}
	}
	for _, bad := range []string{"", "x", "12", "-1:", "a:b"} {
		if id, ok := jobID([]byte(bad)); ok {
			t.Errorf("jobID(%q) = %d, true, want false", bad, id)
		}
	}
}

func TestResultLine(t *testing.T) {
	t.Parallel()
	r := &result{scenario: "crash", server: "gserverd embedded --sync always",
		counts: &counts{Acked: 10, Lost: 1, LostEmpty: 1, Dups: 2, Refused: 3, Codes: map[string]int{"QUEUE_ERROR": 3}, Drained: 11, RefusedRan: 1, Unacked: 2},
		probes: probes{worst: 1500 * time.Microsecond, worstStatus: 3 * time.Second, cutStatus: true, trips: 9}, peak: 64 << 20}
	r.note("6 SIGKILLs\n  and more")
	r.err = errors.New("boom")
	got := r.String()
	for _, want := range []string{"crash ", "gserverd embedded --sync always", "acked=10 ", "lost=1 ", "dups=2 ", "refused=3 ",
		"worst-latency=1.5ms ", "(status >3s)", "peak-rss=64MiB", "lost: 1 with empty unique, 0 with distinct",
		"1 REFUSED YET RAN", "errors QUEUE_ERROR:3", "6 SIGKILLs and more", "9 probes", "FAILED: boom"} {
		if !strings.Contains(got, want) {
			t.Errorf("line lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("line has a newline: %q", got)
	}
	r.err = errors.New("loadgen: server did not start: gserverd -p 1 exited: level=info x\npanic: no space left on device\n\ngoroutine 1:\n\tf.go:1")
	if got := r.String(); strings.Contains(got, "\n") || !strings.Contains(got, "FAILED: panic: no space left on device") {
		t.Errorf("line with a start error: %q, want one line with the panic", got)
	}
	flood := (&result{scenario: "flood", server: "gearmand", acked: 5}).String()
	for _, want := range []string{"acked=5 ", "lost=- ", "worst-latency=- ", "peak-rss=-"} {
		if !strings.Contains(flood, want) {
			t.Errorf("flood line lacks %q:\n%s", want, flood)
		}
	}
}

func TestKeyLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ out, want string }{
		{"a\nb\nc", "c"},
		{"level=info started\npanic: pebble: fatal commit error\n\ngoroutine 1:\n\tfoo.go:12", "panic: pebble: fatal commit error"},
		{"x\ngserverd: job store: open: no space left\nexit", "gserverd: job store: open: no space left"},
		{"", ""},
	} {
		if got := keyLine(tc.out); got != tc.want {
			t.Errorf("keyLine(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    string // scenarios, comma-joined
	}{
		{"defaults", []string{"-gserverd", "x"}, false, "crash,disk-full,store-stall,flood"},
		{"some", []string{"-gserverd", "x", "-scenarios", "flood, crash"}, false, "flood,crash"},
		{"unknown", []string{"-gserverd", "x", "-scenarios", "nope"}, true, ""},
		{"empty", []string{"-gserverd", "x", "-scenarios", ","}, true, ""},
		{"no gserverd", []string{}, true, ""},
		{"stray", []string{"-gserverd", "x", "y"}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr || errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseFlags(%q): err %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err == nil && strings.Join(c.scenarios, ",") != tc.want {
				t.Errorf("parseFlags(%q): scenarios %q, want %q", tc.args, c.scenarios, tc.want)
			}
		})
	}
}
