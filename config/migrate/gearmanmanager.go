package migrate

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gworkerd/gworkerd/protocol"
)

// GearmanManager converts a GearmanManager configuration into gworkerd's.
// GearmanManager (GearmanManager::parse_config) reads a file whose name
// ends in .ini with PHP's parse_ini_file($file, true), and requires a
// file whose name ends in .php, then uses the array in its variable
// $gearman_config; the value the file returns is ignored. Both give an
// array of sections: "GearmanManager" (this exact case) holds the global
// settings, every other section is named after a function and holds its
// settings. A name with another ending is sniffed (<?php or not), with a
// note, since GearmanManager itself would find no configuration in it.
//
// The .ini file is read with parse_ini_file's rules: ; comments, keys
// that are trimmed and case-sensitive, "..." values (\" and \\ escapes,
// may span lines), '...' raw values, yes/on/true → "1" and
// no/off/false/none/null → "" (not PHP's null), key[] = v lists,
// ${NAME} filled from the environment (Options.LookupEnv, with a note),
// a later [section] of the same name replacing the earlier one. PHP's
// bitwise expressions (| & ~ ! ^ and parentheses) are rejected.
//
// The .php file is parsed, not run (PHP need not be installed, and a
// config file should not run code at import): it may hold assignments
// $name = EXPR; and $name[KEY]...[KEY] = EXPR; where EXPR is a string
// ('...' or "..." without interpolation), an integer, true, false, null,
// an array (array(...) or [...], keys optional, nested), a variable
// assigned before, __DIR__, __FILE__, dirname(EXPR), or EXPR . EXPR;
// plus comments, declare(...); and the <?php ?> tags. Anything else is a
// *ParseError naming the line.
//
// GearmanManager's processes and gworkerd's differ in one way that the
// counts must bridge: GearmanManager starts `count` processes that each
// serve every function ("do all" workers) and, per function, processes
// dedicated to it; gworkerd runs one function per child. The import
// gives each function as many children as GearmanManager had processes
// registered for it: count = max(count, its [function] count, count +
// dedicated_count), or dedicated_count alone for a dedicated_only
// function (GearmanManager::load_workers). The per-function capacity is
// kept; the total number of processes grows, which a note says.
//
// Durations are seconds in GearmanManager. Its defaults that differ from
// gworkerd's are written out: max_worker_lifetime 3600 and
// worker_restart_splay 600 (GearmanManager always recycles workers), and
// its shutdown wait, a fixed 60 seconds.
//
// GearmanManager's prefix is gworkerd's function_prefix: both register
// every function under its file name and use the prefix only to find the
// PHP function or class inside the file (prefix.name, as in
// GearmanPeclManager::do_job and validate_lib_workers).
func GearmanManager(data []byte, opt Options) (*Result, error) {
	name := opt.name()
	src, err := readFile(data, name)
	if err != nil {
		return nil, err
	}
	res := &Result{Source: "GearmanManager", File: name}
	isPHP := strings.HasSuffix(name, ".php")
	if !isPHP && !strings.HasSuffix(name, ".ini") {
		isPHP = strings.Contains(src, "<?php")
		kind := "an .ini file"
		if isPHP {
			kind = "a .php file"
		}
		res.note(0, "(file)", "GearmanManager reads a config file only when its name ends in .ini or .php; read as %s", kind)
	}
	var secs []gmSection
	if isPHP {
		secs, err = parsePHPConfig(src, name, opt)
	} else {
		secs, err = parseGMIni(src, name, opt, res)
	}
	if err != nil {
		return nil, err
	}
	mapGearmanManager(secs, res)
	res.finish()
	return res, nil
}

// gmSection is one entry of $gearman_config.
type gmSection struct {
	name   string
	line   int
	keys   []gmKey
	scalar bool // the entry is not an array: not a section
}

// gmKey is one setting of a section.
type gmKey struct {
	name string
	line int
	val  gmVal
}

// gmVal is a setting's value as PHP gives it to GearmanManager: a string
// (ints and bools already converted the way PHP converts them), a list
// of strings, or something nothing maps.
type gmVal struct {
	s      string
	list   []string
	isList bool
	null   bool // PHP null: isset() is false
	nested bool // an array holding arrays
	env    []string
}

func (s *gmSection) set(k gmKey) {
	for i := range s.keys {
		if s.keys[i].name == k.name {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			break
		}
	}
	s.keys = append(s.keys, k)
}

// The defaults of GearmanManager that gworkerd's differ from.
const (
	gmDefaultLifetime = 3600 // max_worker_lifetime
	gmDefaultSplay    = 600  // worker_restart_splay
	gmDefaultStopWait = 60   // seconds between SIGTERM and SIGKILL at stop
	gmGlobal          = "GearmanManager"
)

// gmGlobalKeys are the keys GearmanManager reads in [GearmanManager].
var gmGlobalKeys = map[string]bool{
	"host": true, "worker_dir": true, "include": true, "exclude": true, "count": true,
	"dedicated_count": true, "max_worker_lifetime": true, "worker_restart_splay": true,
	"max_runs_per_worker": true, "timeout": true, "user": true, "pid_file": true,
	"log_file": true, "prefix": true, "auto_update": true, "daemon": true, "verbose": true,
	"worker_initial_spawn_splay": true,
}

// gmFunctionKeys are the keys GearmanManager reads in a function's section.
var gmFunctionKeys = map[string]bool{
	"count": true, "dedicated_count": true, "dedicated_only": true, "timeout": true, "priority": true,
}

