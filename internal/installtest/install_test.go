// Package installtest runs the Install section of README.md, so that the
// README and the install cannot drift apart. It is a test-only package.
//
// The section's fenced blocks tagged install-source, install-run,
// install-byhand and install-handlers (```sh install-source) are run
// line by line with sh, in the module's directory, each line's exit
// status checked and, where its comment says "prints X", its standard
// output checked to hold X. Nothing is run on the machine itself: every
// line runs against a temporary root.
//   - DESTDIR is set to the temporary root, which `make install` honours,
//     and BIN to a temporary build directory, which `make build` honours;
//   - every absolute path of a line is moved into the temporary root
//     (`sudo install ... /etc/gworkerd/jobs/` writes into it);
//   - PATH starts with shims (shim_test.go): sudo runs its command as it
//     is, systemd-sysusers and systemd-tmpfiles run the real programs
//     with --root, so the README's users are made in the temporary
//     root's /etc/passwd and never on the machine (nothing to remove
//     afterwards), and systemctl goes to a fake systemd
//     (systemd_test.go) that starts the installed units from the
//     temporary root, as their users;
//   - then come the installed programs, so that `gworkerd` and `gclient`
//     are the installed ones; GWORKERD_CONFIG names the installed
//     config (the default path it replaces is checked to be where the
//     install put it) and GCLIENT_SERVERS the installed gserverd;
//   - every program a line runs must be one the test knows to keep
//     inside the temporary root (allowedPrograms); a line with another
//     fails the test rather than run.
//
// Between install-source and install-run the test moves the installed
// configs' paths into the temporary root and their ports to free ones
// (rewriteConfigs). The Go download and git clone lines are not run (no
// network); the install-deb block is checked by TestDebMatchesSourceInstall
// (the package `make deb` builds has the files `make install PREFIX=/usr`
// installs), and internal/debtest installs that package on the machine.
package installtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestMain(m *testing.M) {
	if code, ok := runShim(filepath.Base(os.Args[0]), os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(testpeer.Main(m))
}

// The tagged blocks, in the order the README gives them.
const (
	blockDeb      = "install-deb"
	blockSource   = "install-source"
	blockRun      = "install-run"
	blockByHand   = "install-byhand"
	blockHandlers = "install-handlers"
)

// Where make install puts the programs with its default PREFIX, as the
// README's table says.
const (
	sbinDir = "usr/local/sbin"
	binDir  = "usr/local/bin"
)

// allowedPrograms are the programs a README line may run (after sudo),
// each with a check of its arguments: all of them act only on the
// temporary root, on files the module holds, or on the daemons started
// from the temporary root.
func allowedPrograms() map[string]func(args []string) error {
	anyArgs := func([]string) error { return nil }
	return map[string]func([]string) error{
		"make": func(args []string) error {
			for _, a := range args {
				if a != "build" && a != "install" && a != "deb" {
					return fmt.Errorf("make %s: the test runs make build, install and deb only", a)
				}
			}
			return nil
		},
		"systemd-sysusers": anyArgs, "systemd-tmpfiles": anyArgs, "systemctl": anyArgs,
		"gserverd": anyArgs, "gworkerd": anyArgs, "gclient": anyArgs, "echo": anyArgs, "install": anyArgs,
	}
}

// lineRunner runs README lines against the temporary root.
type lineRunner struct {
	dir  string // the module's directory
	root string // the temporary root
	env  []string
}

// run runs the commands of one block; each must succeed and print what
// its comment says it prints.
func (r *lineRunner) run(t *testing.T, tag string, cmds []command) {
	t.Helper()
	if len(cmds) == 0 {
		t.Fatalf("README: the Install section has no block %s", tag)
	}
	allowed := allowedPrograms()
	for _, c := range cmds {
		scs, err := simpleCommands(c.text)
		if err != nil {
			t.Fatalf("README line %d (%s): %v", c.line, tag, err)
		}
		isMake := false
		for _, words := range scs {
			if words[0] == "sudo" && len(words) > 1 {
				words = words[1:]
			}
			check, ok := allowed[words[0]]
			if !ok {
				t.Fatalf("README line %d (%s): %q runs %s, which this test does not know to keep inside its temporary root; teach allowedPrograms", c.line, tag, c.text, words[0])
			}
			if err := check(words[1:]); err != nil {
				t.Fatalf("README line %d (%s): %v", c.line, tag, err)
			}
			isMake = isMake || words[0] == "make"
		}
		timeout := 2 * time.Minute
		if isMake {
			timeout = 10 * time.Minute // a first build compiles every dependency
		}
		line := inRoot(c.text, r.root)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		cmd := exec.CommandContext(ctx, "sh", "-e", "-c", line)
		cmd.Dir, cmd.Env = r.dir, r.env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// A daemon the line starts must not keep the line's output open.
		cmd.WaitDelay = 10 * time.Second
		start := time.Now()
		err = cmd.Run()
		cancel()
		t.Logf("README line %d (%s): %s [%v]\n%s%s", c.line, tag, line, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
		if err != nil {
			t.Fatalf("README line %d (%s): %s: %v\nstdout:\n%s\nstderr:\n%s", c.line, tag, c.text, err, stdout.String(), stderr.String())
		}
		if c.prints != "" && !strings.Contains(stdout.String(), c.prints) {
			t.Errorf("README line %d (%s): %s printed %q, want it to hold %q (the line's comment)", c.line, tag, c.text, stdout.String(), c.prints)
		}
	}
}

// lineEnv is the environment of the README lines: the test's own, less
// the settings of the programs and of make that it may carry (make test
// sets GWORKERD_BIN; gworkerd reads GWORKERD_* as config), plus the
// temporary root's.
func lineEnv(root, bin, shims string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "DESTDIR", k == "PREFIX", k == "BIN", k == "VERSION", k == "MFLAGS",
			strings.HasPrefix(k, "MAKE"), strings.HasPrefix(k, "GWORKERD_"), strings.HasPrefix(k, "GSERVERD_"),
			strings.HasPrefix(k, "GCLIENT_"), strings.HasPrefix(k, "GEARMAN"), strings.HasPrefix(k, "INSTALLTEST_"):
			continue
		}
		env = append(env, kv)
	}
	path := os.Getenv("PATH")
	if root != "" {
		path = filepath.Join(root, sbinDir) + ":" + filepath.Join(root, binDir) + ":" + path
	}
	if shims != "" {
		path = shims + ":" + path
	}
	env = append(env, "PATH="+path, "BIN="+bin)
	if root != "" {
		env = append(env, "DESTDIR="+root, envRoot+"="+root)
	}
	// make test's build: with its version, make build finds the copied
	// binaries up to date.
	if v := os.Getenv("GWORKERD_VERSION"); v != "" {
		env = append(env, "VERSION="+v)
	}
	return append(env, extra...)
}

