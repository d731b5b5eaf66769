package migrate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Supervisord converts a supervisord configuration file into gworkerd's:
// each [program:x] becomes a function x whose command gworkerd runs
// numprocs times and supervises. The program is expected to connect to
// the Gearman servers itself (a pecl GearmanWorker loop, say).
//
// The file is read the way supervisord reads it: Python's configparser
// (keys lowercased, "; " and "# " comments only after a blank, indented
// continuation lines, [DEFAULT] inherited by every section, a repeated
// section merged), %(here)s replaced everywhere, then the %-formats of
// each value expanded with program_name, group_name, here, numprocs,
// process_num (when numprocs is 1), host_node_name (Options.Hostname)
// and ENV_X (the program's environment, then [supervisord]'s, then
// Options.LookupEnv, as supervisord 4.2 does). A format that cannot be
// filled here is left in place and reported. The command is split with
// shlex.split (POSIX shell quoting), the environment with supervisord's
// KEY=val,KEY2="v 2" rules (datatypes.dict_of_key_value_pairs).
//
// Mapping: command → command, numprocs → count, directory → dir,
// user → user, environment → env, autostart=false → disabled: true,
// startsecs → ready_after, startretries N → fatal_after N+1 (supervisord
// gives up after N retries, that is N+1 failed starts), stopwaitsecs →
// stop_timeout. supervisord's defaults that differ from gworkerd's are
// written out: startretries 3 and stopwaitsecs 10. [supervisord]
// environment → defaults.env. Everything else is reported with the
// reason: logs (the children's output goes to gworkerd's log_file and
// the function's log stream), autorestart=false, exitcodes, stopsignal
// other than TERM, priority, process_name, umask, serverurl, and the
// sections other than [program:x].
func Supervisord(data []byte, opt Options) (*Result, error) {
	name := opt.name()
	src, err := readFile(data, name)
	if err != nil {
		return nil, err
	}
	ini, err := parsePyIni(src, name)
	if err != nil {
		return nil, err
	}
	ini.expandHere(opt.dir())
	res := &Result{Source: "supervisord", File: name}
	sv := &svImport{opt: opt, res: res, ini: ini, group: map[string]string{}}
	if err := sv.run(); err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

// supervisord's defaults that gworkerd's differ from.
const (
	svDefaultStartRetries = 3
	svDefaultStopWait     = 10
)

type svImport struct {
	opt   Options
	res   *Result
	ini   *pyIni
	group map[string]string // program → its [group:x]
}

func (sv *svImport) run() error {
	res := sv.res
	// Groups first: they set %(group_name)s of their programs.
	for _, s := range sv.ini.sections {
		if g, ok := strings.CutPrefix(s.name, "group:"); ok {
			if o := sv.ini.get(s, "programs"); o != nil {
				for _, p := range strings.Split(o.value, ",") {
					if p = strings.TrimSpace(p); p != "" {
						sv.group[p] = strings.TrimSpace(g)
					}
				}
			}
		}
	}
	// [supervisord] environment next: supervisord reads it before the
	// programs, whose %(ENV_X)s it fills.
	for _, s := range sv.ini.sections {
		if s.name == "supervisord" {
			if o := sv.ini.get(s, "environment"); o != nil {
				sv.globalEnv(o)
			}
		}
	}
	programs := 0
	for _, s := range sv.ini.sections {
		kind, _, _ := strings.Cut(s.name, ":")
		switch {
		case strings.HasPrefix(s.name, "program:"):
			programs++
			if err := sv.program(s); err != nil {
				return err
			}
		case s.name == "supervisord":
			for _, o := range sv.ini.options(s) {
				if o.name != "environment" {
					res.unmapped(o.line, "[supervisord] "+o.name, "supervisord's own setting: gworkerd's are the top-level keys of its config (pid_file, log_file, ...)")
				}
			}
		case kind == "group":
			for _, o := range sv.ini.options(s) {
				res.unmapped(o.line, "["+s.name+"] "+o.name, "gworkerd has no groups: each program becomes a function of its own")
			}
		case s.name == "include":
			for _, o := range sv.ini.options(s) {
				res.unmapped(o.line, "[include] "+o.name, "import each included file on its own")
			}
		case kind == "eventlistener":
			sv.section(s, "gworkerd has no event listeners (supervisord's event notification protocol)")
		case kind == "fcgi-program":
			sv.section(s, "gworkerd does not pass a FastCGI socket to its children")
		case s.name == "unix_http_server" || s.name == "inet_http_server" || s.name == "supervisorctl" ||
			kind == "rpcinterface" || kind == "ctlplugin":
			sv.section(s, "supervisord's control interface: gworkerd's are `gworkerd ctl` (control_socket) and the HTTP API (http_listen)")
		default:
			sv.section(s, "supervisord does not read this section")
		}
	}
	if programs > 0 {
		res.note(0, "servers", "the programs connect to the Gearman servers on their own: set servers to the ones they use; gworkerd gives them to each child in GEARMAN_SERVERS and in a {servers} argument")
	}
	return nil
}

// section reports every key of a section nothing maps, or the section
// itself when it is empty.
func (sv *svImport) section(s *pySection, reason string) {
	opts := sv.ini.options(s)
	if len(opts) == 0 {
		sv.res.unmapped(s.line, "["+s.name+"]", "%s", reason)
	}
	for _, o := range opts {
		sv.res.unmapped(o.line, "["+s.name+"] "+o.name, "%s", reason)
	}
}

// globalEnv maps [supervisord] environment, which every child inherits.
func (sv *svImport) globalEnv(o *pyOption) {
	vars := &svVars{sv: sv, base: map[string]pyArg{"here": {s: sv.opt.dir()}}}
	s, ok := sv.expand(o, "[supervisord] environment", vars)
	if !ok {
		return
	}
	env, err := supervisordEnv(s)
	if err != nil {
		sv.res.unmapped(o.line, "[supervisord] environment", "supervisord refuses it: %v", err)
		return
	}
	if bad := badEnvNames(env); bad != "" {
		sv.res.unmapped(o.line, "[supervisord] environment", "invalid variable name %q for gworkerd", bad)
		return
	}
	sv.res.Config.Defaults.Env = env
	sv.res.note(o.line, "[supervisord] environment", "every child inherited it: mapped to defaults.env")
}

// program maps one [program:x] section to a function.
func (sv *svImport) program(s *pySection) error {
	res := sv.res
	name := strings.TrimFunc(strings.TrimPrefix(s.name, "program:"), pyIsSpace)
	if name == "" || strings.ContainsAny(name, " :/") || !validFunctionName(name) {
		return &ParseError{File: res.File, Line: s.line, Msg: fmt.Sprintf("[%s]: invalid program name %q (supervisord refuses names with a blank, : or /)", s.name, name)}
	}
	cmdOpt := sv.ini.get(s, "command")
	if cmdOpt == nil {
		return &ParseError{File: res.File, Line: s.line, Msg: fmt.Sprintf("[%s] does not specify a command", s.name)}
	}
	group := name
	if g, ok := sv.group[name]; ok {
		group = g
	}
	key := func(k string) string { return "[" + s.name + "] " + k }
	vars := &svVars{sv: sv, base: map[string]pyArg{
		"here": {s: sv.opt.dir()}, "program_name": {s: name}, "group_name": {s: group},
	}}
	f := Function{Name: name}
	// The keys supervisord reads before it loops over the processes see
	// only here, program_name, group_name, host_node_name and ENV_X.
	numprocs := 1
	if o := sv.ini.get(s, "numprocs"); o != nil {
		if v, ok := sv.expand(o, key("numprocs"), vars); ok {
			if n, ok := sv.integer(o, key("numprocs"), v); ok {
				if n < 0 {
					res.unmapped(o.line, key("numprocs"), "negative")
				} else {
					numprocs, f.Count = n, ptr(n)
				}
			}
		}
	}
	start := 0
	if o := sv.ini.get(s, "numprocs_start"); o != nil {
		if v, ok := sv.expand(o, key("numprocs_start"), vars); ok {
			if n, ok := sv.integer(o, key("numprocs_start"), v); ok {
				start = n
				res.unmapped(o.line, key("numprocs_start"), "it only numbers %%(process_num)d, and gworkerd gives every child of a function the same command and environment")
			}
		}
	}
	if o := sv.ini.get(s, "user"); o != nil {
		if v, ok := sv.expand(o, key("user"), vars); ok {
			f.User = strings.TrimFunc(v, pyIsSpace)
		}
	}
	if o := sv.ini.get(s, "autostart"); o != nil {
		if v, ok := sv.expand(o, key("autostart"), vars); ok {
			if b, ok := sv.boolean(o, key("autostart"), v); ok && !b {
				f.Disabled = ptr(true)
				res.note(o.line, key("autostart"), "mapped to disabled: true: gworkerd does not start the function; `gworkerd ctl start %s` starts it", name)
			}
		}
	}
	restartLine := s.line
	autorestart := "unexpected"
	if o := sv.ini.get(s, "autorestart"); o != nil {
		restartLine = o.line
		if v, ok := sv.expand(o, key("autorestart"), vars); ok {
			switch l := strings.ToLower(v); {
			case pyTruthy[l]:
				autorestart = "true"
			case pyFalsy[l]:
				autorestart = "false"
				res.unmapped(o.line, key("autorestart"), "false: gworkerd always replaces a child that exits")
			case l == "unexpected":
			default:
				autorestart = ""
				res.unmapped(o.line, key("autorestart"), "supervisord refuses it: invalid 'autorestart' value %q", v)
			}
		}
	}
	exitcodes := "0 (0,2 before supervisord 4.0)"
	if o := sv.ini.get(s, "exitcodes"); o != nil {
		exitcodes = o.value
		res.unmapped(o.line, key("exitcodes"), "gworkerd replaces a child whatever its exit status")
	}
	if autorestart == "unexpected" {
		res.note(restartLine, key("autorestart"), "supervisord (autorestart=unexpected) did not restart a child that exited with an expected status (exitcodes %s) once running; gworkerd replaces every child that exits", exitcodes)
	}
	if o := sv.ini.get(s, "startsecs"); o != nil {
		if v, ok := sv.expand(o, key("startsecs"), vars); ok {
			if n, ok := sv.integer(o, key("startsecs"), v); ok {
				if d, ok := sv.duration(o, key("startsecs"), n); ok {
					f.ReadyAfter = &d
				}
			}
		}
	}
	if o := sv.ini.get(s, "startretries"); o != nil {
		if v, ok := sv.expand(o, key("startretries"), vars); ok {
			if n, ok := sv.integer(o, key("startretries"), v); ok {
				if n < 0 || n >= 1<<31-1 {
					res.unmapped(o.line, key("startretries"), "out of range")
				} else {
					f.FatalAfter = ptr(n + 1)
					f.comment("fatal_after", fmt.Sprintf("startretries=%d: supervisord gave up after %d failed starts", n, n+1))
				}
			}
		}
	} else {
		f.FatalAfter = ptr(svDefaultStartRetries + 1)
		f.comment("fatal_after", fmt.Sprintf("supervisord's default startretries=%d: it gave up after %d failed starts", svDefaultStartRetries, svDefaultStartRetries+1))
	}
	if o := sv.ini.get(s, "stopwaitsecs"); o != nil {
		if v, ok := sv.expand(o, key("stopwaitsecs"), vars); ok {
			if n, ok := sv.integer(o, key("stopwaitsecs"), v); ok {
				if d, ok := sv.duration(o, key("stopwaitsecs"), n); ok {
					f.StopTimeout = &d
				}
			}
		}
	} else {
		f.StopTimeout = ptr(svDefaultStopWait * time.Second)
		f.comment("stop_timeout", "supervisord's default stopwaitsecs")
	}
	if o := sv.ini.get(s, "stopsignal"); o != nil {
		if v, ok := sv.expand(o, key("stopsignal"), vars); ok {
			sig := strings.ToUpper(strings.TrimFunc(v, pyIsSpace))
			if sig != "TERM" && sig != "SIGTERM" && sig != "15" {
				res.unmapped(o.line, key("stopsignal"), "gworkerd stops a child with SIGTERM (then SIGKILL after stop_timeout), not %s", v)
			}
		}
	}
	for _, k := range []string{"stopasgroup", "killasgroup"} {
		if o := sv.ini.get(s, k); o != nil {
			if v, ok := sv.expand(o, key(k), vars); ok {
				if b, ok := sv.boolean(o, key(k), v); ok && !b {
					res.unmapped(o.line, key(k), "false: gworkerd always signals the child's whole process group")
				}
			}
		}
	}

	// The keys read per process also see process_num, numprocs and the
	// program's environment as ENV_X.
	vars.late = true
	vars.numprocs = numprocs
	vars.processNum = start
	if o := sv.ini.get(s, "environment"); o != nil {
		if v, ok := sv.expand(o, key("environment"), vars); ok {
			env, err := supervisordEnv(v)
			switch {
			case err != nil:
				res.unmapped(o.line, key("environment"), "supervisord refuses it: %v", err)
			case badEnvNames(env) != "":
				res.unmapped(o.line, key("environment"), "invalid variable name %q for gworkerd", badEnvNames(env))
			default:
				f.Env = env
				vars.env = env
			}
		}
	}
	if o := sv.ini.get(s, "directory"); o != nil {
		if v, ok := sv.expand(o, key("directory"), vars); ok {
			f.Dir = v
		}
	}
	cmd, ok := sv.expand(cmdOpt, key("command"), vars)
	if ok {
		argv, err := shlexSplit(cmd)
		switch {
		case err != nil:
			res.unmapped(cmdOpt.line, key("command"), "supervisord cannot run it (%v): the program is left out", err)
			ok = false
		case len(argv) == 0 || strings.TrimSpace(argv[0]) == "":
			res.unmapped(cmdOpt.line, key("command"), "empty command: the program is left out")
			ok = false
		default:
			f.Command = argv
		}
	} else {
		res.unmapped(cmdOpt.line, "["+s.name+"]", "the program is left out: its command cannot be expanded")
	}

	// Everything else.
	for _, o := range sv.ini.options(s) {
		switch o.name {
		case "command", "numprocs", "numprocs_start", "user", "autostart", "autorestart", "exitcodes",
			"startsecs", "startretries", "stopwaitsecs", "stopsignal", "stopasgroup", "killasgroup",
			"environment", "directory":
		case "redirect_stderr":
			res.unmapped(o.line, key(o.name), "the children's output goes to gworkerd's log_file and the function's log stream, standard error included")
		case "priority":
			res.unmapped(o.line, key(o.name), "gworkerd starts and stops its functions independently, in no order")
		case "process_name":
			res.unmapped(o.line, key(o.name), "gworkerd names the children after the function")
		case "umask":
			res.unmapped(o.line, key(o.name), "gworkerd does not set a umask per function: the children inherit gworkerd's")
		case "serverurl":
			res.unmapped(o.line, key(o.name), "gworkerd has no XML-RPC interface to give the children (SUPERVISOR_SERVER_URL)")
		default:
			if strings.HasPrefix(o.name, "stdout_") || strings.HasPrefix(o.name, "stderr_") {
				res.unmapped(o.line, key(o.name), "the children's output goes to gworkerd's log_file and the function's log stream")
				continue
			}
			res.unmapped(o.line, key(o.name), "supervisord does not know this key")
		}
	}
	if ok {
		res.Config.Functions = append(res.Config.Functions, f)
	}
	return nil
}

func badEnvNames(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validEnvName(k) {
			return k
		}
	}
	return ""
}

