package migrate

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// pyDump reads a file the way supervisord does (its UnhosedConfigParser:
// RawConfigParser with inline comments after ; and #, strict=False) and
// prints every section's options, [DEFAULT]'s included, as JSON; with
// each command split by shlex.split and each environment read by
// supervisord's dict_of_key_value_pairs (copied from
// supervisor/datatypes.py), or "error".
const pyDump = `
import configparser, json, shlex, sys

def dict_of_key_value_pairs(arg):
    lexer = shlex.shlex(str(arg))
    lexer.wordchars += '/.+-():'
    tokens = list(lexer)
    D = {}
    i = 0
    while i < len(tokens):
        k_eq_v = tokens[i:i+3]
        if len(k_eq_v) != 3 or k_eq_v[1] != '=':
            raise ValueError("Unexpected end of key/value pairs")
        D[k_eq_v[0]] = k_eq_v[2].strip('\'"')
        i += 4
    return D

def dump(path):
    p = configparser.RawConfigParser(inline_comment_prefixes=(';', '#'), strict=False)
    try:
        with open(path, encoding='utf-8') as f:
            p.read_file(f)
    except configparser.Error:
        return 'error'
    out = {}
    for s in ['DEFAULT'] + p.sections():
        opts = dict(p.defaults()) if s == 'DEFAULT' else dict(p.items(s))
        sec = {'options': opts}
        if 'command' in opts:
            try:
                sec['command'] = shlex.split(opts['command'])
            except ValueError:
                sec['command'] = 'error'
        if 'environment' in opts:
            try:
                sec['environment'] = dict_of_key_value_pairs(opts['environment'])
            except ValueError:
                sec['environment'] = 'error'
        out[s] = sec
    return out

print(json.dumps([dump(path) for path in sys.argv[1:]]))
`

// pyJSON is what the import read, in pyDump's shape.
func pyJSON(t *testing.T, ini *pyIni) any {
	t.Helper()
	out := map[string]any{}
	dump := func(name string, opts []*pyOption) {
		m := map[string]string{}
		for _, o := range opts {
			m[o.name] = o.value
		}
		sec := map[string]any{"options": m}
		if v, ok := m["command"]; ok {
			if argv, err := shlexSplit(v); err != nil {
				sec["command"] = "error"
			} else {
				sec["command"] = append([]string{}, argv...)
			}
		}
		if v, ok := m["environment"]; ok {
			if env, err := supervisordEnv(v); err != nil {
				sec["environment"] = "error"
			} else {
				sec["environment"] = env
			}
		}
		out[name] = sec
	}
	var defaults []*pyOption
	if ini.defaults != nil {
		defaults = ini.defaults.opts
	}
	dump("DEFAULT", defaults)
	for _, s := range ini.sections {
		dump(s.name, ini.options(s))
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The supervisord parsers read every test input the way Python's
// configparser, shlex and supervisord's environment parser do.
func TestParsersMatchPython(t *testing.T) {
	t.Parallel()
	py := testpeer.Require(t, "python3")
	type input struct{ name, src string }
	var inputs []input
	for _, c := range svCases {
		inputs = append(inputs, input{c.name, c.src})
	}
	b, err := os.ReadFile(filepath.Join(exampleDir, "supervisord", "workers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs,
		input{"example", string(b)},
		input{"comments", "[program:a]\ncommand=/bin/a ;c\nb=x;y #z\nc=x #y ;z\nd=;x\ne=#x\n  ; indented comment\n"},
		input{"continuations", "[program:a]\ncommand=/bin/a\n\n  -x\n\n\nnext=1\n  \tmore\n"},
		input{"shlex", "[program:a]\ncommand=a\\ b 'c\\d' \"e\\\"f\\\\g\\h\" i\"j\"k '' \"\"\n[program:b]\ncommand='x\n[program:c]\ncommand=x\\\n"},
		input{"environment", "[program:a]\ncommand=a\nenvironment=A=\"1,2\",B=x y,C=-1.5/(z):+\n[program:b]\ncommand=b\nenvironment=A=1 # c\n  ,B=2\n[program:c]\ncommand=c\nenvironment=A='x\n[program:d]\ncommand=d\nenvironment=A=1,,B=2\n"},
		input{"delimiters", "[program:a]\ncommand : a=b\nkey=value:with:colons\nother: x = y\n  UPPER = 1\n"},
		input{"unicode", "[program:é]\ncommand=/bin/ünï \u00a0x\nenvironment=É=\"ü\"\n"},
		input{"no section", "command=/bin/a\n"},
		input{"not key=value", "[program:a]\njunk\n"},
	)
	// One Python for every input: it takes half a second to start.
	dir := t.TempDir()
	var paths []string
	for i, in := range inputs {
		p := filepath.Join(dir, fmt.Sprintf("%02d.conf", i))
		if err := os.WriteFile(p, []byte(in.src), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(py, append([]string{"-c", pyDump}, paths...)...).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var wants []json.RawMessage
	if err := json.Unmarshal(out, &wants); err != nil || len(wants) != len(inputs) {
		t.Fatalf("python output %q: %v", out, err)
	}
	for i, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			var want any
			if err := json.Unmarshal(wants[i], &want); err != nil {
				t.Fatal(err)
			}
			ini, err := parsePyIni(in.src, paths[i])
			if want == "error" || err != nil {
				if want != "error" || err == nil {
					t.Fatalf("python: %s; import: %v", wants[i], err)
				}
				return
			}
			if got := pyJSON(t, ini); !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Errorf("import read\n%s\nPython reads\n%s", g, wants[i])
			}
		})
	}
}
