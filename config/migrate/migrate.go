// Package migrate converts the configuration of the worker managers that
// gworkerd replaces into gworkerd's YAML (the keys config.LoadWorker
// reads):
//
//   - GearmanManager (brianlmoon/GearmanManager): its .ini file, read the
//     way PHP's parse_ini_file reads it, or its .php file, which defines
//     $gearman_config. The PHP file is parsed, never run: see
//     GearmanManager for the subset of PHP it accepts.
//   - supervisord: a file of [program:x] sections, read the way
//     supervisord reads it (Python's configparser, shlex and %-formats).
//
// Every key that has no gworkerd equivalent is reported with the reason
// (Result.Unmapped), and every mapping that changes behaviour is
// explained (Result.Notes). Both go to the top of the YAML as comments.
//
// The parsers are bounded: a file over MaxFileSize, a line over
// MaxLineSize, bytes that are not UTF-8 or a NUL are rejected with a
// *ParseError naming the file and the line.
package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits of the files an import reads.
const (
	// MaxFileSize is the largest file an import reads: 1 MiB.
	MaxFileSize = 1 << 20
	// MaxLineSize is the longest line an import reads: 64 KiB.
	MaxLineSize = 64 << 10
)

// ErrSyntax is wrapped by every *ParseError.
var ErrSyntax = errors.New("cannot import")