// pyTruthy and pyFalsy are supervisord's booleans (datatypes.boolean).
var (
	pyTruthy = map[string]bool{"yes": true, "true": true, "on": true, "1": true}
	pyFalsy  = map[string]bool{"no": true, "false": true, "off": true, "0": true}
)

func (sv *svImport) boolean(o *pyOption, key, v string) (bool, bool) {
	l := strings.ToLower(v)
	switch {
	case pyTruthy[l]:
		return true, true
	case pyFalsy[l]:
		return false, true
	}
	sv.res.unmapped(o.line, key, "supervisord refuses it: not a valid boolean value %q", v)
	return false, false
}

// integer is Python's int() of a string.
func (sv *svImport) integer(o *pyOption, key, v string) (int, bool) {
	t := strings.TrimFunc(v, pyIsSpace)
	if strings.Contains(t, "_") && !strings.Contains(t, "__") && !strings.HasPrefix(strings.TrimLeft(t, "+-"), "_") && !strings.HasSuffix(t, "_") {
		t = strings.ReplaceAll(t, "_", "")
	}
	n, err := strconv.ParseInt(t, 10, 32)
	if err != nil {
		sv.res.unmapped(o.line, key, "supervisord refuses it: not an integer %q", v)
		return 0, false
	}
	return int(n), true
}