// newBin returns a build directory for the README's make build,
// holding make test's binaries when there are (make build then links
// nothing).
func newBin(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	from := os.Getenv("GWORKERD_BIN")
	if from == "" {
		return bin
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, e.Name()), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readme(t *testing.T, mod string) (map[string][]command, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mod, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, section, err := installBlocks(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return blocks, section
}

func lookPath(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testpeer.Missing(t, name, pkg)
	}
	return p
}

// The README's Install section, run: make build and make install into a
// temporary root, the users and directories made there, the installed
// gserverd and gworkerd started from it by their units as their users, a
// job through the installed gclient, gworkerd by hand, and a job
// handler added.
func TestInstallFromSource(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the README's systemd-tmpfiles line gives directories to users, and its units run as them: both need root (CI runs as root)")
	}
	lookPath(t, "make", "make")
	sysusers := lookPath(t, "systemd-sysusers", "systemd")
	tmpfiles := lookPath(t, "systemd-tmpfiles", "systemd")
	systemctl := lookPath(t, "systemctl", "systemd")
	mod := moduleRoot(t)
	blocks, section := readme(t, mod)
	checkGoVersion(t, mod, section)

	base := t.TempDir()
	// The units' users must reach the root's files.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(base, "root")
	shims := filepath.Join(base, "shims")
	for _, d := range []string{root, shims} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	installShims(t, shims)
	bin := newBin(t, base)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testpeer.FreePort(t)))
	config := filepath.Join(root, "etc/gworkerd/gworkerd.yaml")
	sd := startFakeSystemd(t, root, base, systemctl, map[string]func(context.Context) error{
		"gserverd.service": func(ctx context.Context) error {
			return poll(ctx, func() error {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
		},
		// Its control socket answers status once its signal handlers are
		// in place (it listens before): a reload right after the start
		// would otherwise end it.
		"gworkerd.service": func(ctx context.Context) error {
			return poll(ctx, func() error {
				cmd := exec.CommandContext(ctx, filepath.Join(root, sbinDir, "gworkerd"), "status", "-c", config)
				cmd.Env = lineEnv("", "", "")
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("gworkerd status: %w: %s", err, out)
				}
				return nil
			})
		},
	})
	r := &lineRunner{dir: mod, root: root, env: lineEnv(root, bin, shims,
		"GWORKERD_CONFIG="+config, "GCLIENT_SERVERS="+addr,
		envSock+"="+sd.sock(), envSysusers+"="+sysusers, envTmpfiles+"="+tmpfiles)}

	r.run(t, blockSource, blocks[blockSource])
	checkInstalled(t, mod, root, bin)
	rewriteConfigs(t, root, addr)

	r.run(t, blockRun, blocks[blockRun])
	for _, u := range []struct{ unit, user string }{{"gserverd.service", "gearman"}, {"gworkerd.service", "gworkerd"}} {
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", u.unit)); err != nil {
			t.Errorf("%s is not enabled in the temporary root: %v", u.unit, err)
		}
		a, err := sd.lookup("passwd", u.user)
		if err != nil {
			t.Fatal(err)
		}
		if uid, err := procUID(sd.mainPID(u.unit)); err != nil || uid != a.uid {
			t.Errorf("%s runs as uid %d (%v), want %d (%s)", u.unit, uid, err, a.uid, u.user)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(root, "var/lib/gserverd")); err != nil || len(ents) == 0 {
		t.Errorf("the installed gserverd keeps no store in /var/lib/gserverd: %v", err)
	}
	if st, err := os.Stat(filepath.Join(root, "var/log/gserverd/gserverd.log")); err != nil || st.Size() == 0 {
		t.Errorf("the installed gserverd writes no log in /var/log/gserverd: %v", err)
	}

	// gworkerd by hand detaches: stop it at the end if a line failed
	// before the README's gworkerd stop.
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(root, "run/gworkerd/gworkerd.pid")); err != nil {
			return
		}
		if sd.mainPID("gworkerd.service") != 0 {
			return // the unit's, stopped by the fake systemd
		}
		cmd := exec.Command(filepath.Join(root, sbinDir, "gworkerd"), "stop", "-c", config)
		cmd.Env = lineEnv("", "", "")
		out, err := cmd.CombinedOutput()
		t.Logf("cleanup: gworkerd stop: %v %s", err, out)
	})
	r.run(t, blockByHand, blocks[blockByHand])
	r.run(t, blockHandlers, blocks[blockHandlers])
}

