package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// cell is one figure measured on one server.
type cell struct {
	Value float64 `json:"value"`
	// OK is true when Value is a measurement.
	OK bool `json:"ok"`
	// Partial marks a measurement cut short (replies missing at the bound):
	// Value counts only what completed.
	Partial bool `json:"partial,omitempty"`
	// NotRun marks a scenario whose feature is not available (yet), such
	// as a queue type the server was built without; Err says why.
	NotRun bool `json:"not_run,omitempty"`
	// Jobs and Sent count the jobs behind the figure: completed and sent.
	Jobs int    `json:"jobs"`
	Sent int    `json:"sent"`
	Note string `json:"note,omitempty"`
	Err  string `json:"error,omitempty"`
	// PerJob breaks a per-job figure down by kind: the most called
	// system calls of scenario 11, per job.
	PerJob map[string]float64 `json:"per_job,omitempty"`
}

func (c cell) String(unit string) string {
	if !c.OK {
		return "-- " + c.Err
	}
	s := formatValue(c.Value) + " " + unit
	if c.Partial {
		s += " (partial)"
	}
	if c.Note != "" {
		s += " [" + c.Note + "]"
	}
	return s
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// row is one figure across the servers.
type row struct {
	ID     string          `json:"id"`
	Figure string          `json:"figure"`
	Unit   string          `json:"unit"`
	Lower  bool            `json:"lower_is_better"`
	Cells  map[string]cell `json:"results"`
	// Ratio is gserverd / gearmand when both were measured.
	Ratio *float64 `json:"ratio_gserverd_gearmand,omitempty"`
}

type meta struct {
	Started  string            `json:"started"`
	CPUs     int               `json:"cpus"`
	Quick    bool              `json:"quick"`
	RSSWait  string            `json:"rss_wait"`
	Columns  []string          `json:"columns"`
	Commands map[string]string `json:"commands"`
	// Workers describes the worker section's setup, when it ran.
	Workers string `json:"workers,omitempty"`
	// OpenLoop says what the open loop's 100% is, when it ran.
	OpenLoop string `json:"open_loop,omitempty"`
	// Derived are figures computed from the rows, such as gserverd's
	// durable rate over its in-memory rate.
	Derived []string `json:"derived,omitempty"`
}

type report struct {
	Meta meta   `json:"meta"`
	Rows []*row `json:"rows"`
}

func (r *report) failed() bool {
	for _, row := range r.Rows {
		for _, c := range row.Cells {
			if !c.OK && !c.NotRun {
				return true
			}
		}
	}
	return false
}

func (r *report) find(id string) *row {
	for _, row := range r.Rows {
		if row.ID == id {
			return row
		}
	}
	return nil
}

// derive computes the ratios and the durable-to-in-memory comparisons.
func (r *report) derive() {
	for _, row := range r.Rows {
		g, okG := row.Cells["gserverd"]
		c, okC := row.Cells["gearmand"]
		if okG && okC && g.OK && c.OK && !g.Partial && !c.Partial && c.Value > 0 {
			v := g.Value / c.Value
			row.Ratio = &v
		}
	}
	pairs := []struct{ durable, mem, what string }{
		{"6a", "2", "durable / in-memory, pipelined submits"},
		{"6b", "3", "durable / in-memory, background end-to-end"},
		{"7a", "2", "client SubmitBackground / raw pipelined submits"},
		{"7b", "2", "client SubmitBackgroundBatch / raw pipelined submits"},
	}
	for _, p := range pairs {
		d, m := r.find(p.durable), r.find(p.mem)
		if d == nil || m == nil {
			continue
		}
		for _, name := range r.Meta.Columns {
			dc, mc := d.Cells[name], m.Cells[name]
			if dc.OK && mc.OK && !dc.Partial && !mc.Partial && mc.Value > 0 {
				r.Meta.Derived = append(r.Meta.Derived, fmt.Sprintf("%s %s: %.3f", name, p.what, dc.Value/mc.Value))
			}
		}
	}
	r.deriveWorkers() // the closing note
	r.deriveSyscalls()
}

// deriveSyscalls compares the most called system calls of the two
// servers (11), per job: the top of each, side by side.
func (r *report) deriveSyscalls() {
	row := r.find(syscallsScenario)
	if row == nil {
		return
	}
	g, c := row.Cells["gserverd"], row.Cells["gearmand"]
	if !g.OK || !c.OK || g.Partial || c.Partial {
		return
	}
	names := slices.Concat(topKeys(g.PerJob, syscallTop), topKeys(c.PerJob, syscallTop))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(g.PerJob[b]+c.PerJob[b], g.PerJob[a]+c.PerJob[a]), strings.Compare(a, b))
	})
	names = slices.Compact(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		gv, cv := g.PerJob[name], c.PerJob[name]
		parts = append(parts, fmt.Sprintf("%s %s/%s (%s)", name, formatValue(gv), formatValue(cv), formatRatio(gv, cv)))
	}
	r.Meta.Derived = append(r.Meta.Derived, fmt.Sprintf("%s system calls per job, gserverd/gearmand: all %s/%s (%s); the top %d of each: %s",
		syscallsScenario, formatValue(g.Value), formatValue(c.Value), formatRatio(g.Value, c.Value), syscallTop, strings.Join(parts, ", ")))
}

// topKeys returns the keys of the n largest values of m.
func topKeys(m map[string]float64, n int) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b)) })
	return keys[:min(n, len(keys))]
}

// formatRatio returns a/b with two decimals, or "-" when b is 0.
func formatRatio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// Goals of the worker section (issue 9): resident PHP at least this
// fraction of the native pecl loop, and this many times per-job exec.
const (
	goalResidentPecl = 0.9
	goalResidentExec = 20
)

