package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// loadWithDefault loads args with defaultFile as the default config file.
func loadWithDefault(t *testing.T, args []string, defaultFile string) (*Server, error) {
	t.Helper()
	fs := pflag.NewFlagSet("gserverd", pflag.ContinueOnError)
	ServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return loadServerWith(Inputs{Flags: fs, LookupEnv: func(string) (string, bool) { return "", false }}, 1000, defaultFile)
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVerboseStacks: each -v raises the level one step of gearmand's
// scale, from --verbose (default ERROR), at most DEBUG.
func TestVerboseStacks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-v"}, "WARNING"},
		{[]string{"-vvv"}, "INFO"},
		{[]string{"-v", "-v"}, "NOTICE"},
		{[]string{"-dv"}, "WARNING"},
		{[]string{"-vvvvvvvvvv"}, "DEBUG"},
		{[]string{"--verbose=FATAL", "-vv"}, "CRITICAL"},
		{[]string{"-vv", "--verbose", "debug"}, "DEBUG"},
	} {
		c, _, err := loadServer(t, tc.args, nil, "")
		if err != nil || c.Verbose != tc.want {
			t.Errorf("%q: verbose %q, %v; want %q", tc.args, c.Verbose, err, tc.want)
		}
	}
}

// TestIgnoredOptions: gearmand's options without a gserverd meaning are
// accepted, each with one warning line naming it and why.
func TestIgnoredOptions(t *testing.T) {
	t.Parallel()
	c, _, err := loadServer(t, []string{"--coredump", "--hashtable-buckets", "1733003", "--libmemcached-servers=a:11211",
		"--libmemcached-prefix=x", "--store-queue-on-shutdown",
		"--libtokyocabinet-file=/q.tc", "--libdrizzle-host=h", "--libdrizzle-mysql", "-q", "libmemcached"}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.QueueType != "embedded" {
		t.Errorf("-q libmemcached: queue type %q, want embedded", c.Store.QueueType)
	}
	want := []string{"queue type libmemcached", "--coredump:", "--hashtable-buckets:", "--libmemcached-servers:", "--libmemcached-prefix:",
		"--store-queue-on-shutdown:", "--libtokyocabinet-file:", "--libdrizzle-host:", "--libdrizzle-mysql:"}
	if len(c.Warnings) != len(want) {
		t.Fatalf("warnings %q, want one for each of %q", c.Warnings, want)
	}
	for i, w := range c.Warnings {
		if !strings.HasPrefix(w, want[i]) || strings.Contains(w, "\n") {
			t.Errorf("warning %d: %q, want one line starting %q", i, w, want[i])
		}
	}
	if c, _, _ := loadServer(t, nil, nil, ""); len(c.Warnings) != 0 {
		t.Errorf("no option given: warnings %q", c.Warnings)
	}
	if _, _, err := loadServer(t, []string{"--hashtable-buckets=0"}, nil, ""); err == nil ||
		err.Error() != "--hashtable-buckets: want a number of buckets > 0, got 0" {
		t.Errorf("--hashtable-buckets=0: %v", err)
	}
}

// TestGearmandConfigFile reads gearmand's format: its command-line
// options separated by spaces and newlines, and key=value lines.
func TestGearmandConfigFile(t *testing.T) {
	t.Parallel()
	text := "# gearmand options\n--port=4999 --listen 127.0.0.1\n-j 3 -vv\n\n-d   # a comment --bogus\nqueue-type=builtin\n" +
		"job_handle_prefix = GX\n--listen=::1\n--syslog\n--coredump\n"
	p := writeFile(t, "gearmand.conf", text)
	c, err := loadWithDefault(t, []string{"--config-file", p, "-p", "5000"}, "/nonexistent/gearmand.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 5000 || !reflect.DeepEqual(c.Listen, []string{"127.0.0.1", "::1"}) || c.JobRetries != 3 || c.Verbose != "NOTICE" ||
		!c.Daemon || c.Store.QueueType != "builtin" || c.JobHandlePrefix != "GX" || !c.Syslog {
		t.Errorf("got %+v", c)
	}
	if got := c.Source("job_retries"); got != (Source{Kind: SourceFile, Name: p, Line: 3}) {
		t.Errorf("job_retries source %v, want %s:3", got, p)
	}
	if len(c.Warnings) != 1 || c.Warnings[0] != p+":10: coredump: accepted and ignored: a Go program dumps core only with GOTRACEBACK=crash (and ulimit -c)" {
		t.Errorf("warnings %q", c.Warnings)
	}

	for _, tc := range []struct{ text, want string }{
		{"--port=abc\n", `$FILE:1: port: want an integer, got "abc"`},
		{"--port=1\n--bogus\n", `$FILE:2: unknown option "--bogus"`},
		{"-p 1 -x\n", `$FILE:1: unknown option "-x"`},
		{"--port=1\nstray\n", `$FILE:2: want --option=value or key=value, got "stray"`},
		{"--port=1\n--port=2\n", "$FILE:2: port: given more than once (first on line 1)"},
		{"--daemon=maybe\n", `$FILE:1: daemon: want true or false, got "maybe"`},
		{"--port\n", "$FILE:1: port: needs a value"},
		{"--config-file=/x\n", "$FILE:1: config_file: cannot be set inside the config file"},
		{"port=1\nbogus=2\n", `$FILE:2: want --option=value or key=value, got "bogus=2"`},
	} {
		p := writeFile(t, "gearmand.conf", tc.text)
		_, err := loadWithDefault(t, []string{"--config-file", p}, "/nonexistent/gearmand.conf")
		if want := strings.ReplaceAll(tc.want, "$FILE", p); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", tc.text, err, want)
		}
	}
}

// TestDefaultConfigFile: gearmand's default file is read when it exists;
// its absence is no error, even when named; another missing file is.
func TestDefaultConfigFile(t *testing.T) {
	t.Parallel()
	def := writeFile(t, "gearmand.conf", "--port=4998\n")
	c, err := loadWithDefault(t, nil, def)
	if err != nil || c.Port != 4998 || c.ConfigFile != def {
		t.Fatalf("default file present: port %d, file %q, %v", c.Port, c.ConfigFile, err)
	}
	missing := filepath.Join(t.TempDir(), "gearmand.conf")
	for _, args := range [][]string{nil, {"--config-file", missing}} {
		c, err := loadWithDefault(t, args, missing)
		if err != nil || c.Port != DefaultPort || c.ConfigFile != "" {
			t.Errorf("%q, default file absent: port %d, file %q, %v", args, c.Port, c.ConfigFile, err)
		}
	}
	other := filepath.Join(t.TempDir(), "other.conf")
	if _, err := loadWithDefault(t, []string{"--config-file", other}, missing); err == nil ||
		!strings.Contains(err.Error(), "cannot read the config file") {
		t.Errorf("missing --config-file: %v, want an error", err)
	}
	yml := writeFile(t, "gserverd.yaml", "# YAML\nport: 4997\n")
	if c, err := loadWithDefault(t, []string{"--config-file", yml}, missing); err != nil || c.Port != 4997 {
		t.Errorf("YAML file: %v, %v", c, err)
	}
	big := writeFile(t, "big.conf", "--port=1 "+strings.Repeat("#", maxConfigFile))
	if _, err := loadWithDefault(t, []string{"--config-file", big}, missing); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestIsGearmandFormat(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"--port=1\n": true, "# c\n\n  -p 1\n": true, "port=1\n": true, "port = 1\n": true,
		"port: 1\n": false, "- a\n": false, "---\nport: 1\n": false, "": false, "# only\n": false,
		"listen: [\"::1\"]\n": false,
	} {
		if got := isGearmandFormat([]byte(text)); got != want {
			t.Errorf("isGearmandFormat(%q) = %v, want %v", text, got, want)
		}
	}
}

// FuzzGearmandConfigFile: any text either loads or fails with an error
// naming the file; it never panics.
func FuzzGearmandConfigFile(f *testing.F) {
	for _, s := range []string{"--port=4730 -vvv\n-d\n", "port=1\n# c\n--listen a -L b\n", "-p\n", "--syslog --coredump\nqueue-type = builtin\n", "-- -\n=\n"} {
		f.Add(s)
	}
	keys := serverKeys()
	f.Fuzz(func(t *testing.T, text string) {
		fv, err := readGearmandFile("f.conf", []byte(text), keys)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for k := range fv.vals {
			if strings.Contains(k, "-") {
				t.Fatalf("key %q not normalised", k)
			}
		}
	})
}
