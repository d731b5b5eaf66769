package migrate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzImport checks one input: no panic; an error is a *ParseError that
// names the file and a line of it; a success gives YAML that gworkerd
// loads, a header that stays in comments and one report line per
// finding.
func fuzzImport(t *testing.T, dir, name string, convert func([]byte, Options) (*Result, error), data []byte) {
	res, err := convert(data, Options{Name: name, Dir: "/etc/old", LookupEnv: fixedEnv(map[string]string{"HOME": "/home/app"}), Hostname: "worker1"})
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrSyntax) {
			t.Fatalf("error %v (%T), want a *ParseError", err, err)
		}
		nl := bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
		if lines := bytes.Count(nl, []byte("\n")) + 1; pe.File != name || pe.Line < 0 || pe.Line > lines {
			t.Fatalf("error %q names %q line %d; the input is %q with %d lines", err, pe.File, pe.Line, name, lines)
		}
		return
	}
	checkOutput(t, dir, res)
}

// seeds adds the examples, the table inputs and every file of
// testdata/fuzz/<target>/ (the crashers found so far are in the corpus
// go test keeps there).
func seeds(f *testing.F, examples []string, cases ...[]mapCase) {
	for _, e := range examples {
		b, err := os.ReadFile(filepath.Join(exampleDir, e))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, cs := range cases {
		for _, c := range cs {
			f.Add([]byte(c.src))
		}
	}
}

func FuzzGearmanManagerINI(f *testing.F) {
	seeds(f, []string{"gearmanmanager/config.ini"}, gmINICases)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzImport(t, dir, "gm.ini", GearmanManager, data)
	})
}

func FuzzGearmanManagerPHP(f *testing.F) {
	seeds(f, []string{"gearmanmanager/config.php"}, gmPHPCases)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzImport(t, dir, "gm.php", GearmanManager, data)
	})
}

func FuzzSupervisord(f *testing.F) {
	seeds(f, []string{"supervisord/workers.conf"}, svCases)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzImport(t, dir, "w.conf", Supervisord, data)
	})
}