// checkGoVersion: the section names the Go release go.mod requires.
func checkGoVersion(t *testing.T, mod, section string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "Go " + string(m[1]) + " or newer"; !strings.Contains(section, want) {
		t.Errorf("README's Install section does not say %q (go.mod: go %s)", want, m[1])
	}
}

// checkInstalled checks what the install-source block installed.
func checkInstalled(t *testing.T, mod, root, bin string) {
	t.Helper()
	for _, p := range []struct{ name, dir string }{{"gserverd", sbinDir}, {"gworkerd", sbinDir}, {"gclient", binDir}} {
		path := filepath.Join(root, p.dir, p.name)
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v (mode %v), want an executable", path, err, st)
			continue
		}
		got := run(t, path, "--version")
		if want := run(t, filepath.Join(bin, p.name), "--version"); got != want || !strings.HasPrefix(got, p.name+" ") {
			t.Errorf("installed %s --version = %q, want %q", p.name, got, want)
		}
	}
	if out := run(t, filepath.Join(root, sbinDir, "gserverd"), "--help"); !strings.Contains(out, "Usage: gserverd") {
		t.Errorf("installed gserverd --help:\n%s", out)
	}
	// A bare `gworkerd start` reads the config where the install put it.
	help := run(t, filepath.Join(root, sbinDir, "gworkerd"), "--help")
	m := regexp.MustCompile(`--config file .*\(default "(/[^"]+)"\)`).FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("gworkerd --help names no default config:\n%s", help)
	}
	for dst, src := range map[string]string{
		m[1]:                          "deploy/gworkerd.yaml",
		"/etc/gserverd/gserverd.yaml": "deploy/gserverd.yaml",
		"/etc/logrotate.d/gworkerd":   "deploy/logrotate",
	} {
		got, err := os.ReadFile(filepath.Join(root, dst))
		want, err2 := os.ReadFile(filepath.Join(mod, src))
		if err != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Errorf("installed %s is not %s: %v %v", dst, src, err, err2)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "etc/gworkerd/jobs")); err != nil || !st.IsDir() {
		t.Errorf("no job directory /etc/gworkerd/jobs: %v", err)
	}
	for _, page := range []string{"man8/gserverd.8", "man8/gworkerd.8", "man1/gclient.1"} {
		b, err := os.ReadFile(filepath.Join(root, "usr/local/share/man", page))
		if err != nil || !bytes.HasPrefix(b, []byte(".TH ")) {
			t.Errorf("man page %s: %v %.40q", page, err, b)
		}
	}
	// The units name the installed programs.
	for _, u := range []string{"gserverd.service", "gworkerd.service"} {
		b, err := os.ReadFile(filepath.Join(root, "usr/local/lib/systemd/system", u))
		if err != nil {
			t.Errorf("unit: %v", err)
			continue
		}
		for _, m := range regexp.MustCompile(`(?m)^ExecStart(?:Pre)?=(\S+)`).FindAllSubmatch(b, -1) {
			if _, err := os.Stat(filepath.Join(root, string(m[1]))); err != nil {
				t.Errorf("%s runs %s, which the install did not put there: %v", u, m[1], err)
			}
		}
	}
	// The users (in the temporary root's /etc/passwd) and their
	// directories.
	ids := map[string]uint32{}
	for _, line := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		if f := strings.Split(line, ":"); len(f) > 3 {
			id, _ := strconv.ParseUint(f[2], 10, 32)
			ids[f[0]] = uint32(id)
		}
	}
	for _, d := range []struct{ dir, user string }{
		{"var/lib/gserverd", "gearman"}, {"var/log/gserverd", "gearman"}, {"var/log/gworkerd", "gworkerd"},
	} {
		uid, ok := ids[d.user]
		if !ok {
			t.Errorf("no user %s in the temporary root's /etc/passwd", d.user)
			continue
		}
		st, err := os.Stat(filepath.Join(root, d.dir))
		if err != nil {
			t.Errorf("/%s: %v", d.dir, err)
			continue
		}
		if owner := st.Sys().(*syscall.Stat_t).Uid; owner != uid || st.Mode().Perm() != 0o750 {
			t.Errorf("/%s: uid %d mode %v, want %d (%s) 0750", d.dir, owner, st.Mode().Perm(), uid, d.user)
		}
	}
}

