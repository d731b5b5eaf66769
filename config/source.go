// Package config holds the typed configuration of gserverd (server.go),
// gworkerd (worker.go) and gclient (client.go), and the one loader they
// share (source.go). Each program has a table of keys; every key is read
// from, in this order, its flag (--job-retries), its environment variable
// (GSERVERD_JOB_RETRIES), the YAML config file (job_retries: 3) and its
// default, and the loaded configuration records which of them gave it
// (Source), so that an error names the flag, the variable, or the file
// and line. In every program a key the file does not know is an error
// naming its line. Relative paths are made absolute as they are loaded,
// before anything detaches: those in the file against the file's
// directory, those of a flag or a variable against the working directory.
// Each setting and its default is written once, in the key table, or in
// the library that uses it (storeconf for the job store's).
//
// Viper is not used, although the design card names it: the loader must
// do what viper cannot. Viper decodes the file into a map, which loses
// the line of every key (yaml.v3's nodes keep them); it lowercases keys,
// where gworkerd's function names are case-sensitive; it reads only the
// process's environment, so a test cannot give one and run in parallel;
// and it does not tell which layer a value came from, so tracking sources
// meant asking every layer again beside it. That is what the three
// loaders it replaced did: gserverd parsed its file twice, gworkerd used
// viper as a scratch map, and gclient, the one program that used it
// plainly, accepted TOML the daemons refuse and ignored unknown keys.
// Once the file is read from yaml.v3's nodes, what viper would still do,
// binding variables and flags, is the few lines of loader.pick. (A JSON
// config file still loads: JSON is YAML.)
package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// This file is the loader the three programs share: a table of keys per
// program, each read from the layers in one order (flag, environment,
// file, default) and recording its Source.

// Inputs are what a load reads besides the config file.
type Inputs struct {
	// Flags are the parsed command line, with the program's flags
	// registered (ServerFlags, WorkerFlags, ClientFlags); nil for none.
	Flags *pflag.FlagSet
	// LookupEnv reads the environment (os.LookupEnv in main); nil for
	// none.
	LookupEnv func(string) (string, bool)
	// WorkDir is the directory that relative paths given by a flag or an
	// environment variable are relative to; "" is the process's working
	// directory. (Relative paths in the file are relative to the file's
	// directory.)
	WorkDir string
}

func (in Inputs) env(name string) (string, bool) {
	if in.LookupEnv == nil || name == "" {
		return "", false
	}
	return in.LookupEnv(name)
}

// SourceKind tells where a configuration value came from.
type SourceKind int

// Kinds of source. A flag wins over the environment, which wins over the
// file, which wins over the default.
const (
	SourceDefault SourceKind = iota
	SourceFlag
	SourceEnv
	SourceFile
)

// Source is where one value came from: the flag, the environment variable,
// or the file and line.
type Source struct {
	Kind SourceKind
	Name string // "--port", "GSERVERD_PORT", the file's path; "" for defaults
	Line int    // file line, 0 if unknown
}

func (s Source) String() string {
	switch s.Kind {
	case SourceFlag:
		return "flag " + s.Name
	case SourceEnv:
		return "environment variable " + s.Name
	case SourceFile:
		if s.Line > 0 {
			return s.Name + ":" + strconv.Itoa(s.Line)
		}
		return s.Name
	}
	return "default"
}

// fileSource is the Source of line of the file at path (0: the file).
func fileSource(path string, line int) Source {
	return Source{Kind: SourceFile, Name: path, Line: line}
}

// ErrInvalid is wrapped by every configuration error (*Error).
var ErrInvalid = errors.New("invalid config")

// Error is a configuration error: the key, the flag, variable or file
// (and line) that gave the bad value, and what is wrong with it.
type Error struct {
	// Key is the file key ("job_retries", "functions.F.count"); "" for
	// the file as a whole.
	Key    string
	Source Source
	Msg    string
}