// deriveWorkers writes the worker section's closing note for each
// column: the six figures, resident / pecl loop and resident / per-job
// exec, each against its goal.
func (r *report) deriveWorkers() {
	hs := hostings()
	rows := make([]*row, len(hs))
	for i := range hs {
		if rows[i] = r.find(workersScenario + sub(i, len(hs))); rows[i] == nil {
			return
		}
	}
	// The order of hostings(): resident, exec, pecl, built-in, resident in
	// 4 children, resident without prefetch.
	const resident, exec, pecl = 0, 1, 2
	for _, name := range r.Meta.Columns {
		var figs []string
		for i, h := range hs {
			c := rows[i].Cells[name]
			switch {
			case c.OK && c.Partial:
				figs = append(figs, fmt.Sprintf("%s %s jobs/s (partial)", h.label, formatValue(c.Value)))
			case c.OK:
				figs = append(figs, fmt.Sprintf("%s %s jobs/s", h.label, formatValue(c.Value)))
			case c.NotRun:
				figs = append(figs, h.label+" not run")
			default:
				figs = append(figs, h.label+" failed")
			}
		}
		ratio := func(num, den int, what string, goal float64) string {
			n, d := rows[num].Cells[name], rows[den].Cells[name]
			if !n.OK || !d.OK || n.Partial || d.Partial || d.Value <= 0 {
				return what + " -"
			}
			v := n.Value / d.Value
			verdict := "met"
			if v < goal {
				verdict = "NOT met"
			}
			return fmt.Sprintf("%s %.2f (goal >= %g: %s)", what, v, goal, verdict)
		}
		r.Meta.Derived = append(r.Meta.Derived, fmt.Sprintf("%s worker section: %s; %s; %s", name, strings.Join(figs, ", "),
			ratio(resident, pecl, "resident / pecl loop", goalResidentPecl),
			ratio(resident, exec, "resident / per-job exec", goalResidentExec)))
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints a Markdown table, then the notes behind every cell.
func (r *report) writeTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gbench %s, %d CPUs (load generator and servers share them)", r.Meta.Started, r.Meta.CPUs)
	if r.Meta.Quick {
		b.WriteString(", QUICK mode: small counts, figures are not meaningful")
	}
	b.WriteString("\n")
	for _, name := range r.Meta.Columns {
		fmt.Fprintf(&b, "  %s: %s\n", name, r.Meta.Commands[name])
	}
	if r.Meta.Workers != "" {
		fmt.Fprintf(&b, "  worker section (%s): %s\n", workersScenario, r.Meta.Workers)
	}
	if r.Meta.OpenLoop != "" {
		fmt.Fprintf(&b, "  open loop (%s): %s\n", openLoopScenario, r.Meta.OpenLoop)
	}
	if len(r.Meta.Columns) == 2 {
		b.WriteString("  gserverd/gearmand: above 1.0 is better where higher is better (rates); 1.0 or below is better where lower is better (latency, CPU, system calls, memory)\n")
	}
	b.WriteString("\n")
	head := []string{"#", "figure", "unit", "better"}
	head = append(head, r.Meta.Columns...)
	if len(r.Meta.Columns) == 2 {
		head = append(head, "gserverd/gearmand")
	}
	table := [][]string{head}
	for _, row := range r.Rows {
		better := "higher"
		if row.Lower {
			better = "lower"
		}
		line := []string{row.ID, row.Figure, row.Unit, better}
		for _, name := range r.Meta.Columns {
			c := row.Cells[name]
			switch {
			case c.OK && c.Partial:
				line = append(line, formatValue(c.Value)+" (partial)")
			case c.OK:
				line = append(line, formatValue(c.Value))
			case c.NotRun:
				line = append(line, "not run")
			default:
				line = append(line, "failed")
			}
		}
		if len(r.Meta.Columns) == 2 {
			if row.Ratio != nil {
				line = append(line, strconv.FormatFloat(*row.Ratio, 'f', 2, 64))
			} else {
				line = append(line, "-")
			}
		}
		table = append(table, line)
	}
	writeMarkdown(&b, table)
	b.WriteString("\nNotes:\n")
	for _, row := range r.Rows {
		for _, name := range r.Meta.Columns {
			c := row.Cells[name]
			text := c.Note
			if !c.OK {
				text = c.Err
			}
			if text == "" {
				continue
			}
			fmt.Fprintf(&b, "- %s %s: %s\n", row.ID, name, text)
		}
	}
	if r.find("4c") != nil || r.find("5c") != nil {
		fmt.Fprintf(&b, "- 4c and 5c read RSS %s after the drain, so that a garbage-collected runtime (gserverd) can return freed memory to the system; gearmand gets the same wait.\n", r.Meta.RSSWait)
	}
	for _, d := range r.Meta.Derived {
		fmt.Fprintf(&b, "- %s\n", d)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMarkdown writes rows as a Markdown table with padded columns.
func writeMarkdown(b *strings.Builder, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, s := range r {
			width[i] = max(width[i], len([]rune(s)))
		}
	}
	line := func(r []string) {
		b.WriteString("|")
		for i, s := range r {
			fmt.Fprintf(b, " %s%s |", s, strings.Repeat(" ", width[i]-len([]rune(s))))
		}
		b.WriteString("\n")
	}
	line(rows[0])
	b.WriteString("|")
	for _, wd := range width {
		b.WriteString(strings.Repeat("-", wd+2) + "|")
	}
	b.WriteString("\n")
	for _, r := range rows[1:] {
		line(r)
	}
}