func mapGearmanManager(secs []gmSection, res *Result) {
	c := &res.Config
	var global *gmSection
	var funcs []*gmSection
	for i := range secs {
		s := &secs[i]
		switch {
		case s.scalar:
			res.unmapped(s.line, s.name, "a value outside any section: GearmanManager reads only sections ([GearmanManager] and one per function)")
		case s.name == gmGlobal:
			global = s
		case strings.EqualFold(s.name, gmGlobal):
			res.unmapped(s.line, s.name, "GearmanManager reads its settings only from a section named exactly GearmanManager, and takes no function from this one")
		case !validFunctionName(s.name):
			res.unmapped(s.line, s.name, "not a valid function name for gworkerd (empty or holds a blank)")
		default:
			funcs = append(funcs, s)
		}
	}
	if global == nil {
		global = &gmSection{}
		if len(secs) > 0 {
			res.note(0, gmGlobal, "no [GearmanManager] section: GearmanManager's defaults are written out")
		}
	}
	g := map[string]gmKey{}
	for _, k := range global.keys {
		g[k.name] = k
	}
	d := &c.Defaults

	// Servers: host, comma-separated or an array, port 4730 by default.
	if k, ok := g["host"]; ok && !k.val.null && !k.val.nested && (k.val.isList || k.val.s != "") {
		items := k.val.list
		if !k.val.isList {
			items = strings.Split(k.val.s, ",")
		}
		for _, h := range items {
			if h = strings.TrimSpace(h); h != "" {
				c.Servers = append(c.Servers, protocol.ServerAddr(h))
			}
		}
	}
	// worker_dir: comma-separated or an array; default ./workers.
	if k, ok := g["worker_dir"]; ok && !k.val.null && !k.val.nested && (k.val.isList || k.val.s != "") {
		items := k.val.list
		if !k.val.isList {
			items = strings.Split(k.val.s, ",")
		}
		for _, dir := range items {
			if dir = strings.TrimSpace(dir); dir != "" {
				c.WorkerDirs = append(c.WorkerDirs, dir)
			}
		}
	} else {
		c.WorkerDirs = []string{"./workers"}
		c.comment("worker_dirs", "GearmanManager's default")
	}
	for _, dir := range c.WorkerDirs {
		if !path.IsAbs(dir) {
			res.note(g["worker_dir"].line, "worker_dir", "%q is relative to the directory GearmanManager was started in: make it absolute", dir)
		}
	}
	for _, key := range []string{"include", "exclude"} {
		k, ok := g[key]
		if !ok || k.val.null || (!k.val.isList && (k.val.s == "" || k.val.s == "0" || (key == "include" && k.val.s == "*"))) {
			continue
		}
		if k.val.isList || k.val.nested {
			res.unmapped(k.line, key, "GearmanManager wants a comma-separated string here (it calls explode on it), not an array")
			continue
		}
		var names []string
		trimmed := false
		for _, n := range strings.Split(k.val.s, ",") {
			t := strings.TrimSpace(n)
			trimmed = trimmed || t != n
			if t != "" {
				names = append(names, t)
			}
		}
		if trimmed {
			res.note(k.line, key, "names trimmed of blanks: GearmanManager compared them untrimmed, so a name after \", \" matched no function there")
		}
		if key == "include" {
			c.Include = names
		} else {
			c.Exclude = names
		}
	}

	// Counts (GearmanManager::load_workers and bootstrap).
	doAll := 0
	if k, ok := g["count"]; ok {
		if n, ok := gmInt(k, res); ok && n > 0 {
			doAll = n
		}
	}
	dedicated := 0
	if k, ok := g["dedicated_count"]; ok {
		if n, ok := gmInt(k, res); ok && n > 0 {
			dedicated = n
		}
	}
	capacity := func(count, ded int) int {
		minCount := max(doAll, 1)
		if count > 0 {
			minCount = max(count, doAll)
		}
		dedCount := minCount
		switch {
		case ded > 0:
			dedCount = doAll + ded
		case dedicated > 0:
			dedCount = doAll + dedicated
		}
		return max(minCount, dedCount)
	}
	d.Count = ptr(capacity(0, 0))
	d.comment("count", fmt.Sprintf("GearmanManager: %d do-all + %d dedicated processes per function", doAll, *d.Count-doAll))
	countLine := 0
	if k, ok := g["count"]; ok {
		countLine = k.line
	} else if k, ok := g["dedicated_count"]; ok {
		countLine = k.line
	}
	if doAll > 0 {
		res.note(countLine, "count", "GearmanManager ran count=%d do-all process(es) serving every function, plus its dedicated processes per function; gworkerd runs one function per child, so each function gets as many children as GearmanManager had processes serving it (%d unless its section says more): the same capacity per function, %d process(es) per function instead of %d shared + %d per function",
			doAll, *d.Count, *d.Count, doAll, *d.Count-doAll)
	}

	// Lifetime: GearmanManager always recycles, 3600s + rand(0, 600)s by default.
	lifetime, splay := int64(gmDefaultLifetime), int64(gmDefaultSplay)
	lifetimeSet, splaySet := false, false
	if k, ok := g["max_worker_lifetime"]; ok {
		if n, ok := gmInt(k, res); ok && n > 0 {
			lifetime, lifetimeSet = int64(n), true
		} else if ok {
			res.note(k.line, "max_worker_lifetime", "GearmanManager ignores a value that is not positive and keeps its default, %ds", gmDefaultLifetime)
		}
	}
	if k, ok := g["worker_restart_splay"]; ok {
		if n, ok := gmInt(k, res); ok && n > 0 {
			splay, splaySet = int64(n), true
		} else if ok {
			res.note(k.line, "worker_restart_splay", "GearmanManager ignores a value that is not positive and keeps its default, %ds", gmDefaultSplay)
		}
	}
	if dur, ok := seconds(lifetime); ok {
		d.MaxLifetime = &dur
		if !lifetimeSet {
			d.comment("max_lifetime", "GearmanManager's default max_worker_lifetime")
		}
	}
	if dur, ok := seconds(splay); ok {
		d.LifetimeSplay = &dur
		if !splaySet {
			d.comment("lifetime_splay", "GearmanManager's default worker_restart_splay")
		}
	}
	if k, ok := g["max_runs_per_worker"]; ok && !k.val.null && k.val.s != "" && k.val.s != "0" {
		if n, ok := gmInt(k, res); ok && n > 0 {
			d.MaxJobs = ptr(n)
		} else if ok {
			res.unmapped(k.line, "max_runs_per_worker", "negative: GearmanManager's workers would exit after every job; gworkerd has no equivalent")
		}
	}
	if k, ok := g["timeout"]; ok && !k.val.null {
		if n, ok := gmInt(k, res); ok && n > 0 {
			if dur, ok := seconds(int64(n)); ok {
				d.Timeout = &dur
			}
		}
	}
	if k, ok := g["user"]; ok && !k.val.null && k.val.s != "" && !k.val.isList && !k.val.nested {
		d.User = k.val.s
		res.note(k.line, "user", "GearmanManager switched itself to this user; gworkerd runs the children as it (gworkerd must start as root)")
	}
	if k, ok := g["pid_file"]; ok && !k.val.isList && !k.val.nested && k.val.s != "" {
		c.PidFile = k.val.s
	}
	if k, ok := g["log_file"]; ok && !k.val.isList && !k.val.nested && k.val.s != "" {
		if k.val.s == "syslog" {
			res.unmapped(k.line, "log_file", "gworkerd logs to a file or to standard error (the journal under systemd), not to syslog")
		} else {
			c.LogFile = k.val.s
		}
	}
	// GearmanManager waits a fixed 60 seconds for its workers at shutdown
	// before it kills them (process_loop); no key sets it. gworkerd's
	// top-level stop_timeout bounds a full stop the same way, whatever
	// the functions' timeouts. (A function's stop_timeout would also cut
	// the jobs of children replaced at a reload, which GearmanManager let
	// finish: it is left out.)
	c.StopTimeout = ptr(gmDefaultStopWait * time.Second)
	c.comment("stop_timeout", "GearmanManager's fixed shutdown wait before SIGKILL")

	// The keys nothing maps, and the keys GearmanManager does not read.
	for _, k := range global.keys {
		if k.val.nested && (k.name == "host" || k.name == "worker_dir") {
			res.unmapped(k.line, k.name, "an array of arrays: GearmanManager wants a string or a list of strings")
			continue
		}
		if (k.val.isList || k.val.nested) && (k.name == "user" || k.name == "pid_file" || k.name == "log_file" || k.name == "prefix") {
			res.unmapped(k.line, k.name, "an array: GearmanManager wants a string")
			continue
		}
		switch k.name {
		case "prefix":
			// !empty(): "0" is no prefix.
			if k.val.s != "" && k.val.s != "0" {
				c.FunctionPrefix = k.val.s
			}
		case "auto_update":
			if gmTrue(k.val) {
				res.unmapped(k.line, "auto_update", "gworkerd does not watch the worker files: run `gworkerd reload` after a deploy (it re-scans the directories and replaces the children one by one)")
			}
		case "daemon":
			if gmTrue(k.val) {
				res.unmapped(k.line, "daemon", "not a gworkerd config key: `gworkerd start` detaches unless given --foreground")
			}
		case "verbose":
			res.unmapped(k.line, "verbose", "gworkerd has no log level setting")
		case "worker_initial_spawn_splay":
			res.unmapped(k.line, "worker_initial_spawn_splay", "gworkerd has no pause between the starts of children")
		case "dedicated_only":
			res.unmapped(k.line, k.name, "GearmanManager reads dedicated_only only in a function's section")
		default:
			if !gmGlobalKeys[k.name] {
				res.unmapped(k.line, k.name, "GearmanManager does not read this key")
			}
		}
	}

	// Functions.
	for _, s := range funcs {
		f := c.function(s.name)
		keys := map[string]gmKey{}
		for _, k := range s.keys {
			keys[k.name] = k
			switch {
			case gmFunctionKeys[k.name]:
			case gmGlobalKeys[k.name]:
				res.unmapped(k.line, s.name+"."+k.name, "GearmanManager reads %s only in [GearmanManager]", k.name)
			default:
				res.unmapped(k.line, s.name+"."+k.name, "GearmanManager does not read this key in a function's section")
			}
		}
		count, ded := 0, 0
		_, hasCount := keys["count"]
		_, hasDed := keys["dedicated_count"]
		if k, ok := keys["count"]; ok {
			if n, ok := gmInt(k, res); ok && n > 0 {
				count = n
			}
		}
		if k, ok := keys["dedicated_count"]; ok {
			if n, ok := gmInt(k, res); ok && n > 0 {
				ded = n
			}
		}
		dedicatedOnly := false
		if k, ok := keys["dedicated_only"]; ok && gmTrue(k.val) {
			if ded > 0 {
				dedicatedOnly = true
				res.note(k.line, s.name+".dedicated_only", "the do-all processes did not serve %s: it gets its dedicated_count, %d children", s.name, ded)
			} else {
				res.unmapped(k.line, s.name+".dedicated_only", "GearmanManager refuses dedicated_only without a dedicated_count (\"Invalid configuration for dedicated_count\"); counted as a plain function")
			}
		}
		switch {
		case dedicatedOnly:
			f.Count = ptr(ded)
			f.comment("count", "GearmanManager: dedicated_only, dedicated_count")
		case hasCount || hasDed:
			n := capacity(count, ded)
			f.Count = ptr(n)
			f.comment("count", fmt.Sprintf("GearmanManager: %d do-all + %d dedicated processes", doAll, n-doAll))
		}
		if k, ok := keys["timeout"]; ok && !k.val.null {
			// isset() and (int): a per-function 0 overrides the global one.
			if n, ok := gmInt(k, res); ok {
				if dur, ok := seconds(int64(max(n, 0))); ok {
					f.Timeout = &dur
				}
			}
		}
		if k, ok := keys["priority"]; ok && k.val.s != "" && k.val.s != "0" {
			res.unmapped(k.line, s.name+".priority", "GearmanManager ordered the functions of a do-all process by priority; a gworkerd child serves one function, so there is nothing to order")
		}
	}
}