// ParseError is a file the import cannot read: too large, not UTF-8, or
// not valid in its format. It names the file and the line.
type ParseError struct {
	File string
	Line int // 0 when the error is about the whole file
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Unwrap makes errors.Is(err, ErrSyntax) hold.
func (e *ParseError) Unwrap() error { return ErrSyntax }

// Options are the facts about the imported file that its content does not
// hold.
type Options struct {
	// Name is the file as messages and the YAML header name it.
	Name string
	// Dir is the absolute directory of the file: supervisord's %(here)s
	// and PHP's __DIR__. Default: the directory part of Name.
	Dir string
	// LookupEnv resolves supervisord's %(ENV_X)s and PHP ini's ${X}. The
	// import reads this process's environment, not the one the old
	// manager ran with, so every use is reported as a note. Nil: none
	// resolve (they are reported as unmapped).
	LookupEnv func(string) (string, bool)
	// Hostname is supervisord's %(host_node_name)s; "" leaves it
	// unresolved (reported as unmapped).
	Hostname string
}

func (o Options) name() string {
	if o.Name == "" {
		return "-"
	}
	return o.Name
}

func (o Options) dir() string {
	if o.Dir != "" {
		return o.Dir
	}
	if i := strings.LastIndexByte(o.Name, '/'); i > 0 {
		return o.Name[:i]
	} else if i == 0 {
		return "/"
	}
	return "."
}

func (o Options) env(name string) (string, bool) {
	if o.LookupEnv == nil {
		return "", false
	}
	return o.LookupEnv(name)
}

// Finding is a key of the imported file that the import could not map (the
// reason in Msg), or a note on how it mapped one.
type Finding struct {
	Line int    // line of the key in the imported file; 0: the whole file
	Key  string // the key or section, as the imported file names it
	Msg  string
}

// Result is the outcome of an import.
type Result struct {
	// Source is the format imported: "GearmanManager" or "supervisord".
	Source string
	// File is Options.Name.
	File string
	// Config is the gworkerd configuration built.
	Config Config
	// Unmapped are the keys with no gworkerd equivalent, in file order.
	Unmapped []Finding
	// Notes explain mappings that change behaviour, in file order.
	Notes []Finding
}

func (r *Result) unmapped(line int, key, format string, args ...any) {
	r.Unmapped = append(r.Unmapped, Finding{Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (r *Result) note(line int, key, format string, args ...any) {
	r.Notes = append(r.Notes, Finding{Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// finish sorts the findings by line and drops duplicates.
func (r *Result) finish() {
	r.Unmapped = sortFindings(r.Unmapped)
	r.Notes = sortFindings(r.Notes)
}

func sortFindings(fs []Finding) []Finding {
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Line < fs[j].Line })
	seen := map[Finding]bool{}
	out := fs[:0]
	for _, f := range fs {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// where is "file:line" or "file".
func (r *Result) where(line int) string {
	if line > 0 {
		return r.File + ":" + strconv.Itoa(line)
	}
	return r.File
}

// Report is the text for standard error: one line per unmapped key and
// per note, "file:line: key: not mapped: reason".
func (r *Result) Report() string {
	var b strings.Builder
	for _, f := range r.Unmapped {
		fmt.Fprintf(&b, "%s: %s: not mapped: %s\n", r.where(f.Line), printable(f.Key), printable(f.Msg))
	}
	for _, f := range r.Notes {
		fmt.Fprintf(&b, "%s: %s: note: %s\n", r.where(f.Line), printable(f.Key), printable(f.Msg))
	}
	return b.String()
}

// printable replaces control characters (a key read from the file may
// hold them) so that a finding stays one line, in the report and in a
// YAML comment.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff' {
			return '?'
		}
		return r
	}, s)
}

// YAML is the gworkerd configuration, headed by comments that list the
// unmapped keys and the notes. Keys come in a fixed order, functions and
// environment variables sorted by name.
func (r *Result) YAML() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# gworkerd configuration imported from the %s file %s\n", r.Source, printable(r.File))
	fmt.Fprintf(&b, "# by `gworkerd import`. Review the keys below before using it.\n")
	if len(r.Unmapped) > 0 {
		fmt.Fprintf(&b, "#\n# Not mapped (%d):\n", len(r.Unmapped))
		for _, f := range r.Unmapped {
			fmt.Fprintf(&b, "#   %s: %s: %s\n", r.where(f.Line), printable(f.Key), printable(f.Msg))
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(&b, "#\n# Notes (%d):\n", len(r.Notes))
		for _, f := range r.Notes {
			fmt.Fprintf(&b, "#   %s: %s: %s\n", r.where(f.Line), printable(f.Key), printable(f.Msg))
		}
	}
	b.WriteString("\n")
	root := r.Config.node()
	if len(root.Content) == 0 {
		b.WriteString("{}\n")
		return b.Bytes(), nil
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("migrate: encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("migrate: encode yaml: %w", err)
	}
	return b.Bytes(), nil
}

// Config is the part of gworkerd's configuration (config.Worker) that an
// import fills. Zero values are left out of the YAML, so gworkerd's
// defaults apply.
type Config struct {
	Servers    []string // servers
	WorkerDirs []string // worker_dirs
	// FunctionPrefix is function_prefix: it begins the PHP names in the
	// worker_dirs files.
	FunctionPrefix string
	Include        []string // include
	Exclude        []string // exclude
	PidFile        string   // pid_file
	LogFile        string   // log_file
	// StopTimeout is stop_timeout; nil leaves it out.
	StopTimeout *time.Duration
	// Defaults is the defaults section.
	Defaults Function
	// Functions is the functions section; the YAML sorts them by name.
	Functions []Function
	// Comments are put after the value of a top-level key, by key.
	Comments map[string]string
}

// Function is one entry of the functions section (or the defaults
// section). Nil pointers and empty values are left out of the YAML.
type Function struct {
	Name          string
	Command       []string          // command
	Dir           string            // dir
	User          string            // user
	Count         *int              // count
	Disabled      *bool             // disabled
	Timeout       *time.Duration    // timeout
	MaxJobs       *int              // max_jobs
	MaxLifetime   *time.Duration    // max_lifetime
	LifetimeSplay *time.Duration    // lifetime_splay
	ReadyAfter    *time.Duration    // ready_after
	FatalAfter    *int              // fatal_after
	StopTimeout   *time.Duration    // stop_timeout
	Env           map[string]string // env
	// Comments are put after the value of a key, by key.
	Comments map[string]string
}

func (f *Function) comment(key, text string) {
	if f.Comments == nil {
		f.Comments = map[string]string{}
	}
	f.Comments[key] = text
}

func (c *Config) comment(key, text string) {
	if c.Comments == nil {
		c.Comments = map[string]string{}
	}
	c.Comments[key] = text
}

// function returns the entry named name, added when missing.
func (c *Config) function(name string) *Function {
	for i := range c.Functions {
		if c.Functions[i].Name == name {
			return &c.Functions[i]
		}
	}
	c.Functions = append(c.Functions, Function{Name: name})
	return &c.Functions[len(c.Functions)-1]
}

func (c *Config) node() *yaml.Node {
	m := &mapNode{n: &yaml.Node{Kind: yaml.MappingNode}, comments: c.Comments}
	m.strings("servers", c.Servers)
	m.strings("worker_dirs", c.WorkerDirs)
	m.str("function_prefix", c.FunctionPrefix)
	m.strings("include", c.Include)
	m.strings("exclude", c.Exclude)
	m.str("pid_file", c.PidFile)
	m.str("log_file", c.LogFile)
	m.duration("stop_timeout", c.StopTimeout)
	if d := c.Defaults.node(); len(d.Content) > 0 {
		m.add("defaults", d)
	}
	if len(c.Functions) > 0 {
		fs := append([]Function(nil), c.Functions...)
		sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
		fm := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fs {
			v := f.node()
			if len(v.Content) == 0 {
				v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
			}
			fm.Content = append(fm.Content, strNode(f.Name), v)
		}
		m.add("functions", fm)
	}
	return m.n
}

func (f *Function) node() *yaml.Node {
	m := &mapNode{n: &yaml.Node{Kind: yaml.MappingNode}, comments: f.Comments}
	if len(f.Command) > 0 {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, a := range f.Command {
			seq.Content = append(seq.Content, strNode(a))
		}
		m.add("command", seq)
	}
	m.str("dir", f.Dir)
	m.str("user", f.User)
	m.integer("count", f.Count)
	if f.Disabled != nil {
		m.add("disabled", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(*f.Disabled)})
	}
	m.duration("timeout", f.Timeout)
	m.integer("max_jobs", f.MaxJobs)
	m.duration("max_lifetime", f.MaxLifetime)
	m.duration("lifetime_splay", f.LifetimeSplay)
	m.duration("ready_after", f.ReadyAfter)
	m.integer("fatal_after", f.FatalAfter)
	m.duration("stop_timeout", f.StopTimeout)
	if len(f.Env) > 0 {
		keys := make([]string, 0, len(f.Env))
		for k := range f.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		em := &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range keys {
			em.Content = append(em.Content, strNode(k), strNode(f.Env[k]))
		}
		m.add("env", em)
	}
	return m.n
}

// mapNode builds a YAML mapping whose values may carry a comment.
type mapNode struct {
	n        *yaml.Node
	comments map[string]string
}

func (m *mapNode) add(key string, v *yaml.Node) {
	k := strNode(key)
	if c := m.comments[key]; c != "" {
		c = "# " + printable(c)
		if v.Kind == yaml.ScalarNode || (v.Kind == yaml.SequenceNode && v.Style == yaml.FlowStyle) {
			v.LineComment = c
		} else {
			k.HeadComment = c
		}
	}
	m.n.Content = append(m.n.Content, k, v)
}

func (m *mapNode) str(key, v string) {
	if v != "" {
		m.add(key, strNode(v))
	}
}

func (m *mapNode) strings(key string, l []string) {
	if len(l) == 0 {
		return
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, s := range l {
		seq.Content = append(seq.Content, strNode(s))
	}
	m.add(key, seq)
}

func (m *mapNode) integer(key string, v *int) {
	if v != nil {
		m.add(key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(*v)})
	}
}

func (m *mapNode) duration(key string, v *time.Duration) {
	if v != nil {
		m.add(key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: formatDuration(*v)})
	}
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// formatDuration writes whole seconds the way the config is written by
// hand: 1h, 10m, 1h30m, 45s, 0s.
func formatDuration(d time.Duration) string {
	s := int64(d / time.Second)
	if s == 0 {
		return "0s"
	}
	var b strings.Builder
	if h := s / 3600; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m := s % 3600 / 60; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec := s % 60; sec > 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// seconds converts a count of seconds from the imported file; ok is false
// when it does not fit a time.Duration.
func seconds(n int64) (time.Duration, bool) {
	const max = int64(1<<63-1) / int64(time.Second)
	if n < 0 || n > max {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

func ptr[T any](v T) *T { return &v }

// readFile applies the bounds before any parsing (size, line length,
// UTF-8, no NUL) and returns the text with every line ending made "\n"
// (a "\r\n" or a lone "\r" ends a line for PHP and Python too) and a
// leading byte order mark removed. Lines are numbered in that text.
func readFile(data []byte, name string) (string, error) {
	if len(data) > MaxFileSize {
		return "", &ParseError{File: name, Msg: fmt.Sprintf("file is larger than %d bytes (1 MiB)", MaxFileSize)}
	}
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	text := data
	line := 1
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		l := data
		if i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(l) > MaxLineSize {
			return "", &ParseError{File: name, Line: line, Msg: fmt.Sprintf("line is longer than %d bytes (64 KiB)", MaxLineSize)}
		}
		if !utf8.Valid(l) {
			return "", &ParseError{File: name, Line: line, Msg: "line is not valid UTF-8"}
		}
		if bytes.IndexByte(l, 0) >= 0 {
			return "", &ParseError{File: name, Line: line, Msg: "line holds a NUL byte"}
		}
		line++
	}
	return strings.TrimPrefix(string(text), "\ufeff"), nil
}

// validFunctionName is the rule config.Worker.Validate applies.
func validFunctionName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n\x00")
}

// validEnvName is the rule config.Worker.Validate applies.
func validEnvName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "=\x00")
}
