package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultConfigFile is gearmand's default --config-file: read when it
// exists and no other file is given; its absence is not an error.
const DefaultConfigFile = "/etc/gearmand.conf"

// gearmandKeys are the gearmand 1.1.20 options that are not gserverd
// settings of their own: --syslog (and gserverd's --syslog-socket), and
// the options gserverd accepts and ignores, each with the reason it
// prints (one line when the option is given).
func gearmandKeys() []key[Server] {
	ignoredInt := func(check func(int) error) func(*Server, string, []string) error {
		return intSetter(func(*Server) *int { return new(int) }, check)
	}
	ignoredBool := boolSetter(func(*Server) *bool { return new(bool) })
	ignoredString := stringSetter(func(*Server) *string { return new(string) }, nil)
	const (
		memcached = "gserverd has no memcached queue (-q libmemcached uses the embedded store)"
		tokyo     = "gserverd has no Tokyo Cabinet queue (-q libtokyocabinet uses the embedded store)"
		drizzle   = "libdrizzle left gearmand in 1.1; use -q mysql and the --mysql-* options"
		sqlite    = "gserverd's -q libsqlite3 writes every job to the file as it is queued, so nothing is left to store at shutdown"
	)
	keys := []key[Server]{
		{name: "syslog", kind: kindBool, def: "false",
			usage: "also send the log to the local syslog (facility daemon, tag gserverd), at the --verbose level",
			set:   boolSetter(func(c *Server) *bool { return &c.Syslog })},
		{name: "syslog_socket", kind: kindString, path: pathFile,
			usage: "with --syslog: the syslog `socket` (a unix datagram or stream socket); default the system's (/dev/log)",
			set:   stringSetter(func(c *Server) *string { return &c.SyslogSocket }, nil)},
		{name: "coredump", kind: kindBool, def: "false",
			ignored: "a Go program dumps core only with GOTRACEBACK=crash (and ulimit -c)",
			set:     ignoredBool},
		{name: "hashtable_buckets", kind: kindInt, def: "991",
			ignored: "gserverd's job tables grow as needed",
			set: ignoredInt(func(n int) error {
				if n == 0 {
					return errors.New("want a number of buckets > 0")
				}
				return nil
			})},
		{name: "libmemcached_servers", kind: kindString, ignored: memcached, set: ignoredString},
		{name: "libmemcached_prefix", kind: kindString, def: "gear_", ignored: memcached, set: ignoredString},
		{name: "store_queue_on_shutdown", kind: kindBool, def: "false", ignored: sqlite, set: ignoredBool},
		{name: "libtokyocabinet_file", kind: kindString, ignored: tokyo, set: ignoredString},
		{name: "libtokyocabinet_optimize", kind: kindBool, def: "false", ignored: tokyo, set: ignoredBool},
	}
	for _, name := range []string{"host", "port", "uds", "user", "password", "db", "table"} {
		keys = append(keys, key[Server]{name: "libdrizzle_" + name, kind: kindString, ignored: drizzle, set: ignoredString})
	}
	keys = append(keys, key[Server]{name: "libdrizzle_mysql", kind: kindBool, def: "false", ignored: drizzle, set: ignoredBool})
	for i := range keys {
		if keys[i].ignored != "" {
			keys[i].usage = "accepted and ignored: " + keys[i].ignored
		}
	}
	return keys
}

// VerboseUp is the hidden count flag behind -v: each v raises the log
// level one step on gearmand's scale (-vvv from ERROR is INFO).
const VerboseUp = "verbose-up"

// raiseVerbose returns level raised by n steps of gearmand's scale,
// at most DEBUG.
func raiseVerbose(level string, n int) string {
	for i, name := range verboseNames {
		if name == level {
			return verboseNames[min(i+n, len(verboseNames)-1)]
		}
	}
	return level
}