// gmInt reads a whole number of a GearmanManager setting, or reports the
// key as unmapped.
func gmInt(k gmKey, res *Result) (int, bool) {
	if k.val.isList || k.val.nested {
		res.unmapped(k.line, k.name, "want a whole number, got an array")
		return 0, false
	}
	s := strings.TrimSpace(k.val.s)
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 1<<31-1 || n < -(1<<31) {
		res.unmapped(k.line, k.name, "want a whole number, got %q", k.val.s)
		return 0, false
	}
	return n, true
}

// gmTrue is PHP's !empty() of a string.
func gmTrue(v gmVal) bool {
	if v.isList || v.nested {
		return len(v.list) > 0 || v.nested
	}
	return v.s != "" && v.s != "0"
}

// parseGMIni reads a GearmanManager .ini file the way PHP's
// parse_ini_file($file, true) does (INI_SCANNER_NORMAL).
func parseGMIni(src, name string, opt Options, res *Result) ([]gmSection, error) {
	p := &phpIni{src: src, name: name, opt: opt, res: res, line: 1}
	return p.parse()
}

type phpIni struct {
	src  string
	pos  int
	line int
	name string
	opt  Options
	res  *Result
}

func (p *phpIni) errf(line int, format string, args ...any) error {
	return &ParseError{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// phpIniReserved are the words PHP refuses as a key.
var phpIniReserved = map[string]bool{
	"null": true, "yes": true, "no": true, "true": true, "false": true, "on": true, "off": true, "none": true,
}

func (p *phpIni) parse() ([]gmSection, error) {
	var secs []gmSection
	var cur *gmSection
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\n':
			p.pos++
			p.line++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
			continue
		case c == ';':
			p.skipLine()
			continue
		case c == '[' && !p.spacesBefore():
			line := p.line
			end := strings.IndexAny(p.src[p.pos+1:], "]\n;\"")
			if end < 0 || p.src[p.pos+1+end] != ']' {
				return nil, p.errf(line, "section name: expecting ]")
			}
			sname := p.src[p.pos+1 : p.pos+1+end]
			p.skipLine() // PHP ignores what follows the ]
			// A later section of the same name replaces the earlier one.
			for i := range secs {
				if secs[i].name == sname {
					secs = append(secs[:i], secs[i+1:]...)
					break
				}
			}
			secs = append(secs, gmSection{name: sname, line: line})
			cur = &secs[len(secs)-1]
			continue
		}
		// key = value
		line := p.line
		eol := strings.IndexByte(p.src[p.pos:], '\n')
		if eol < 0 {
			eol = len(p.src) - p.pos
		}
		lineText := p.src[p.pos : p.pos+eol]
		eq := strings.IndexAny(lineText, "=;")
		if eq < 0 || lineText[eq] == ';' {
			text := lineText
			if eq >= 0 {
				text = lineText[:eq]
			}
			text = strings.TrimSpace(text)
			if i := strings.IndexAny(text, "\"$[{}|&~!()^"); i >= 0 {
				// PHP's scanner reads these as tokens and then wants an =.
				return nil, p.errf(line, "syntax error: a line without = holding %q (PHP refuses it)", text[i])
			}
			p.res.unmapped(line, text, "a line without =: PHP ignores it")
			p.skipLine()
			continue
		}
		rawKey := strings.TrimSpace(lineText[:eq])
		p.pos += eq + 1
		key, isList, err := p.key(rawKey, line)
		if err != nil {
			return nil, err
		}
		val, err := p.value(line)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			// A key outside any section is a scalar entry of $gearman_config.
			secs = append(secs, gmSection{name: key, line: line, scalar: true})
			continue
		}
		if isList {
			var prev *gmKey
			for i := range cur.keys {
				if cur.keys[i].name == key {
					prev = &cur.keys[i]
				}
			}
			if prev != nil && prev.val.isList {
				prev.val.list = append(prev.val.list, val.s)
				prev.val.env = append(prev.val.env, val.env...)
				prev.line = line
				continue
			}
			val = gmVal{list: []string{val.s}, isList: true, env: val.env}
		}
		cur.set(gmKey{name: key, line: line, val: val})
		for _, e := range val.env {
			p.res.note(line, key, "%s", e)
		}
	}
	return secs, nil
}

