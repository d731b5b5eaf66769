package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// phpDump reads a JSON list of {"path":..., "env":{...}} on stdin and
// prints, for each, $gearman_config read the way GearmanManager reads the
// file (parse_ini_file for .ini, require for .php) with that environment,
// as JSON in the shape sectionsJSON gives: a section's values as
// strings, lists of strings, {"null":true} or {"nested":true}; a scalar
// entry as null; "error" when PHP cannot read the file.
const phpDump = `
function load($f) {
	if (substr($f, -4) == ".php") {
		ob_start();
		require $f;
		ob_end_clean();
		return isset($gearman_config) ? $gearman_config : null;
	}
	return @parse_ini_file($f, true);
}
function v($x) {
	if ($x === null) return ["null" => true];
	if (!is_array($x)) return (string)$x;
	foreach ($x as $e) { if (is_array($e)) return ["nested" => true]; }
	return array_map("strval", array_values($x));
}
$all = [];
foreach (json_decode(stream_get_contents(STDIN), true) as $in) {
	foreach ($in["env"] as $k => $val) { putenv("$k=$val"); }
	$c = load($in["path"]);
	foreach ($in["env"] as $k => $val) { putenv($k); }
	if (!is_array($c)) { $all[] = "error"; continue; }
	$out = new stdClass;
	foreach ($c as $k => $sec) {
		if (!is_array($sec)) { $out->{$k} = null; continue; }
		$o = new stdClass;
		foreach ($sec as $kk => $vv) { $o->{$kk} = v($vv); }
		$out->{$k} = $o;
	}
	$all[] = $out;
}
echo json_encode($all);
`

// sectionsJSON is what the import read, in phpDump's shape.
func sectionsJSON(t *testing.T, secs []gmSection) any {
	t.Helper()
	out := map[string]any{}
	for _, s := range secs {
		if s.scalar {
			out[s.name] = nil
			continue
		}
		m := map[string]any{}
		for _, k := range s.keys {
			switch {
			case k.val.null:
				m[k.name] = map[string]any{"null": true}
			case k.val.nested:
				m[k.name] = map[string]any{"nested": true}
			case k.val.isList:
				l := []any{}
				for _, e := range k.val.list {
					l = append(l, e)
				}
				m[k.name] = l
			default:
				m[k.name] = k.val.s
			}
		}
		out[s.name] = m
	}
	// Through JSON, so that both sides have the same types.
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

// The parsers read every test input the way PHP does: PHP's own
// parse_ini_file and require give the same $gearman_config.
func TestParsersMatchPHP(t *testing.T) {
	t.Parallel()
	php := testpeer.Require(t, "php")
	type input struct {
		name, file, src string
		env             map[string]string
	}
	var inputs []input
	for _, c := range append(append([]mapCase(nil), gmINICases...), gmPHPCases...) {
		if strings.HasSuffix(c.file, ".ini") || strings.HasSuffix(c.file, ".php") {
			inputs = append(inputs, input{c.name, c.file, c.src, c.env})
		}
	}
	for _, f := range []string{"config.ini", "config.php"} {
		b, err := os.ReadFile(filepath.Join(exampleDir, "gearmanmanager", f))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, input{name: "example " + f, file: f, src: string(b)})
	}
	inputs = append(inputs,
		input{name: "ini quoting", file: "q.ini", src: "[S]\na = \"x\\\"y\\\\z\"\nb = 'raw \\n'\nc = x \"y\" 'z'\nd =   spaced out   \ne = \"\"\nf = none\ng = On\n"},
		input{name: "ini lists", file: "l.ini", src: "[S]\na[] = 1\na[] = 2\nb[x] = 3\nb[y] = 4\n"},
		input{name: "ini comments", file: "c.ini", src: "; c\n[S] ; c\na = 1 ; c\nb = \"x;y\" ; c\njunk ; c\n\n\t[T]\n  k = v\n \t[U]\n"},
		input{name: "php mixed", file: "m.php", src: "<?php\n$a = ['x' => 1, 'y' => [1, 2]];\n$gearman_config = ['S' => $a, 'T' => ['k' => false, 'l' => true, 'm' => -3, 'n' => 010, 'o' => 0b11]];\n$gearman_config['T']['p'] = 'q';\n$gearman_config['U'][] = 'r';\n"},
		input{name: "php strings", file: "s.php", src: "<?php\n$gearman_config = ['S' => ['a' => \"\\t\\x41\\101\\u{263A}\\\\ \\q\", 'b' => 'it\\'s \\n', 'c' => 'a' . 1 . true . null]];\n"},
	)
	// One PHP for every input.
	type job struct {
		Path string            `json:"path"`
		Env  map[string]string `json:"env"`
	}
	var jobs []job
	for i, in := range inputs {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, in.file)
		if err := os.WriteFile(p, []byte(in.src), 0o644); err != nil {
			t.Fatal(err)
		}
		env := in.env
		if env == nil {
			env = map[string]string{}
		}
		jobs = append(jobs, job{p, env})
	}
	stdin, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(php, "-n", "-r", phpDump)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	var wants []json.RawMessage
	if err := json.Unmarshal(out, &wants); err != nil || len(wants) != len(inputs) {
		t.Fatalf("php output %q: %v", out, err)
	}
	for i, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			path := jobs[i].Path
			opt := Options{Name: path, Dir: filepath.Dir(path), LookupEnv: fixedEnv(in.env)}
			var (
				secs []gmSection
				err  error
			)
			if strings.HasSuffix(in.file, ".php") {
				secs, err = parsePHPConfig(in.src, path, opt)
			} else {
				secs, err = parseGMIni(in.src, path, opt, &Result{})
			}
			if string(wants[i]) == `"error"` || err != nil {
				t.Fatalf("php: %s; import: %v", wants[i], err)
			}
			var want any
			if err := json.Unmarshal(wants[i], &want); err != nil {
				t.Fatal(err)
			}
			if got := sectionsJSON(t, secs); !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Errorf("import read\n%s\nPHP reads\n%s", g, wants[i])
			}
		})
	}
}

// exampleDir holds the example configurations, imported by the golden
// tests.
var exampleDir = filepath.Join("..", "..", "deploy", "examples")