func (sv *svImport) duration(o *pyOption, key string, n int) (time.Duration, bool) {
	d, ok := seconds(int64(n))
	if !ok {
		sv.res.unmapped(o.line, key, "negative")
	}
	return d, ok
}

// expand applies the %-formats of a value. A format that names something
// this import cannot know is left in place and reported; a format that
// supervisord would refuse reports the key as unmapped.
func (sv *svImport) expand(o *pyOption, key string, vars *svVars) (string, bool) {
	vars.used = vars.used[:0]
	out, pending, err := pyFormat(o.value, vars.lookup)
	if err != nil {
		sv.res.unmapped(o.line, key, "supervisord refuses it: %v", err)
		return "", false
	}
	for _, u := range vars.used {
		sv.res.note(o.line, key, "%s", u)
	}
	for _, p := range pending {
		sv.res.unmapped(o.line, key, "%s", p)
	}
	return out, true
}

// svVars are the names a value's %-formats may use.
type svVars struct {
	sv         *svImport
	base       map[string]pyArg
	late       bool // process_num, numprocs and the program's ENV_X
	numprocs   int
	processNum int
	env        map[string]string
	used       []string // notes about names filled from this import's host
}

// lookup resolves a name: found, or left in place with the reason, or
// unknown to supervisord (err).
func (v *svVars) lookup(name string) (pyArg, string, error) {
	if a, ok := v.base[name]; ok {
		return a, "", nil
	}
	switch {
	case name == "host_node_name":
		if v.sv.opt.Hostname == "" {
			return pyArg{}, "%(host_node_name)s left as is: supervisord filled in the name of its host", nil
		}
		v.used = append(v.used, fmt.Sprintf("%%(host_node_name)s filled with this host's name %q: supervisord used the name of the host it ran on", v.sv.opt.Hostname))
		return pyArg{s: v.sv.opt.Hostname}, "", nil
	case strings.HasPrefix(name, "ENV_"):
		env := name[len("ENV_"):]
		if val, ok := v.env[env]; ok && v.late {
			return pyArg{s: val}, "", nil
		}
		if val, ok := v.sv.res.Config.Defaults.Env[env]; ok {
			return pyArg{s: val}, "", nil
		}
		if val, ok := v.sv.opt.env(env); ok {
			v.used = append(v.used, fmt.Sprintf("%%(%s)s filled from the environment of this import (%q): supervisord used its own environment", name, val))
			return pyArg{s: val}, "", nil
		}
		return pyArg{}, fmt.Sprintf("%%(%s)s left as is: %s is not set in the environment of this import (supervisord used its own)", name, env), nil
	case v.late && name == "numprocs":
		return pyArg{i: int64(v.numprocs), isInt: true}, "", nil
	case v.late && name == "process_num":
		if v.numprocs == 1 {
			return pyArg{i: int64(v.processNum), isInt: true}, "", nil
		}
		return pyArg{}, "%(process_num)… left as is: gworkerd gives every child of a function the same command and environment; edit it", nil
	}
	return pyArg{}, "", fmt.Errorf("names %q, which cannot be expanded", name)
}