// spacesBefore reports whether the line holds only spaces before p.pos.
// PHP's scanner reads "  [x]" as a key with an offset (a label may hold
// spaces, not tabs), not as a section header.
func (p *phpIni) spacesBefore() bool {
	start := strings.LastIndexByte(p.src[:p.pos], '\n') + 1
	return p.pos > start && strings.Trim(p.src[start:p.pos], " ") == ""
}

func (p *phpIni) skipLine() {
	if i := strings.IndexByte(p.src[p.pos:], '\n'); i >= 0 {
		p.pos += i
	} else {
		p.pos = len(p.src)
	}
}

// key checks a key and splits off an offset: key[] or key[x].
func (p *phpIni) key(raw string, line int) (string, bool, error) {
	isList := false
	if i := strings.IndexByte(raw, '['); i >= 0 {
		j := strings.IndexByte(raw[i:], ']')
		if j < 0 {
			return "", false, p.errf(line, "key %q: expecting ]", raw)
		}
		if strings.TrimSpace(raw[i+j+1:]) != "" {
			return "", false, p.errf(line, "key %q: unexpected text after ]", raw)
		}
		raw, isList = strings.TrimSpace(raw[:i]), true
	}
	if raw == "" {
		return "", false, p.errf(line, "empty key")
	}
	if phpIniReserved[strings.ToLower(raw)] {
		return "", false, p.errf(line, "%q cannot be a key (a PHP ini keyword)", raw)
	}
	if i := strings.IndexAny(raw, "{}|&~!()^\"$"); i >= 0 {
		return "", false, p.errf(line, "key %q: unexpected %q", raw, raw[i])
	}
	return raw, isList, nil
}