// rewriteConfigs moves the installed configs' paths into the temporary
// root and their servers to addr (the HTTP endpoints to free ports).
func rewriteConfigs(t *testing.T, root, addr string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		file  string
		edits [][2]string // regexp, replacement; each must match
	}{
		{"etc/gserverd/gserverd.yaml", [][2]string{{`(?m)^port: 4730$`, "port: " + port}, {`$`, "\nhttp_listen: 127.0.0.1:0\n"}}},
		{"etc/gworkerd/gworkerd.yaml", [][2]string{{`127\.0\.0\.1:4730`, addr}, {`(?m)^http_listen: 127\.0\.0\.1:4732$`, "http_listen: 127.0.0.1:0"}}},
	} {
		path := filepath.Join(root, c.file)
		s := readFile(t, path)
		for _, e := range c.edits {
			re := regexp.MustCompile(e[0])
			if !re.MatchString(s) {
				t.Fatalf("%s: nothing matches %s: the test's rewrite needs updating", c.file, e[0])
			}
			s = re.ReplaceAllLiteralString(s, e[1])
		}
		var out strings.Builder
		system := regexp.MustCompile(`(^|[\s\[,])(/(?:etc|run|var)/)`)
		for _, line := range strings.SplitAfter(s, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") {
				line = system.ReplaceAllString(line, "${1}"+root+"${2}")
			}
			out.WriteString(line)
		}
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s for the test:\n%s", c.file, out.String())
	}
}