// pyIni is a configuration file as Python's configparser reads it, with
// supervisord's options: inline comments after ; or #, strict=False.
type pyIni struct {
	defaults *pySection
	sections []*pySection
}

type pySection struct {
	name  string
	line  int
	opts  []*pyOption
	index map[string]*pyOption
}

type pyOption struct {
	name  string
	line  int
	lines []string
	value string
}

// get is configparser's get: the section's option, else [DEFAULT]'s.
func (ini *pyIni) get(s *pySection, name string) *pyOption {
	if o := s.index[name]; o != nil {
		return o
	}
	if ini.defaults != nil {
		return ini.defaults.index[name]
	}
	return nil
}

// options are a section's options and the [DEFAULT] ones it does not
// override, in line order.
func (ini *pyIni) options(s *pySection) []*pyOption {
	out := append([]*pyOption(nil), s.opts...)
	if ini.defaults != nil {
		for _, o := range ini.defaults.opts {
			if s.index[o.name] == nil {
				out = append(out, o)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].line < out[j].line })
	return out
}

// expandHere is supervisord's expand_here: %(here)s is replaced in every
// value before anything else.
func (ini *pyIni) expandHere(here string) {
	all := append([]*pySection(nil), ini.sections...)
	if ini.defaults != nil {
		all = append(all, ini.defaults)
	}
	for _, s := range all {
		for _, o := range s.opts {
			o.value = strings.ReplaceAll(o.value, "%(here)s", here)
		}
	}
}