// isGearmandFormat tells gearmand's config file format from YAML: the
// first line that is neither blank nor a comment is an option
// (--port=4730, -p 4730) or a boost-style key=value line.
var gearmandKeyValue = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*[ \t]*=`)

func isGearmandFormat(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		if bytes.HasPrefix(l, []byte("---")) {
			return false // a YAML document marker
		}
		// "- item" is a YAML list; an option has no space after its dash.
		return l[0] == '-' && len(l) > 1 && l[1] != ' ' && l[1] != '\t' || gearmandKeyValue.Match(l)
	}
	return false
}

// readGearmandFile parses gearmand's config file: the options as on its
// command line, separated by spaces and newlines (--port=4730, --port
// 4730, -p 4730, -vvv, -d), and boost-style key=value lines (port=4730).
// A # starting a word comments out the rest of the line. It returns the
// values by file key, as table.parseYAML does, and the number of -v.
func readGearmandFile(path string, data []byte, keys []key[Server]) (*fileValues, error) {
	fileErr := func(line int, key, msg string) error {
		return &Error{Key: key, Source: fileSource(path, line), Msg: msg}
	}
	long := map[string]key[Server]{}
	short := map[byte]key[Server]{}
	for _, k := range keys {
		long[k.flag()] = k
		long[k.name] = k
		if k.short != "" {
			short[k.short[0]] = k
		}
	}
	type token struct {
		s    string
		line int
	}
	var toks []token
	for i, line := range strings.Split(string(data), "\n") {
		for _, w := range strings.Fields(line) {
			if w[0] == '#' {
				break
			}
			toks = append(toks, token{w, i + 1})
		}
	}
	fv := newFileValues(path)
	out := fv.vals
	set := func(k key[Server], val string, line int) error {
		if k.noFile {
			return fileErr(line, k.name, "cannot be set inside the config file")
		}
		v, seen := out[k.name]
		if seen && k.kind != kindList {
			return fileErr(line, k.name, "given more than once (first on line "+strconv.Itoa(v.line)+")")
		}
		if !seen {
			v = fileValue{line: line}
		}
		v.s = val
		if k.kind == kindList {
			v.list = append(v.list, splitList(val)...)
		}
		out[k.name] = v
		return nil
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		// value returns the option's value: after '=', attached, or the
		// next word.
		optValue := func(k key[Server], attached string, has bool) (string, error) {
			if has {
				return attached, nil
			}
			if k.kind == kindBool {
				return "true", nil
			}
			if i+1 >= len(toks) {
				return "", fileErr(t.line, k.name, "needs a value")
			}
			i++
			return toks[i].s, nil
		}
		switch {
		case strings.HasPrefix(t.s, "--"):
			name, val, has := strings.Cut(t.s[2:], "=")
			k, ok := long[name]
			if !ok || name == k.name && name != k.flag() {
				return nil, fileErr(t.line, "", fmt.Sprintf("unknown option %q", t.s))
			}
			v, err := optValue(k, val, has)
			if err != nil {
				return nil, err
			}
			if err := set(k, v, t.line); err != nil {
				return nil, err
			}
		case strings.HasPrefix(t.s, "-") && len(t.s) > 1:
			if strings.Trim(t.s[1:], "v") == "" {
				fv.verbose += len(t.s) - 1
				continue
			}
			k, ok := short[t.s[1]]
			if !ok {
				return nil, fileErr(t.line, "", fmt.Sprintf("unknown option %q", t.s))
			}
			attached := t.s[2:]
			if k.kind == kindBool && attached != "" {
				return nil, fileErr(t.line, k.name, fmt.Sprintf("%q: combine no other letter with -%s", t.s, k.short))
			}
			v, err := optValue(k, attached, attached != "")
			if err != nil {
				return nil, err
			}
			if err := set(k, v, t.line); err != nil {
				return nil, err
			}
		default:
			word := t.s
			if !strings.Contains(word, "=") && i+1 < len(toks) && toks[i+1].line == t.line && strings.HasPrefix(toks[i+1].s, "=") {
				i++ // key =value, key = value
				word += toks[i].s
			}
			name, val, has := strings.Cut(word, "=")
			k, ok := long[name]
			if !has || !ok {
				return nil, fileErr(t.line, "", fmt.Sprintf("want --option=value or key=value, got %q", t.s))
			}
			if val == "" && i+1 < len(toks) && toks[i+1].line == t.line && k.kind != kindBool {
				i++ // key = value
				val = toks[i].s
			}
			if err := set(k, val, t.line); err != nil {
				return nil, err
			}
		}
	}
	return fv, nil
}