// value reads a value after the =, up to the end of the line or the
// comment (a "..." string may span lines).
func (p *phpIni) value(line int) (gmVal, error) {
	var (
		out       strings.Builder
		run       strings.Builder // the current unquoted run
		plain     = true          // one unquoted run, no quotes, no ${}
		anyQuoted = false
		env       []string
	)
	flush := func() {
		out.WriteString(strings.TrimRight(strings.TrimLeft(run.String(), " \t\r"), " \t\r"))
		run.Reset()
	}
loop:
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch c {
		case '\n', ';':
			break loop
		case '"':
			flush()
			plain, anyQuoted = false, true
			p.pos++
			start := p.line
			for {
				if p.pos >= len(p.src) {
					return gmVal{}, p.errf(start, "unterminated \" string")
				}
				c := p.src[p.pos]
				switch {
				case c == '"':
					p.pos++
					continue loop
				case c == '\\' && p.pos+1 < len(p.src) && (p.src[p.pos+1] == '"' || p.src[p.pos+1] == '\\'):
					out.WriteByte(p.src[p.pos+1])
					p.pos += 2
				case c == '$' && strings.HasPrefix(p.src[p.pos:], "${"):
					v, note, err := p.dollar()
					if err != nil {
						return gmVal{}, err
					}
					out.WriteString(v)
					env = append(env, note)
				default:
					if c == '\n' {
						p.line++
					}
					out.WriteByte(c)
					p.pos++
				}
			}
		case '\'':
			plain = false
			end := strings.IndexByte(p.src[p.pos+1:], '\'')
			if end < 0 {
				return gmVal{}, p.errf(p.line, "unterminated ' string")
			}
			s := p.src[p.pos+1 : p.pos+1+end]
			p.line += strings.Count(s, "\n")
			run.WriteString(s)
			p.pos += end + 2
		case '$':
			if strings.HasPrefix(p.src[p.pos:], "${") {
				plain = false
				v, note, err := p.dollar()
				if err != nil {
					return gmVal{}, err
				}
				run.WriteString(v)
				env = append(env, note)
				continue
			}
			run.WriteByte(c)
			p.pos++
		case '=', '(', ')':
			return gmVal{}, p.errf(p.line, "unexpected %q in a value (quote the value)", c)
		case '|', '&', '~', '!', '^':
			return gmVal{}, p.errf(p.line, "PHP ini expressions (%q) are not supported: quote the value", c)
		default:
			run.WriteByte(c)
			p.pos++
		}
	}
	flush()
	s := out.String()
	if plain && !anyQuoted {
		switch strings.ToLower(s) {
		case "true", "on", "yes":
			s = "1"
		case "false", "off", "no", "none", "null":
			s = "" // INI_SCANNER_NORMAL: an empty string, not PHP's null
		}
	}
	if p.pos < len(p.src) && p.src[p.pos] == ';' {
		p.skipLine()
	}
	return gmVal{s: s, env: env}, nil
}

// dollar reads ${NAME} at p.pos: PHP fills it from an ini setting or the
// environment; the import uses the environment and says so.
func (p *phpIni) dollar() (string, string, error) {
	end := strings.IndexAny(p.src[p.pos:], "}\n")
	if end < 0 || p.src[p.pos+end] != '}' {
		return "", "", p.errf(p.line, "${ without }")
	}
	name := p.src[p.pos+2 : p.pos+end]
	p.pos += end + 1
	if v, ok := p.opt.env(name); ok {
		return v, fmt.Sprintf("${%s} filled from the environment of this import (%q); PHP used an ini setting of that name first, else the environment GearmanManager ran in", name, v), nil
	}
	return "", fmt.Sprintf("${%s} is not set in the environment of this import and became \"\"; PHP used an ini setting of that name, else the environment GearmanManager ran in", name), nil
}

// parsePHPConfig reads a GearmanManager .php config without running it
// and returns its $gearman_config.
func parsePHPConfig(src, name string, opt Options) ([]gmSection, error) {
	p := &phpParser{src: src, name: name, line: 1, vars: map[string]phpVal{}, file: path.Join(opt.dir(), path.Base(name)), dir: opt.dir()}
	if err := p.parse(); err != nil {
		return nil, err
	}
	cfg, ok := p.vars["gearman_config"]
	if !ok {
		return nil, &ParseError{File: name, Msg: "no $gearman_config: GearmanManager reads the array assigned to $gearman_config (the file's return value is ignored)"}
	}
	if cfg.kind != phpArr {
		return nil, &ParseError{File: name, Line: cfg.line, Msg: "$gearman_config is not an array"}
	}
	var secs []gmSection
	for i, k := range cfg.arr.keys {
		v := cfg.arr.vals[i]
		s := gmSection{name: k.String(), line: cfg.arr.lines[i]}
		if v.kind != phpArr {
			s.scalar = true
			secs = append(secs, s)
			continue
		}
		for j, kk := range v.arr.keys {
			s.keys = append(s.keys, gmKey{name: kk.String(), line: v.arr.lines[j], val: v.arr.vals[j].gm()})
		}
		secs = append(secs, s)
	}
	return secs, nil
}

type phpKind int

const (
	phpNull phpKind = iota
	phpStr
	phpInt
	phpBool
	phpArr
)

// phpVal is a PHP value of the config subset.
type phpVal struct {
	kind phpKind
	s    string
	i    int64
	b    bool
	arr  *phpArray
	line int
}

// phpKey is an array key: PHP turns "5" into 5.
type phpKey struct {
	isInt bool
	i     int64
	s     string
}

func (k phpKey) String() string {
	if k.isInt {
		return strconv.FormatInt(k.i, 10)
	}
	return k.s
}

// phpArray is an ordered PHP array.
type phpArray struct {
	keys  []phpKey
	vals  []phpVal
	lines []int
	next  int64
}

func (a *phpArray) set(k phpKey, v phpVal, line int) {
	for i := range a.keys {
		if a.keys[i] == k {
			a.vals[i], a.lines[i] = v, line
			return
		}
	}
	a.keys, a.vals, a.lines = append(a.keys, k), append(a.vals, v), append(a.lines, line)
	if k.isInt && k.i >= a.next && k.i < 1<<62 {
		a.next = k.i + 1
	}
}

func (a *phpArray) get(k phpKey) (phpVal, bool) {
	for i := range a.keys {
		if a.keys[i] == k {
			return a.vals[i], true
		}
	}
	return phpVal{}, false
}

// str converts a scalar the way PHP's string conversion does.
func (v phpVal) str() string {
	switch v.kind {
	case phpStr:
		return v.s
	case phpInt:
		return strconv.FormatInt(v.i, 10)
	case phpBool:
		if v.b {
			return "1"
		}
	}
	return ""
}

func (v phpVal) gm() gmVal {
	switch v.kind {
	case phpNull:
		return gmVal{null: true}
	case phpArr:
		out := gmVal{isList: true}
		for _, e := range v.arr.vals {
			if e.kind == phpArr {
				return gmVal{nested: true}
			}
			out.list = append(out.list, e.str())
		}
		return out
	}
	return gmVal{s: v.str()}
}

// copy is a deep copy: PHP arrays are values.
func (v phpVal) copy(p *phpParser) (phpVal, error) {
	if v.kind != phpArr {
		return v, p.spend(len(v.s) + 1)
	}
	a := &phpArray{next: v.arr.next}
	for i := range v.arr.keys {
		c, err := v.arr.vals[i].copy(p)
		if err != nil {
			return phpVal{}, err
		}
		a.keys, a.vals, a.lines = append(a.keys, v.arr.keys[i]), append(a.vals, c), append(a.lines, v.arr.lines[i])
	}
	v.arr = a
	return v, nil
}