// pyIsSpace is Python's str.isspace for one character.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func parsePyIni(src, name string) (*pyIni, error) {
	ini := &pyIni{}
	byName := map[string]*pySection{}
	var (
		cur         *pySection
		opt         *pyOption
		indentLevel = 0
	)
	errf := func(line int, format string, args ...any) error {
		return &ParseError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for i, raw := range strings.Split(src, "\n") {
		lineno := i + 1
		commentStart := pyInlineComment(raw)
		if t := strings.TrimFunc(raw, pyIsSpace); strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
			commentStart = 0
		}
		value := raw
		if commentStart >= 0 {
			value = raw[:commentStart]
		}
		value = strings.TrimFunc(value, pyIsSpace)
		if value == "" {
			// An empty line inside a value is kept, unless it held a comment.
			if commentStart < 0 && cur != nil && opt != nil {
				opt.lines = append(opt.lines, "")
			}
			continue
		}
		indent := strings.IndexFunc(raw, func(r rune) bool { return !pyIsSpace(r) })
		if indent < 0 {
			indent = 0
		}
		if cur != nil && opt != nil && indent > indentLevel {
			opt.lines = append(opt.lines, value)
			continue
		}
		indentLevel = indent
		if value[0] == '[' {
			if end := strings.LastIndexByte(value, ']'); end >= 2 {
				sname := value[1:end]
				opt = nil
				if sname == "DEFAULT" {
					if ini.defaults == nil {
						ini.defaults = &pySection{name: sname, line: lineno, index: map[string]*pyOption{}}
					}
					cur = ini.defaults
					continue
				}
				if s := byName[sname]; s != nil {
					cur = s // strict=False: a repeated section is merged
					continue
				}
				cur = &pySection{name: sname, line: lineno, index: map[string]*pyOption{}}
				byName[sname] = cur
				ini.sections = append(ini.sections, cur)
				continue
			}
		}
		if cur == nil {
			return nil, errf(lineno, "file contains no section headers: %q", value)
		}
		d := strings.IndexAny(value, "=:")
		if d < 0 {
			return nil, errf(lineno, "not a section header nor a key = value line: %q", value)
		}
		oname := strings.ToLower(strings.TrimRightFunc(value[:d], pyIsSpace))
		if oname == "" {
			return nil, errf(lineno, "empty key: %q", value)
		}
		o := &pyOption{name: oname, line: lineno, lines: []string{strings.TrimFunc(value[d+1:], pyIsSpace)}}
		if prev := cur.index[oname]; prev != nil {
			// strict=False: the later value wins.
			for j, p := range cur.opts {
				if p == prev {
					cur.opts = append(cur.opts[:j], cur.opts[j+1:]...)
					break
				}
			}
		}
		cur.index[oname] = o
		cur.opts = append(cur.opts, o)
		opt = o
	}
	all := append([]*pySection(nil), ini.sections...)
	if ini.defaults != nil {
		all = append(all, ini.defaults)
	}
	for _, s := range all {
		for _, o := range s.opts {
			o.value = strings.TrimRightFunc(strings.Join(o.lines, "\n"), pyIsSpace)
		}
	}
	return ini, nil
}

