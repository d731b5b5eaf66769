package main

import (
	"fmt"
	"strings"
	"time"
)

// result is one line of the report: one scenario against one server.
type result struct {
	scenario string // crash, disk-full, store-stall, flood
	server   string // the server and its store, e.g. "gserverd embedded --sync always"
	counts   *counts
	acked    int    // for a scenario without a ledger (flood): JOB_CREATED received
	probes   probes // the bystander's
	peak     int64  // peak RSS of the server (every incarnation), bytes
	notes    []string
	err      error // the scenario could not run to its end
}

func (r *result) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// String formats the result as one line: the figures the issue asks for
// first (acked, lost, duplicates, bystander's worst latency, peak RSS),
// then the details.
func (r *result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-11s %-40s", r.scenario, r.server)
	if r.counts != nil {
		c := r.counts
		fmt.Fprintf(&b, " acked=%-7d lost=%-5d dups=%-5d refused=%-6d", c.Acked, c.Lost, c.Dups, c.Refused)
	} else {
		fmt.Fprintf(&b, " acked=%-7d lost=%-5s dups=%-5s refused=%-6s", r.acked, "-", "-", "-")
	}
	worst, worstStatus := "-", "-"
	if p := r.probes; p.trips > 0 {
		worst = latency(p.worst, p.cut)
		worstStatus = latency(p.worstStatus, p.cutStatus)
	}
	fmt.Fprintf(&b, " worst-latency=%-9s %-19s peak-rss=%-7s", worst, "(status "+worstStatus+")", mib(r.peak))
	var notes []string
	if r.counts != nil {
		c := r.counts
		notes = append(notes, fmt.Sprintf("drained %d", c.Drained))
		if c.Lost > 0 {
			notes = append(notes, fmt.Sprintf("lost: %d with empty unique, %d with distinct", c.LostEmpty, c.Lost-c.LostEmpty))
		}
		if c.Unacked > 0 {
			notes = append(notes, fmt.Sprintf("%d drained never acked", c.Unacked))
		}
		if c.RefusedRan > 0 {
			notes = append(notes, fmt.Sprintf("%d REFUSED YET RAN", c.RefusedRan))
		}
		if c.Unanswered > 0 {
			notes = append(notes, fmt.Sprintf("%d unanswered", c.Unanswered))
		}
		if c.Refused > 0 {
			notes = append(notes, "errors "+c.codes())
		}
		if c.Foreign > 0 {
			notes = append(notes, fmt.Sprintf("%d foreign jobs drained", c.Foreign))
		}
	}
	for _, n := range r.notes {
		notes = append(notes, oneLine(n))
	}
	if r.probes.trips > 0 {
		notes = append(notes, fmt.Sprintf("%d probes", r.probes.trips))
	}
	if r.err != nil {
		notes = append(notes, "FAILED: "+oneLine(startError(r.err)))
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	return b.String()
}

func mib(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fMiB", float64(n)/(1<<20))
}

// latency formats a worst round trip; ">" marks one cut short by the end
// of the scenario (still unanswered then).
func latency(d time.Duration, cut bool) string {
	s := d.Round(100 * time.Microsecond).String()
	if cut {
		s = ">" + s
	}
	return s
}

// oneLine keeps a note on the result's line: its whitespace, newlines
// included, collapsed.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