// Bounds of the PHP parser beyond the file's: values built from the file
// (copies of variables, concatenations) and nesting.
const (
	phpMaxBudget = 4 * MaxFileSize
	phpMaxDepth  = 64
)

// phpParser parses the PHP subset of GearmanManager configs.
type phpParser struct {
	src    string
	pos    int
	line   int
	name   string
	file   string // __FILE__
	dir    string // __DIR__
	inPHP  bool
	vars   map[string]phpVal
	budget int
	depth  int
	tok    phpTok // the lookahead
	peeked bool
}

type phpTokKind int

const (
	tEOF phpTokKind = iota
	tVar
	tIdent
	tStr
	tInt
	tPunct // = ; , ( ) [ ] => . -  +
	tClose // ?>
)

type phpTok struct {
	kind phpTokKind
	s    string
	i    int64
	line int
}

func (p *phpParser) errf(line int, format string, args ...any) error {
	return &ParseError{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *phpParser) spend(n int) error {
	p.budget += n
	if p.budget > phpMaxBudget {
		return p.errf(p.line, "the values built by this file are larger than %d bytes", phpMaxBudget)
	}
	return nil
}

func (p *phpParser) parse() error {
	for {
		t, err := p.peek()
		if err != nil {
			return err
		}
		switch {
		case t.kind == tEOF:
			return nil
		case t.kind == tClose || (t.kind == tPunct && t.s == ";"):
			p.next()
		case t.kind == tVar:
			if err := p.assignment(); err != nil {
				return err
			}
		case t.kind == tIdent && strings.EqualFold(t.s, "declare"):
			if err := p.declare(); err != nil {
				return err
			}
		case t.kind == tIdent && strings.EqualFold(t.s, "return"):
			return p.errf(t.line, "GearmanManager ignores the value a config file returns: assign the array to $gearman_config")
		default:
			return p.errf(t.line, "unsupported statement at %q: the file is parsed, not run, and may only assign literal values to variables", t.text())
		}
	}
}

func (t phpTok) text() string {
	switch t.kind {
	case tVar:
		return "$" + t.s
	case tStr:
		return "string"
	case tInt:
		return strconv.FormatInt(t.i, 10)
	case tClose:
		return "?>"
	case tEOF:
		return "end of file"
	}
	return t.s
}

// declare(name=value, ...);
func (p *phpParser) declare() error {
	p.next()
	if err := p.expect("("); err != nil {
		return err
	}
	for {
		t, err := p.next()
		if err != nil {
			return err
		}
		if t.kind == tEOF {
			return p.errf(t.line, "declare: expecting )")
		}
		if t.kind == tPunct && t.s == ")" {
			return nil
		}
	}
}

// assignment: $name [index]... = expr ;
func (p *phpParser) assignment() error {
	t, _ := p.next()
	name, line := t.s, t.line
	var idx []phpTok
	var idxKeys []phpVal
	for {
		n, err := p.peek()
		if err != nil {
			return err
		}
		if n.kind != tPunct || n.s != "[" {
			break
		}
		p.next()
		c, err := p.peek()
		if err != nil {
			return err
		}
		if c.kind == tPunct && c.s == "]" {
			p.next()
			idx = append(idx, c)
			idxKeys = append(idxKeys, phpVal{kind: phpNull, line: -1})
			continue
		}
		k, err := p.expr()
		if err != nil {
			return err
		}
		if err := p.expect("]"); err != nil {
			return err
		}
		idx = append(idx, n)
		idxKeys = append(idxKeys, k)
	}
	if err := p.expect("="); err != nil {
		return err
	}
	v, err := p.expr()
	if err != nil {
		return err
	}
	if t, err := p.peek(); err != nil {
		return err
	} else if t.kind == tClose {
		p.next()
	} else if err := p.expect(";"); err != nil {
		return err
	}
	if len(idx) == 0 {
		p.vars[name] = v
		return nil
	}
	root, ok := p.vars[name]
	if !ok || root.kind == phpNull {
		root = phpVal{kind: phpArr, arr: &phpArray{}, line: line}
	}
	if root.kind != phpArr {
		return p.errf(line, "$%s is not an array", name)
	}
	cur := root.arr
	for i, k := range idxKeys {
		var key phpKey
		if k.line == -1 {
			key = phpKey{isInt: true, i: cur.next}
		} else if key, err = p.arrayKey(k); err != nil {
			return err
		}
		if i == len(idxKeys)-1 {
			cur.set(key, v, idx[i].line)
			break
		}
		child, ok := cur.get(key)
		if !ok || child.kind == phpNull {
			child = phpVal{kind: phpArr, arr: &phpArray{}, line: idx[i].line}
			cur.set(key, child, idx[i].line)
		}
		if child.kind != phpArr {
			return p.errf(idx[i].line, "$%s: not an array at [%s]", name, key)
		}
		cur = child.arr
	}
	p.vars[name] = root
	return nil
}

func (p *phpParser) arrayKey(k phpVal) (phpKey, error) {
	switch k.kind {
	case phpInt:
		return phpKey{isInt: true, i: k.i}, nil
	case phpStr:
		if n, err := strconv.ParseInt(k.s, 10, 64); err == nil && strconv.FormatInt(n, 10) == k.s {
			return phpKey{isInt: true, i: n}, nil
		}
		return phpKey{s: k.s}, nil
	}
	return phpKey{}, p.errf(k.line, "an array key must be a string or an integer")
}

func (p *phpParser) expect(s string) error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != tPunct || t.s != s {
		return p.errf(t.line, "expecting %q, got %q", s, t.text())
	}
	return nil
}

// expr: term ( . term )*
func (p *phpParser) expr() (phpVal, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > phpMaxDepth {
		return phpVal{}, p.errf(p.line, "nested deeper than %d", phpMaxDepth)
	}
	v, err := p.term()
	if err != nil {
		return v, err
	}
	for {
		t, err := p.peek()
		if err != nil {
			return v, err
		}
		if t.kind != tPunct || t.s != "." {
			return v, nil
		}
		p.next()
		w, err := p.term()
		if err != nil {
			return v, err
		}
		if v.kind == phpArr || w.kind == phpArr {
			return v, p.errf(t.line, "cannot concatenate an array")
		}
		s := v.str() + w.str()
		if err := p.spend(len(s)); err != nil {
			return v, err
		}
		v = phpVal{kind: phpStr, s: s, line: v.line}
	}
}