// pyInlineComment is where configparser (inline_comment_prefixes ; and #)
// cuts a line: the first prefix found at the start of the line or after
// a blank, searched the way configparser searches (each prefix one
// occurrence at a time, stopping at the first round that finds one).
// -1: no comment.
func pyInlineComment(line string) int {
	type pre struct {
		c   byte
		idx int
	}
	active := []pre{{';', -1}, {'#', -1}}
	start := -1
	for start < 0 && len(active) > 0 {
		var next []pre
		for _, p := range active {
			i := strings.IndexByte(line[p.idx+1:], p.c)
			if i < 0 {
				continue
			}
			i += p.idx + 1
			next = append(next, pre{p.c, i})
			if i == 0 || precededBySpace(line, i) {
				if start < 0 || i < start {
					start = i
				}
			}
		}
		active = next
	}
	return start
}

func precededBySpace(line string, i int) bool {
	r := []rune(line[:i])
	return len(r) > 0 && pyIsSpace(r[len(r)-1])
}

// pyArg is a value for a %-format: a string or an int.
type pyArg struct {
	s     string
	i     int64
	isInt bool
}

// pyMaxWidth bounds the width and precision of a %-format.
const pyMaxWidth = 4096

// pyFormat is Python's "s % mapping" for the %(name)X formats supervisord
// uses. lookup returns the value, or a reason to leave the format in
// place (pending), or an error for a name supervisord cannot expand.
func pyFormat(s string, lookup func(string) (pyArg, string, error)) (out string, pending []string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		start := i
		i++
		if i >= len(s) {
			return "", nil, fmt.Errorf("badly formatted: incomplete format at the end")
		}
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		if s[i] != '(' {
			return "", nil, fmt.Errorf("badly formatted: %% not followed by (name) at %q", s[start:min(len(s), start+8)])
		}
		depth, j := 1, i+1
		for ; j < len(s) && depth > 0; j++ {
			switch s[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		if depth > 0 {
			return "", nil, fmt.Errorf("badly formatted: incomplete format key")
		}
		name := s[i+1 : j-1]
		i = j
		var f pySpec
		for ; i < len(s) && strings.IndexByte("-+ #0", s[i]) >= 0; i++ {
			f.flags += string(s[i])
		}
		if f.width, i, err = pyNumber(s, i); err != nil {
			return "", nil, err
		}
		f.prec = -1
		if i < len(s) && s[i] == '.' {
			if f.prec, i, err = pyNumber(s, i+1); err != nil {
				return "", nil, err
			}
		}
		for i < len(s) && strings.IndexByte("hlL", s[i]) >= 0 {
			i++
		}
		if i >= len(s) {
			return "", nil, fmt.Errorf("badly formatted: incomplete format")
		}
		f.conv = s[i]
		spec := s[start : i+1]
		if f.conv == '%' {
			b.WriteByte('%')
			continue
		}
		arg, why, err := lookup(name)
		if err != nil {
			return "", nil, fmt.Errorf("%s %v", spec, err)
		}
		if why != "" {
			pending = append(pending, why)
			b.WriteString(spec)
			continue
		}
		v, err := f.format(arg)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %v", spec, err)
		}
		b.WriteString(v)
		if b.Len() > MaxFileSize {
			return "", nil, fmt.Errorf("the expanded value is longer than %d bytes", MaxFileSize)
		}
	}
	return b.String(), pending, nil
}

