package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// DefaultConfigFile is gearmand's default --config-file: read when it
// exists and no other file is given; its absence is not an error.
const DefaultConfigFile = "/etc/gearmand.conf"

// maxConfigFile bounds the config file read, in either format.
const maxConfigFile = 1 << 20

// gearmandKeys are the gearmand 1.1.20 options that are not gserverd
// settings of their own: --syslog (and gserverd's --syslog-socket), and
// the options gserverd accepts and ignores, each with the reason it
// prints (one line when the option is given).
func gearmandKeys() []serverKey {
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
	keys := []serverKey{
		{flag: "syslog", kind: kindBool, def: "false",
			usage: "also send the log to the local syslog (facility daemon, tag gserverd), at the --verbose level",
			set:   boolSetter(func(c *Server) *bool { return &c.Syslog })},
		{flag: "syslog-socket", kind: kindString,
			usage: "with --syslog: the syslog `socket` (a unix datagram or stream socket); default the system's (/dev/log)",
			set:   stringSetter(func(c *Server) *string { return &c.SyslogSocket }, nil)},
		{flag: "coredump", kind: kindBool, def: "false",
			ignored: "a Go program dumps core only with GOTRACEBACK=crash (and ulimit -c)",
			set:     ignoredBool},
		{flag: "hashtable-buckets", kind: kindInt, def: "991",
			ignored: "gserverd's job tables grow as needed",
			set: ignoredInt(func(n int) error {
				if n == 0 {
					return errors.New("want a number of buckets > 0")
				}
				return nil
			})},
		{flag: "libmemcached-servers", kind: kindString, ignored: memcached, set: ignoredString},
		{flag: "libmemcached-prefix", kind: kindString, def: "gear_", ignored: memcached, set: ignoredString},
		{flag: "store-queue-on-shutdown", kind: kindBool, def: "false", ignored: sqlite, set: ignoredBool},
		{flag: "libtokyocabinet-file", kind: kindString, ignored: tokyo, set: ignoredString},
		{flag: "libtokyocabinet-optimize", kind: kindBool, def: "false", ignored: tokyo, set: ignoredBool},
	}
	for _, name := range []string{"host", "port", "uds", "user", "password", "db", "table"} {
		keys = append(keys, serverKey{flag: "libdrizzle-" + name, kind: kindString, ignored: drizzle, set: ignoredString})
	}
	keys = append(keys, serverKey{flag: "libdrizzle-mysql", kind: kindBool, def: "false", ignored: drizzle, set: ignoredBool})
	for i := range keys {
		if keys[i].ignored != "" {
			keys[i].usage = "accepted and ignored: " + keys[i].ignored
		}
	}
	return keys
}

// embeddedQueues are gearmand queue modules gserverd has no backend for
// but which, like the embedded store, keep the queue across a restart of
// the server: -q takes them as embedded, with a warning.
var embeddedQueues = map[string]bool{"libmemcached": true, "libtokyocabinet": true}

// queueSetter is -q: gearmand's names, and the modules gserverd does not
// have that the embedded store stands in for.
func queueSetter(c *Server, s string, _ []string) error {
	if l := strings.ToLower(strings.TrimSpace(s)); embeddedQueues[l] {
		c.warn(fmt.Sprintf("queue type %s is not available in gserverd; using the embedded store (--data-dir), which also keeps the queue across restarts", l))
		s = "embedded"
	}
	return stringSetter(func(c *Server) *string { return &c.QueueType }, queueCheck)(c, s, nil)
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
// values by file key, as readServerFile does, and the number of -v.
func readGearmandFile(path string, data []byte, keys []serverKey) (map[string]fileValue, int, error) {
	fileErr := func(line int, key, msg string) error {
		return &ServerConfigError{Key: key, Source: Source{Kind: SourceFile, Name: path, Line: line}, Msg: msg}
	}
	long := map[string]serverKey{}
	short := map[byte]serverKey{}
	for _, k := range keys {
		long[k.flag] = k
		long[k.key()] = k
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
	out := map[string]fileValue{}
	verbose := 0
	set := func(k serverKey, val string, line int) error {
		if k.noFile {
			return fileErr(line, k.key(), "cannot be set inside the config file")
		}
		fv, seen := out[k.key()]
		if seen && k.kind != kindList {
			return fileErr(line, k.key(), "given more than once (first on line "+strconv.Itoa(fv.line)+")")
		}
		if !seen {
			fv = fileValue{line: line}
		}
		fv.s = val
		if k.kind == kindList {
			fv.list = append(fv.list, splitList(val)...)
		}
		out[k.key()] = fv
		return nil
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		// value returns the option's value: after '=', attached, or the
		// next word.
		value := func(k serverKey, attached string, has bool) (string, error) {
			if has {
				return attached, nil
			}
			if k.kind == kindBool {
				return "true", nil
			}
			if i+1 >= len(toks) {
				return "", fileErr(t.line, k.key(), "needs a value")
			}
			i++
			return toks[i].s, nil
		}
		switch {
		case strings.HasPrefix(t.s, "--"):
			name, val, has := strings.Cut(t.s[2:], "=")
			k, ok := long[name]
			if !ok || name == k.key() && name != k.flag {
				return nil, 0, fileErr(t.line, "", fmt.Sprintf("unknown option %q", t.s))
			}
			v, err := value(k, val, has)
			if err != nil {
				return nil, 0, err
			}
			if err := set(k, v, t.line); err != nil {
				return nil, 0, err
			}
		case strings.HasPrefix(t.s, "-") && len(t.s) > 1:
			if strings.Trim(t.s[1:], "v") == "" {
				verbose += len(t.s) - 1
				continue
			}
			k, ok := short[t.s[1]]
			if !ok {
				return nil, 0, fileErr(t.line, "", fmt.Sprintf("unknown option %q", t.s))
			}
			attached := t.s[2:]
			if k.kind == kindBool && attached != "" {
				return nil, 0, fileErr(t.line, k.key(), fmt.Sprintf("%q: combine no other letter with -%s", t.s, k.short))
			}
			v, err := value(k, attached, attached != "")
			if err != nil {
				return nil, 0, err
			}
			if err := set(k, v, t.line); err != nil {
				return nil, 0, err
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
				return nil, 0, fileErr(t.line, "", fmt.Sprintf("want --option=value or key=value, got %q", t.s))
			}
			if val == "" && i+1 < len(toks) && toks[i+1].line == t.line && k.kind != kindBool {
				i++ // key = value
				val = toks[i].s
			}
			if err := set(k, val, t.line); err != nil {
				return nil, 0, err
			}
		}
	}
	return out, verbose, nil
}

// readConfigFile reads path, bounded, and parses it in its format.
func readConfigFile(path string, keys []serverKey) (map[string]fileValue, int, error) {
	fileErr := func(msg string) error {
		return &ServerConfigError{Source: Source{Kind: SourceFile, Name: path}, Msg: msg}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fileErr("cannot read the config file: " + errors.Unwrap(err).Error())
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, 0, fileErr("cannot read the config file: " + err.Error())
	}
	if len(data) > maxConfigFile {
		return nil, 0, fileErr(fmt.Sprintf("larger than %d bytes", maxConfigFile))
	}
	if isGearmandFormat(data) {
		return readGearmandFile(path, data, keys)
	}
	m, err := readServerFile(path, data, keys)
	return m, 0, err
}