func (p *phpParser) term() (phpVal, error) {
	t, err := p.next()
	if err != nil {
		return phpVal{}, err
	}
	switch t.kind {
	case tStr:
		return phpVal{kind: phpStr, s: t.s, line: t.line}, p.spend(len(t.s))
	case tInt:
		return phpVal{kind: phpInt, i: t.i, line: t.line}, nil
	case tVar:
		v, ok := p.vars[t.s]
		if !ok {
			return phpVal{}, p.errf(t.line, "$%s is not assigned before this line", t.s)
		}
		return v.copy(p)
	case tPunct:
		switch t.s {
		case "-", "+":
			n, err := p.next()
			if err != nil {
				return phpVal{}, err
			}
			if n.kind != tInt {
				return phpVal{}, p.errf(t.line, "unary %s: want an integer", t.s)
			}
			if t.s == "-" {
				n.i = -n.i
			}
			return phpVal{kind: phpInt, i: n.i, line: t.line}, nil
		case "[":
			return p.array("]", t.line)
		case "(":
			v, err := p.expr()
			if err != nil {
				return v, err
			}
			return v, p.expect(")")
		}
	case tIdent:
		switch strings.ToLower(t.s) {
		case "true":
			return phpVal{kind: phpBool, b: true, line: t.line}, nil
		case "false":
			return phpVal{kind: phpBool, line: t.line}, nil
		case "null":
			return phpVal{kind: phpNull, line: t.line}, nil
		case "array":
			if err := p.expect("("); err != nil {
				return phpVal{}, err
			}
			return p.array(")", t.line)
		case "__dir__":
			return phpVal{kind: phpStr, s: p.dir, line: t.line}, p.spend(len(p.dir))
		case "__file__":
			return phpVal{kind: phpStr, s: p.file, line: t.line}, p.spend(len(p.file))
		case "dirname":
			if err := p.expect("("); err != nil {
				return phpVal{}, err
			}
			v, err := p.expr()
			if err != nil {
				return v, err
			}
			if err := p.expect(")"); err != nil {
				return v, err
			}
			if v.kind == phpArr {
				return v, p.errf(t.line, "dirname of an array")
			}
			return phpVal{kind: phpStr, s: phpDirname(v.str()), line: t.line}, nil
		}
	}
	return phpVal{}, p.errf(t.line, "unsupported expression at %q: the file is parsed, not run; use literal values", t.text())
}

// phpDirname is PHP's dirname() of a path.
func phpDirname(s string) string {
	if s == "" {
		return ""
	}
	return path.Dir(s)
}

// array reads the elements up to the closing token.
func (p *phpParser) array(closing string, line int) (phpVal, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > phpMaxDepth {
		return phpVal{}, p.errf(line, "nested deeper than %d", phpMaxDepth)
	}
	a := &phpArray{}
	for {
		t, err := p.peek()
		if err != nil {
			return phpVal{}, err
		}
		if t.kind == tPunct && t.s == closing {
			p.next()
			return phpVal{kind: phpArr, arr: a, line: line}, nil
		}
		if t.kind == tEOF {
			return phpVal{}, p.errf(line, "array: expecting %q", closing)
		}
		first, err := p.expr()
		if err != nil {
			return phpVal{}, err
		}
		if err := p.spend(1); err != nil {
			return phpVal{}, err
		}
		n, err := p.peek()
		if err != nil {
			return phpVal{}, err
		}
		if n.kind == tPunct && n.s == "=>" {
			p.next()
			v, err := p.expr()
			if err != nil {
				return phpVal{}, err
			}
			k, err := p.arrayKey(first)
			if err != nil {
				return phpVal{}, err
			}
			a.set(k, v, first.line)
		} else {
			a.set(phpKey{isInt: true, i: a.next}, first, first.line)
		}
		n, err = p.peek()
		if err != nil {
			return phpVal{}, err
		}
		if n.kind == tPunct && n.s == "," {
			p.next()
			continue
		}
		if n.kind != tPunct || n.s != closing {
			return phpVal{}, p.errf(n.line, "array: expecting \",\" or %q, got %q", closing, n.text())
		}
	}
}

func (p *phpParser) peek() (phpTok, error) {
	if !p.peeked {
		t, err := p.lex()
		if err != nil {
			return t, err
		}
		p.tok, p.peeked = t, true
	}
	return p.tok, nil
}

func (p *phpParser) next() (phpTok, error) {
	t, err := p.peek()
	p.peeked = false
	return t, err
}

// lex returns the next token, skipping text outside <?php ?>, blanks and
// comments.
func (p *phpParser) lex() (phpTok, error) {
	for {
		if !p.inPHP {
			i := strings.Index(p.src[p.pos:], "<?php")
			if i < 0 {
				p.line += strings.Count(p.src[p.pos:], "\n")
				p.pos = len(p.src)
				return phpTok{kind: tEOF, line: p.line}, nil
			}
			p.line += strings.Count(p.src[p.pos:p.pos+i], "\n")
			p.pos += i + len("<?php")
			p.inPHP = true
			continue
		}
		if p.pos >= len(p.src) {
			return phpTok{kind: tEOF, line: p.line}, nil
		}
		c := p.src[p.pos]
		line := p.line
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case c == '#' || strings.HasPrefix(p.src[p.pos:], "//"):
			// A line comment ends at the end of the line or at ?>.
			end := len(p.src)
			if i := strings.IndexByte(p.src[p.pos:], '\n'); i >= 0 {
				end = p.pos + i
			}
			if i := strings.Index(p.src[p.pos:end], "?>"); i >= 0 {
				end = p.pos + i
			}
			p.pos = end
		case strings.HasPrefix(p.src[p.pos:], "/*"):
			i := strings.Index(p.src[p.pos+2:], "*/")
			if i < 0 {
				return phpTok{}, p.errf(line, "unterminated /* comment")
			}
			p.line += strings.Count(p.src[p.pos:p.pos+2+i], "\n")
			p.pos += i + 4
		case strings.HasPrefix(p.src[p.pos:], "?>"):
			p.pos += 2
			p.inPHP = false
			return phpTok{kind: tClose, line: line}, nil
		case c == '$':
			j := p.pos + 1
			for j < len(p.src) && isPHPIdent(p.src[j], j > p.pos+1) {
				j++
			}
			if j == p.pos+1 {
				return phpTok{}, p.errf(line, "unsupported: $ not followed by a variable name")
			}
			t := phpTok{kind: tVar, s: p.src[p.pos+1 : j], line: line}
			p.pos = j
			return t, nil
		case c == '\'':
			return p.single()
		case c == '"':
			return p.double()
		case c >= '0' && c <= '9':
			return p.number()
		case isPHPIdent(c, false):
			j := p.pos
			for j < len(p.src) && (isPHPIdent(p.src[j], true) || p.src[j] == '\\') {
				j++
			}
			t := phpTok{kind: tIdent, s: p.src[p.pos:j], line: line}
			p.pos = j
			return t, nil
		case strings.HasPrefix(p.src[p.pos:], "=>"):
			p.pos += 2
			return phpTok{kind: tPunct, s: "=>", line: line}, nil
		case strings.HasPrefix(p.src[p.pos:], "<<<"):
			return phpTok{}, p.errf(line, "heredoc strings are not supported: use '...'")
		case strings.IndexByte("=;,()[].-+", c) >= 0:
			p.pos++
			return phpTok{kind: tPunct, s: string(c), line: line}, nil
		default:
			r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
			return phpTok{}, p.errf(line, "unsupported: %q (the file is parsed, not run, and may only assign literal values)", r)
		}
	}
}