func pyNumber(s string, i int) (int, int, error) {
	if i < len(s) && s[i] == '*' {
		return 0, i, fmt.Errorf("badly formatted: * width needs a tuple")
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i {
		return 0, i, nil
	}
	n, err := strconv.Atoi(s[i:j])
	if err != nil || n > pyMaxWidth {
		return 0, j, fmt.Errorf("width or precision %q is over %d (not supported)", s[i:j], pyMaxWidth)
	}
	return n, j, nil
}

type pySpec struct {
	flags string
	width int
	prec  int
	conv  byte
}

func (f pySpec) format(a pyArg) (string, error) {
	var body string
	switch f.conv {
	case 's', 'r', 'a':
		body = a.s
		if a.isInt {
			body = strconv.FormatInt(a.i, 10)
		} else if f.conv != 's' {
			if strings.ContainsAny(body, "'\\") || strings.IndexFunc(body, func(r rune) bool { return !unicode.IsPrint(r) || (f.conv == 'a' && r > 126) }) >= 0 {
				return "", fmt.Errorf("%%%c of this value is not supported", f.conv)
			}
			body = "'" + body + "'"
		}
		if f.prec >= 0 && f.prec < len([]rune(body)) {
			body = string([]rune(body)[:f.prec])
		}
		return f.pad(body, "", false), nil
	case 'd', 'i', 'u', 'x', 'X', 'o':
		if !a.isInt {
			return "", fmt.Errorf("%%%c format: a real number is required, not str", f.conv)
		}
		n := a.i
		sign := ""
		switch {
		case n < 0:
			sign = "-"
		case strings.Contains(f.flags, "+"):
			sign = "+"
		case strings.Contains(f.flags, " "):
			sign = " "
		}
		abs := uint64(n)
		if n < 0 {
			abs = uint64(-n)
		}
		base, prefix := 10, ""
		switch f.conv {
		case 'x':
			base, prefix = 16, "0x"
		case 'X':
			base, prefix = 16, "0X"
		case 'o':
			base, prefix = 8, "0o"
		}
		digits := strconv.FormatUint(abs, base)
		if f.conv == 'X' {
			digits = strings.ToUpper(digits)
		}
		if f.prec > len(digits) {
			digits = strings.Repeat("0", f.prec-len(digits)) + digits
		}
		if !strings.Contains(f.flags, "#") {
			prefix = ""
		}
		return f.pad(digits, sign+prefix, true), nil
	}
	return "", fmt.Errorf("unsupported format character %q", f.conv)
}

// pad applies the width: left-justified with -, zero-padded with 0 for
// numbers, else right-justified.
func (f pySpec) pad(body, lead string, numeric bool) string {
	n := len([]rune(lead + body))
	if n >= f.width {
		return lead + body
	}
	fill := f.width - n
	switch {
	case strings.Contains(f.flags, "-"):
		return lead + body + strings.Repeat(" ", fill)
	case numeric && strings.Contains(f.flags, "0"):
		return lead + strings.Repeat("0", fill) + body
	}
	return strings.Repeat(" ", fill) + lead + body
}

// shlexSplit is Python's shlex.split (POSIX mode, no comments), which
// supervisord applies to a command.
func shlexSplit(s string) ([]string, error) {
	const (
		whitespace = " \t\r\n"
		quotes     = "'\""
	)
	var (
		args        []string
		tok         strings.Builder
		state       = ' '
		escapeState rune
		quoted      bool
	)
	for _, c := range s {
		switch {
		case state == ' ' || state == 'a':
			switch {
			case strings.ContainsRune(whitespace, c):
				if state == 'a' || quoted {
					if tok.Len() > 0 || quoted {
						args = append(args, tok.String())
					}
					tok.Reset()
					quoted = false
				}
				state = ' '
			case c == '\\':
				escapeState, state = 'a', '\\'
			case strings.ContainsRune(quotes, c):
				state = c
			default:
				tok.WriteRune(c)
				state = 'a'
			}
		case state == '\\':
			if strings.ContainsRune(quotes, escapeState) && c != '\\' && c != escapeState {
				tok.WriteByte('\\')
			}
			tok.WriteRune(c)
			state = escapeState
		default: // in quotes
			quoted = true
			switch {
			case c == state:
				state = 'a'
			case c == '\\' && state == '"':
				escapeState, state = state, '\\'
			default:
				tok.WriteRune(c)
			}
		}
	}
	switch {
	case state == '\\':
		return nil, fmt.Errorf("no escaped character")
	case state == '\'' || state == '"':
		return nil, fmt.Errorf("no closing quotation")
	}
	if tok.Len() > 0 || quoted {
		args = append(args, tok.String())
	}
	return args, nil
}

// supervisordEnv is supervisord's dict_of_key_value_pairs: the value is
// cut into tokens by Python's shlex in its non-POSIX mode (word
// characters: letters, digits, _ and /.+-():), then read as KEY = VAL
// triples separated by one token (the comma); quotes around a value are
// stripped.
func supervisordEnv(s string) (map[string]string, error) {
	toks, err := kvTokens(s)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for i := 0; i < len(toks); i += 4 {
		if i+3 > len(toks) || toks[i+1] != "=" {
			return nil, fmt.Errorf("unexpected end of key/value pairs in value %q", s)
		}
		env[toks[i]] = strings.Trim(toks[i+2], `'"`)
	}
	return env, nil
}

// kvTokens is list(shlex.shlex(s)) with wordchars += '/.+-():'.
func kvTokens(s string) ([]string, error) {
	isWord := func(c rune) bool {
		return c < 128 && (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.ContainsRune("/.+-():", c))
	}
	isSpace := func(c rune) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	rs := []rune(s)
	var (
		toks  []string
		tok   []rune
		state = ' '
	)
	emit := func() {
		toks = append(toks, string(tok))
		tok = tok[:0]
	}
	skipLine := func(i int) int {
		for i+1 < len(rs) && rs[i+1] != '\n' {
			i++
		}
		if i+1 < len(rs) {
			i++ // the newline itself is read with the comment
		}
		return i
	}
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch state {
		case ' ':
			switch {
			case isSpace(c):
			case c == '#':
				i = skipLine(i)
			case isWord(c):
				tok, state = append(tok, c), 'a'
			case c == '\'' || c == '"':
				tok, state = append(tok, c), c
			default:
				tok = append(tok, c)
				emit()
			}
		case 'a':
			switch {
			case isSpace(c):
				emit()
				state = ' '
			case c == '#':
				i = skipLine(i) // the word goes on after the comment
			case isWord(c) || c == '\'' || c == '"':
				tok = append(tok, c)
			default:
				emit()
				tok = append(tok, c)
				emit()
				state = ' '
			}
		default: // in quotes
			tok = append(tok, c)
			if c == state {
				emit()
				state = ' '
			}
		}
	}
	switch state {
	case 'a':
		emit()
	case '\'', '"':
		return nil, fmt.Errorf("no closing quotation")
	}
	return toks, nil
}