func (e *Error) Error() string {
	switch e.Source.Kind {
	case SourceFlag:
		return e.Source.Name + ": " + e.Msg
	case SourceEnv:
		return fmt.Sprintf("%s (environment): %s: %s", e.Source.Name, e.Key, e.Msg)
	case SourceFile:
		if e.Key == "" {
			return e.Source.String() + ": " + e.Msg
		}
		return fmt.Sprintf("%s: %s: %s", e.Source, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// origins records where each value of a loaded configuration came from.
type origins struct{ m map[string]Source }

// Source returns where the value of key (a file key such as
// "job_retries") came from.
func (o origins) Source(key string) Source { return o.m[key] }

type keyKind int

const (
	kindString keyKind = iota
	kindInt
	kindBool
	kindList
	kindDuration
	// kindSection is a mapping the program decodes itself (gworkerd's
	// functions): a file key only.
	kindSection
)

type pathKind int

const (
	pathNone    pathKind = iota
	pathFile             // a relative path is resolved
	pathProgram          // resolved only with a slash; a bare name is looked up in $PATH
)

// key is one setting of a program's configuration C: its file key, from
// which its flag (--job-retries) and environment variable
// (GSERVERD_JOB_RETRIES) are named, and how to parse it into C.
type key[C any] struct {
	// name is the file key, lower case with '_'; "resize.max_pixels" is
	// max_pixels in the file's resize section.
	name  string
	short string
	kind  keyKind
	def   string
	usage string
	path  pathKind
	// keep are the values a path key keeps as they are (log_file's
	// "stderr" and "none").
	keep   []string
	noFile bool // only a flag or the environment gives it (the file's name)
	noFlag bool
	// overrideEnv, when set in the environment, wins over every other
	// source (gearmand's GEARMAND_SERVER_PEM and friends do).
	overrideEnv string
	// fallbackEnv comes after the program's own variable, before the
	// file (gearmand's GEARMAND_PORT).
	fallbackEnv string
	// ignored, when set, is why gserverd accepts this gearmand option and
	// ignores it; giving it adds a line to Server.Warnings.
	ignored string
	set     func(c *C, s string, list []string) error
}

func (k key[C]) flag() string {
	if k.kind == kindSection || k.noFlag {
		return ""
	}
	return strings.NewReplacer("_", "-", ".", "-").Replace(k.name)
}

// table is a program's keys and the prefix of its environment
// variables.
type table[C any] struct {
	envPrefix string // "GSERVERD_"
	keys      []key[C]
}

func (t table[C]) env(k key[C]) string {
	if k.kind == kindSection {
		return ""
	}
	return t.envPrefix + strings.ToUpper(strings.ReplaceAll(k.name, ".", "_"))
}

// envVars returns the environment variables of the keys, in table order.
func (t table[C]) envVars() []string {
	var out []string
	for _, k := range t.keys {
		if e := t.env(k); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// register adds the keys' flags to fs.
func (t table[C]) register(fs *pflag.FlagSet) {
	for _, k := range t.keys {
		if k.flag() == "" {
			continue
		}
		r := &rawFlag{kind: k.kind, s: k.def}
		if k.kind == kindList {
			r.list = splitList(k.def) // shown as the default; replaced by the first Set
		}
		f := fs.VarPF(r, k.flag(), k.short, k.usage)
		if k.kind == kindBool {
			f.NoOptDefVal = "true"
		}
	}
}

// rawFlag holds a flag's text until the load parses it, so every value,
// whatever its source, goes through the same checks and error messages.
type rawFlag struct {
	kind keyKind
	s    string
	list []string
	set  bool // Set was called: a list flag accumulates from there
}

func (r *rawFlag) String() string {
	if r.kind == kindList {
		return strings.Join(r.list, ",")
	}
	return r.s
}

func (r *rawFlag) Set(s string) error {
	if r.kind == kindList {
		if !r.set {
			r.list = nil
		}
		r.set = true
		r.list = append(r.list, strings.Split(s, ",")...)
		return nil
	}
	r.s = s
	return nil
}

func (r *rawFlag) Type() string {
	switch r.kind {
	case kindInt:
		return "int"
	case kindBool:
		return "bool"
	case kindList:
		return "strings"
	case kindDuration:
		return "duration"
	}
	return "string"
}

// FlagArgs returns the flags of fs that were given and that a load
// reads, as --name=value arguments, so that a process can hand its
// command line's settings on to another (gworkerd's daemon).
func FlagArgs(fs *pflag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) { // not Visit: cobra parses a command's copy of its parents' flags
		if !f.Changed {
			return
		}
		if r, ok := f.Value.(*rawFlag); ok {
			if r.kind == kindList {
				for _, s := range r.list {
					out = append(out, "--"+f.Name+"="+s)
				}
				return
			}
			out = append(out, "--"+f.Name+"="+r.s)
		}
	})
	return out
}

// value is one setting as a layer gave it.
type value struct {
	s    string
	list []string
	src  Source
}

// loader reads one program's settings from the layers.
type loader[C any] struct {
	t    table[C]
	in   Inputs
	file *fileValues // nil: no file
	src  map[string]Source
}

func newLoader[C any](t table[C], in Inputs) *loader[C] {
	return &loader[C]{t: t, in: in, src: map[string]Source{}}
}

// pick returns the value of k from the first layer that has it.
func (l *loader[C]) pick(k key[C]) (value, error) {
	envValue := func(name, v string) value {
		return value{s: v, list: splitList(v), src: Source{Kind: SourceEnv, Name: name}}
	}
	if v, ok := l.in.env(k.overrideEnv); ok && v != "" {
		return envValue(k.overrideEnv, v), nil
	}
	if name := k.flag(); name != "" && l.in.Flags != nil {
		if f := l.in.Flags.Lookup(name); f != nil && f.Changed {
			if r, ok := f.Value.(*rawFlag); ok {
				return value{s: r.s, list: r.list, src: Source{Kind: SourceFlag, Name: "--" + name}}, nil
			}
		}
	}
	if name := l.t.env(k); name != "" {
		if v, ok := l.in.env(name); ok {
			return envValue(name, v), nil
		}
	}
	if v, ok := l.in.env(k.fallbackEnv); ok && v != "" {
		return envValue(k.fallbackEnv, v), nil
	}
	if l.file != nil {
		if fv, ok := l.file.vals[k.name]; ok {
			src := fileSource(l.file.path, fv.line)
			if fv.err != "" {
				return value{}, &Error{Key: k.name, Source: src, Msg: fv.err}
			}
			return value{s: fv.s, list: fv.list, src: src}, nil
		}
	}
	var list []string
	if k.def != "" {
		list = splitList(k.def)
	}
	return value{s: k.def, list: list}, nil
}

// apply sets k in c from its layer, with relative paths resolved, and
// records its source.
func (l *loader[C]) apply(c *C, k key[C]) (Source, error) {
	v, err := l.pick(k)
	if err != nil {
		return Source{}, err
	}
	if v.src.Kind == SourceDefault && k.def == "" {
		// No layer gives it and it has no default: the zero value.
		l.src[k.name] = v.src
		return v.src, nil
	}
	if k.path != pathNone && v.src.Kind != SourceDefault {
		base := l.in.WorkDir
		if v.src.Kind == SourceFile {
			base = l.file.dir
		}
		v.s = resolvePath(k, base, v.s)
		for i, p := range v.list {
			v.list[i] = resolvePath(k, base, p)
		}
	}
	if err := k.set(c, v.s, v.list); err != nil {
		return v.src, &Error{Key: k.name, Source: v.src, Msg: err.Error()}
	}
	l.src[k.name] = v.src
	return v.src, nil
}

// applyAll applies every key but the sections and those skipped.
func (l *loader[C]) applyAll(c *C, skip ...string) error {
next:
	for _, k := range l.t.keys {
		if k.kind == kindSection {
			continue
		}
		for _, s := range skip {
			if k.name == s {
				continue next
			}
		}
		if _, err := l.apply(c, k); err != nil {
			return err
		}
	}
	return nil
}

// resolvePath makes p absolute against base, the directory it is
// relative to ("": the working directory).
func resolvePath(k interface{ keeps(string) bool }, base, p string) string {
	if p == "" || filepath.IsAbs(p) || k.keeps(p) {
		return p
	}
	if base == "" {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	return filepath.Join(base, p)
}

func (k key[C]) keeps(p string) bool {
	if k.path == pathProgram && !strings.Contains(p, "/") {
		return true
	}
	for _, w := range k.keep {
		if p == w {
			return true
		}
	}
	return false
}

// configFile returns the file the config-file key k names (from a flag,
// the environment or its default), made absolute.
func (l *loader[C]) configFile(k key[C]) (string, Source) {
	v, _ := l.pick(k) // noFile: no file layer yet, no error
	if v.s != "" && v.src.Kind != SourceDefault {
		v.s = resolvePath(k, l.in.WorkDir, v.s)
	}
	return v.s, v.src
}

// maxConfigFile bounds the config file read, in either format.
const maxConfigFile = 1 << 20

// readConfig reads the config file at path, bounded.
func readConfig(path string) ([]byte, error) {
	fileErr := func(msg string) error { return &Error{Source: fileSource(path, 0), Msg: msg} }
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fileErr("cannot read the config file: " + err.Error())
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fileErr("cannot read the config file: " + err.Error())
	}
	if len(data) > maxConfigFile {
		return nil, fileErr(fmt.Sprintf("larger than %d bytes", maxConfigFile))
	}
	return data, nil
}

// fileValues are the settings of a config file by key, with their lines.
type fileValues struct {
	path     string // as given, for messages
	dir      string // the file's directory, absolute
	vals     map[string]fileValue
	sections map[string]*yaml.Node // kindSection keys
	verbose  int                   // gearmand's format: the number of -v
}

type fileValue struct {
	s    string
	list []string
	line int
	err  string // the value has the wrong shape
}

func newFileValues(path string) *fileValues {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &fileValues{path: path, dir: dir, vals: map[string]fileValue{}, sections: map[string]*yaml.Node{}}
}

// normKey is the key a file key names: case and '-' or '_' do not
// matter (job-retries, JOB_RETRIES).
func normKey(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }

// parseYAML reads the YAML config file data (from path) against the
// keys of t. Every key it does not know is an error naming its line;
// lenient skips them instead (and a file that is not YAML gives no
// values), for the settings a broken file still gives.
func (t table[C]) parseYAML(path string, data []byte, lenient bool) (*fileValues, error) {
	fv := newFileValues(path)
	fileErr := func(line int, key, msg string) error {
		if lenient {
			return nil
		}
		return &Error{Key: key, Source: fileSource(path, line), Msg: msg}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if lenient {
			return fv, nil
		}
		return nil, fileErr(0, "", "not valid YAML: "+err.Error())
	}
	if len(doc.Content) == 0 {
		return fv, nil
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		return fv, nil
	}
	if root.Kind != yaml.MappingNode {
		return fv, fileErr(root.Line, "", "the top level must be a mapping of option: value")
	}
	known := map[string]key[C]{}
	sections := map[string]bool{} // "resize" of resize.max_pixels
	for _, k := range t.keys {
		known[k.name] = k
		if s, _, ok := strings.Cut(k.name, "."); ok {
			sections[s] = true
		}
	}
	// mapping reads the pairs of n, a mapping, into fv; prefix is the
	// section ("resize.") or "".
	var mapping func(n *yaml.Node, prefix string) error
	mapping = func(n *yaml.Node, prefix string) error {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], deref(n.Content[i+1])
			name := prefix + normKey(kn.Value)
			if seen[name] {
				if err := fileErr(kn.Line, name, "duplicate key"); err != nil {
					return err
				}
				continue
			}
			seen[name] = true
			k, ok := known[name]
			switch {
			case ok && k.noFile:
				if err := fileErr(kn.Line, name, "cannot be set inside the config file"); err != nil {
					return err
				}
			case ok && k.kind == kindSection:
				fv.sections[name] = vn
			case ok:
				fv.vals[name] = nodeValue(k.kind, vn, kn.Line)
			case prefix == "" && sections[name]:
				if isNull(vn) {
					continue
				}
				if vn.Kind != yaml.MappingNode {
					if err := fileErr(kn.Line, name, "want a mapping of settings"); err != nil {
						return err
					}
					continue
				}
				if err := mapping(vn, name+"."); err != nil {
					return err
				}
			default:
				if err := fileErr(kn.Line, name, "unknown key"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := mapping(root, ""); err != nil {
		return nil, err
	}
	return fv, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// nodeValue is the value of a key of kind in the file, or what is wrong
// with its shape.
func nodeValue(kind keyKind, n *yaml.Node, line int) fileValue {
	fv := fileValue{line: line}
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		fv.s = n.Value
		if kind == kindList {
			fv.list = splitList(n.Value)
		}
	case n.Kind == yaml.SequenceNode && kind == kindList:
		for _, c := range n.Content {
			if c = deref(c); c.Kind != yaml.ScalarNode {
				fv.err = "want a list of strings"
				return fv
			}
			fv.list = append(fv.list, c.Value)
		}
	case kind == kindList:
		fv.err = "want a list of strings"
	case n.Kind == yaml.SequenceNode:
		fv.err = "want a single value, got a list"
	default:
		fv.err = "want a single value"
	}
	return fv
}

// splitList splits a list given as one string (an environment variable,
// a flag or a file's string): commas, spaces and tabs separate the items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// Setters shared by the programs' tables.

func intSetter[C any](dst func(*C) *int, check func(int) error) func(*C, string, []string) error {
	return func(c *C, s string, _ []string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		if check != nil {
			if err := check(n); err != nil {
				return fmt.Errorf("%v, got %d", err, n)
			}
		}
		*dst(c) = n
		return nil
	}
}

// parseBool accepts YAML's and strconv's words: true, yes, on, 1 ...
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("want true or false, got %q", s)
	}
	return b, nil
}

func boolSetter[C any](dst func(*C) *bool) func(*C, string, []string) error {
	return func(c *C, s string, _ []string) error {
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		*dst(c) = b
		return nil
	}
}

func stringSetter[C any](dst func(*C) *string, check func(string) (string, error)) func(*C, string, []string) error {
	return func(c *C, s string, _ []string) error {
		if check != nil {
			v, err := check(s)
			if err != nil {
				return err
			}
			s = v
		}
		*dst(c) = s
		return nil
	}
}

func listSetter[C any](dst func(*C) *[]string) func(*C, string, []string) error {
	return func(c *C, _ string, list []string) error {
		*dst(c) = list
		return nil
	}
}

// durationSetter parses a duration (parseDuration).
func durationSetter[C any](dst func(*C) *time.Duration) func(*C, string, []string) error {
	return func(c *C, s string, _ []string) error {
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		*dst(c) = d
		return nil
	}
}

// parseDuration parses a Go duration ("1m30s") or a number of seconds
// ("90", "1.5"), at least 0.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(n) || n > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("want a duration such as 30s or 2m, got %q", s)
		}
		d = time.Duration(n * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("want a duration such as 30s or 2m, got %q", s)
	}
	if d < 0 {
		return 0, errors.New("want a duration >= 0 (0: none)")
	}
	return d, nil
}

// parseSize parses a size: bytes, or a number with a unit K, KB, KiB,
// M, MB, MiB, G, GB, GiB (all powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want a size like 65536 or 64MiB, got %q", s)
	}
	mul := int64(1)
	switch strings.ToUpper(strings.TrimSpace(t[i:])) {
	case "", "B":
	case "K", "KB", "KIB":
		mul = 1 << 10
	case "M", "MB", "MIB":
		mul = 1 << 20
	case "G", "GB", "GIB":
		mul = 1 << 30
	default:
		return 0, fmt.Errorf("want a size like 65536 or 64MiB, got %q", s)
	}
	if n > math.MaxInt64/mul {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mul, nil
}

func atLeast(min int) func(int) error {
	return func(n int) error {
		if n < min {
			return fmt.Errorf("want at least %d", min)
		}
		return nil
	}
}