func isPHPIdent(c byte, notFirst bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80 || (notFirst && c >= '0' && c <= '9')
}

// single reads a '...' string: \' and \\ are the only escapes.
func (p *phpParser) single() (phpTok, error) {
	line := p.line
	var b strings.Builder
	for i := p.pos + 1; i < len(p.src); i++ {
		c := p.src[i]
		switch {
		case c == '\'':
			p.pos = i + 1
			return phpTok{kind: tStr, s: b.String(), line: line}, nil
		case c == '\\' && i+1 < len(p.src) && (p.src[i+1] == '\'' || p.src[i+1] == '\\'):
			i++
			b.WriteByte(p.src[i])
		default:
			if c == '\n' {
				p.line++
			}
			b.WriteByte(c)
		}
	}
	return phpTok{}, p.errf(line, "unterminated ' string")
}

// double reads a "..." string with PHP's escapes; interpolation of
// variables is refused.
func (p *phpParser) double() (phpTok, error) {
	line := p.line
	var b strings.Builder
	s := p.src
	for i := p.pos + 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			p.pos = i + 1
			return phpTok{kind: tStr, s: b.String(), line: line}, nil
		case '\n':
			p.line++
			b.WriteByte(c)
		case '$':
			if i+1 < len(s) && (isPHPIdent(s[i+1], false) || s[i+1] == '{') {
				return phpTok{}, p.errf(p.line, "variables inside \"...\" are not supported: use '...' and .")
			}
			b.WriteByte(c)
		case '{':
			if i+1 < len(s) && s[i+1] == '$' {
				return phpTok{}, p.errf(p.line, "variables inside \"...\" are not supported: use '...' and .")
			}
			b.WriteByte(c)
		case '\\':
			if i+1 >= len(s) {
				b.WriteByte(c)
				continue
			}
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'v':
				b.WriteByte('\v')
			case 'e':
				b.WriteByte(0x1b)
			case 'f':
				b.WriteByte('\f')
			case '\\', '$', '"':
				b.WriteByte(e)
			case 'x':
				j := i + 1
				for j < len(s) && j < i+3 && isHex(s[j]) {
					j++
				}
				if j == i+1 {
					b.WriteString(`\x`)
					continue
				}
				n, _ := strconv.ParseUint(s[i+1:j], 16, 8)
				b.WriteByte(byte(n))
				i = j - 1
			case 'u':
				if i+1 < len(s) && s[i+1] == '{' {
					end := strings.IndexByte(s[i:], '}')
					if end < 0 {
						return phpTok{}, p.errf(p.line, "\\u{ without }")
					}
					n, err := strconv.ParseUint(s[i+2:i+end], 16, 32)
					if err != nil || n > utf8.MaxRune {
						return phpTok{}, p.errf(p.line, "invalid \\u{...} escape")
					}
					b.WriteRune(rune(n))
					i += end
					continue
				}
				b.WriteString(`\u`)
			default:
				if e >= '0' && e <= '7' {
					j := i
					for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
						j++
					}
					n, _ := strconv.ParseUint(s[i:j], 8, 16)
					b.WriteByte(byte(n))
					i = j - 1
					continue
				}
				if e == '\n' {
					p.line++
				}
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return phpTok{}, p.errf(line, "unterminated \" string")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number reads an integer: decimal, 0x, 0b, 0o or 0 octal, _ between
// digits. Floats are refused.
func (p *phpParser) number() (phpTok, error) {
	line := p.line
	j := p.pos
	for j < len(p.src) && (isHex(p.src[j]) || strings.IndexByte("xXoObB_", p.src[j]) >= 0) {
		j++
	}
	if j < len(p.src) && p.src[j] == '.' && j+1 < len(p.src) && p.src[j+1] >= '0' && p.src[j+1] <= '9' {
		return phpTok{}, p.errf(line, "floating-point numbers are not supported")
	}
	lit := strings.ReplaceAll(p.src[p.pos:j], "_", "")
	p.pos = j
	base, digits := 10, lit
	switch {
	case len(lit) > 2 && (lit[:2] == "0x" || lit[:2] == "0X"):
		base, digits = 16, lit[2:]
	case len(lit) > 2 && (lit[:2] == "0b" || lit[:2] == "0B"):
		base, digits = 2, lit[2:]
	case len(lit) > 2 && (lit[:2] == "0o" || lit[:2] == "0O"):
		base, digits = 8, lit[2:]
	case len(lit) > 1 && lit[0] == '0':
		base, digits = 8, lit[1:]
	}
	n, err := strconv.ParseInt(digits, base, 64)
	if err != nil {
		return phpTok{}, p.errf(line, "invalid number %q (floats and numbers beyond 64 bits are not supported)", lit)
	}
	return phpTok{kind: tInt, i: n, line: line}, nil
}