// The package `make deb` builds (the install-deb block) holds the files
// that `make install PREFIX=/usr` installs, with the same contents, and
// makes the same users and directories; `sudo apt install` is given the
// file make deb writes.
func TestDebMatchesSourceInstall(t *testing.T) {
	t.Parallel()
	lookPath(t, "make", "make")
	lookPath(t, "dpkg-deb", "dpkg")
	mod := moduleRoot(t)
	blocks, _ := readme(t, mod)
	cmds := blocks[blockDeb]
	if len(cmds) != 2 || cmds[0].text != "make deb" || !strings.HasPrefix(cmds[1].text, "sudo apt install ./") {
		t.Fatalf("README's %s block is %+v; the test knows `make deb` then `sudo apt install ./FILE`", blockDeb, cmds)
	}
	debPath := strings.TrimPrefix(cmds[1].text, "sudo apt install ")
	base := t.TempDir()

	// make deb's own file is the one apt is given.
	dry := exec.Command("make", "-n", "deb")
	dry.Dir, dry.Env = mod, lineEnv("", "", "")
	dry.Env = slices.DeleteFunc(dry.Env, func(kv string) bool { return strings.HasPrefix(kv, "BIN=") })
	out, err := dry.CombinedOutput()
	m := regexp.MustCompile(`deploy/debian/build\.sh (\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("make -n deb: %v\n%s", err, out)
	}
	if want, got := filepath.Join(string(m[1]), "gworkerd.deb"), filepath.Join(mod, debPath); got != want {
		t.Errorf("the README installs %s; make deb writes %s", got, want)
	}

	deb := os.Getenv("GWORKERD_DEB") // make test's make deb
	if deb == "" {
		bin := filepath.Join(base, "debbin")
		r := &lineRunner{dir: mod, env: lineEnv("", bin, "")}
		r.run(t, blockDeb, cmds[:1])
		deb = filepath.Join(bin, "gworkerd.deb")
	}
	debRoot := filepath.Join(base, "deb")
	if out, err := exec.Command("dpkg-deb", "-x", deb, debRoot).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	srcRoot := filepath.Join(base, "src")
	bin := newBin(t, base)
	for _, args := range [][]string{{"build"}, {"install", "PREFIX=/usr"}} {
		cmd := exec.Command("make", append(args, "DESTDIR="+srcRoot)...)
		cmd.Dir, cmd.Env = mod, lineEnv("", bin, "")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	packageOnly := func(rel string) bool {
		return strings.HasPrefix(rel, "usr/share/doc/") || strings.HasPrefix(rel, "usr/share/lintian/")
	}
	debFiles, debDirs := tree(t, debRoot)
	srcFiles, _ := tree(t, srcRoot)
	var tmpfilesDirs, sysusers []string
	for _, line := range strings.Split(readFile(t, filepath.Join(srcRoot, "usr/lib/tmpfiles.d/gworkerd.conf")), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "d" {
			tmpfilesDirs = append(tmpfilesDirs, strings.TrimPrefix(f[1], "/"))
		}
	}
	for _, line := range strings.Split(readFile(t, filepath.Join(srcRoot, "usr/lib/sysusers.d/gworkerd.conf")), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "u" {
			sysusers = append(sysusers, f[1])
		}
	}
	for _, rel := range debFiles {
		if packageOnly(rel) {
			continue
		}
		srcRel := strings.TrimSuffix(rel, ".gz")
		if !slices.Contains(srcFiles, srcRel) {
			t.Errorf("the package has /%s; make install PREFIX=/usr does not install /%s", rel, srcRel)
			continue
		}
		got, want := readFile(t, filepath.Join(srcRoot, srcRel)), readFile(t, filepath.Join(debRoot, rel))
		switch {
		case strings.HasPrefix(rel, "usr/share/man/"):
			want = gunzip(t, want)
			// The .TH line carries each build's version.
			got, want = got[strings.Index(got, "\n"):], want[strings.Index(want, "\n"):]
		case strings.HasPrefix(rel, "usr/lib/systemd/system/"):
			got, want = uncommented(got), uncommented(want)
		case strings.HasPrefix(rel, "usr/bin/"), strings.HasPrefix(rel, "usr/sbin/"):
			name := filepath.Base(rel)
			got, want = run(t, filepath.Join(srcRoot, srcRel), "--version"), run(t, filepath.Join(debRoot, rel), "--version")
			if !strings.HasPrefix(got, name+" ") || !strings.HasPrefix(want, name+" ") {
				t.Errorf("--version of /%s: installed %q, packaged %q", rel, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("/%s differs between make install PREFIX=/usr and the package:\ninstalled:\n%s\npackaged:\n%s", srcRel, got, want)
		}
	}
	for _, rel := range srcFiles {
		if !slices.Contains(debFiles, rel) && !slices.Contains(debFiles, rel+".gz") &&
			rel != "usr/lib/tmpfiles.d/gworkerd.conf" && rel != "usr/lib/sysusers.d/gworkerd.conf" {
			t.Errorf("make install PREFIX=/usr installs /%s, which the package does not", rel)
		}
	}
	// The directories the package makes: the install's, or tmpfiles.d's.
	for _, rel := range debDirs {
		if packageOnly(rel + "/") {
			continue
		}
		if st, err := os.Stat(filepath.Join(srcRoot, rel)); (err != nil || !st.IsDir()) && !slices.Contains(tmpfilesDirs, rel) &&
			!slices.ContainsFunc(debDirs, func(d string) bool { return strings.HasPrefix(d, rel+"/") }) {
			t.Errorf("the package makes /%s; neither make install nor gworkerd.tmpfiles does", rel)
		}
	}
	for _, d := range tmpfilesDirs {
		if !slices.Contains(debDirs, d) {
			t.Errorf("gworkerd.tmpfiles makes /%s, which the package does not", d)
		}
	}
	// The users the package's postinst makes are those of sysusers.d.
	var postinst []string
	for _, m := range regexp.MustCompile(`getent passwd (\w+)`).FindAllStringSubmatch(readFile(t, filepath.Join(mod, "deploy/debian/postinst")), -1) {
		postinst = append(postinst, m[1])
	}
	slices.Sort(postinst)
	slices.Sort(sysusers)
	if len(sysusers) == 0 || !slices.Equal(postinst, sysusers) {
		t.Errorf("users: postinst makes %q, gworkerd.sysusers %q", postinst, sysusers)
	}
}

// tree lists the regular files and the directories under dir, relative.
func tree(t *testing.T, dir string) (files, dirs []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case d.IsDir():
			dirs = append(dirs, rel)
		case d.Type().IsRegular():
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, dirs
}

func uncommented(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func gunzip(t *testing.T, s string) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// run runs a program to its end and returns its trimmed output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// poll calls f until it succeeds or ctx ends.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond): // polling a daemon that cannot signal us
		}
	}
}

// procUID returns the real uid of process pid.
func procUID(pid int) (uint32, error) {
	if pid == 0 {
		return 0, errors.New("not running")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			id, err := strconv.ParseUint(f[0], 10, 32)
			return uint32(id), err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no Uid line", pid)
}
