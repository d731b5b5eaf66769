// Package debtest installs the Debian package that `make deb` builds on
// this machine with dpkg, serves a job through gserverd started from the
// installed files, purges the package and checks that nothing of it is
// left but the system users. It also runs lintian on the package. It is a
// test-only package.
//
// The test changes the machine (dpkg -i, users), so it runs only as root
// with dpkg present, and it purges the package at cleanup even when it
// fails. It leaves the system's gearmand, and gearman-job-server's files,
// alone: the package installs beside gearman-job-server.
package debtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestMain(m *testing.M) {
	os.Exit(testpeer.Main(m))
}

const (
	pkg = "gworkerd"
	// cmdTimeout bounds one dpkg, lintian or peer command. dpkg runs
	// man-db's trigger (mandb), which takes over a minute on a loaded
	// machine.
	cmdTimeout = 10 * time.Minute
	// wantsGJS is the link that enables gearman-job-server at boot.
	wantsGJS = "/etc/systemd/system/multi-user.target.wants/gearman-job-server.service"
	wantsGS  = "/etc/systemd/system/multi-user.target.wants/gserverd.service"
)

// run runs a command to its end and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// debFile returns the package to test: $GWORKERD_DEB (make test builds
// it), else one built now into a temporary directory.
func debFile(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GWORKERD_DEB"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("GWORKERD_DEB: %v (run make deb)", err)
		}
		return p
	}
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mustRun(t, "sh", filepath.Join(root, "deploy/debian/build.sh"), dir)
	return filepath.Join(dir, pkg+".deb")
}

// requireDpkgRoot skips unless dpkg is here (under
// GWORKERD_REQUIRE_PEERS=1 its absence fails) and the test runs as root.
func requireDpkgRoot(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dpkg"); err != nil {
		testpeer.Missing(t, "dpkg", "dpkg")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: installing the package needs root (CI runs as root)")
	}
}

// installed reports whether the package is installed (or half so).
func installed(name string) bool {
	out, err := run("dpkg-query", "-W", "-f=${Status}", name)
	return err == nil && !strings.Contains(out, "not-installed") && strings.TrimSpace(out) != ""
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// debPaths lists the absolute paths the package ships.
func debPaths(t *testing.T, deb string) []string {
	t.Helper()
	var paths []string
	out := mustRun(t, "dpkg-deb", "-c", deb)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		if p != "" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		t.Fatalf("dpkg-deb -c %s lists nothing:\n%s", deb, out)
	}
	return paths
}

// scanRoots are where the package, its scripts or its daemons could leave
// something, each with how deep to look; scan lists what they hold whose
// name is one of the package's. (Not deeper: other tests on the machine
// make tables and keys named after gserverd.)
var scanRoots = []struct {
	dir   string
	depth int
}{
	{"/etc", 3}, {"/run", 1}, {"/usr/bin", 1}, {"/usr/sbin", 1}, {"/usr/lib/systemd", 3},
	{"/usr/share/doc", 1}, {"/usr/share/man", 2}, {"/usr/share/lintian", 2},
	{"/var/lib", 1}, {"/var/lib/systemd", 3}, {"/var/lib/dpkg/info", 1}, {"/var/log", 1},
}

func scan() map[string]bool {
	found := map[string]bool{}
	for _, root := range scanRoots {
		depth0 := strings.Count(root.dir, "/")
		_ = filepath.WalkDir(root.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			base := d.Name()
			if strings.Contains(base, "gserverd") || strings.Contains(base, "gworkerd") || strings.HasPrefix(base, "gclient") {
				found[p] = true
			}
			if d.IsDir() && strings.Count(p, "/")-depth0 >= root.depth {
				return filepath.SkipDir
			}
			return nil
		})
	}
	return found
}

// lockMachine serialises the tests of this package across processes (two
// runs of make test on one host would dpkg -i at once).
func lockMachine(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "gworkerd-debtest.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// The package installs with dpkg -i beside gearman-job-server, gserverd
// serves a job from the installed binary, config, user and directories
// (gearadmin and the gearman CLI as peers), man pages are in place, and a
// purge leaves nothing of the package but the system users.
func TestInstallServePurge(t *testing.T) {
	t.Parallel() // beside TestLintian
	requireDpkgRoot(t)
	gearman := testpeer.Require(t, "gearman")
	gearadmin := testpeer.Require(t, "gearadmin")
	deb := debFile(t)
	lockMachine(t)
	if installed(pkg) {
		t.Skipf("SKIP: the %s package is already installed here; the test would purge it", pkg)
	}
	paths := debPaths(t, deb)
	existedBefore := map[string]bool{}
	for _, p := range paths {
		existedBefore[p] = exists(p)
	}
	// The purge deletes the queue and the logs: never those of a gserverd
	// that is not the package's (root's default data directory is
	// /var/lib/gserverd).
	for _, d := range []string{"/var/lib/gserverd", "/var/log/gserverd", "/var/log/gworkerd"} {
		if existedBefore[d] {
			t.Fatalf("%s exists before the install; the purge would delete it: move it away first", d)
		}
	}
	before := scan()
	gjsInstalled := installed("gearman-job-server")
	var gjsVerify string
	if gjsInstalled {
		gjsVerify, _ = run("dpkg", "--verify", "gearman-job-server")
	}
	gjsEnabled := exists(wantsGJS)
	_, gearmanUserErr := user.Lookup("gearman")

	t.Cleanup(func() {
		if installed(pkg) {
			if out, err := run("dpkg", "--purge", pkg); err != nil {
				t.Errorf("cleanup: dpkg --purge %s: %v\n%s", pkg, err, out)
			}
		}
	})
	out := mustRun(t, "dpkg", "-i", deb)
	t.Logf("dpkg -i:\n%s", out)
	// Again, as an upgrade does (postinst configure with the old version).
	out = mustRun(t, "dpkg", "-i", deb)
	t.Logf("dpkg -i again:\n%s", out)

	// The users and the directories postinst owns.
	gu, err := user.Lookup("gearman")
	if err != nil {
		t.Fatalf("postinst made no gearman user: %v", err)
	}
	if _, err := user.Lookup("gworkerd"); err != nil {
		t.Fatalf("postinst made no gworkerd user: %v", err)
	}
	uid, _ := strconv.Atoi(gu.Uid)
	gid, _ := strconv.Atoi(gu.Gid)
	for _, d := range []string{"/var/lib/gserverd", "/var/log/gserverd"} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != uid || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: uid %d mode %v, want uid %d (gearman) mode 0750", d, sys.Uid, st.Mode().Perm(), uid)
		}
	}
	// Beside gearman-job-server: both serve port 4730 by default, so
	// gserverd is enabled only when gearman-job-server is not.
	if got := exists(wantsGS); got == gjsEnabled {
		t.Errorf("gserverd.service enabled = %v with gearman-job-server enabled = %v; want exactly one", got, gjsEnabled)
	}
	checkManPages(t)
	// The installed units (their paths rewritten for the package) verify.
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := run(sa, "verify", "/usr/lib/systemd/system/gserverd.service", "/usr/lib/systemd/system/gworkerd.service"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify of the installed units: %v\n%s", err, out)
		}
	}

	// gserverd from the installed binary and config, as the gearman user
	// (systemd may not run here): only the ports move aside.
	port := testpeer.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("/usr/sbin/gserverd", "--config-file", "/etc/gserverd/gserverd.yaml",
		"-p", strconv.Itoa(port), "--http-listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	srv := testpeer.Start(t, cmd)
	waitFor(t, "gserverd listening on "+addr, func() bool {
		select {
		case <-srv.Done():
			t.Fatalf("installed gserverd exited: %s", srv.Output())
		default:
		}
		_, err := run(gearadmin, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "--server-version")
		return err == nil
	})
	if v := mustRun(t, gearadmin, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "--server-version"); strings.TrimSpace(v) == "" {
		t.Errorf("gearadmin --server-version printed nothing")
	}
	fn := "debtest_upper"
	worker := testpeer.Start(t, exec.Command(gearman, "-w", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-f", fn, "--", "tr", "a-z", "A-Z"))
	waitFor(t, "a worker for "+fn, func() bool {
		select {
		case <-worker.Done():
			t.Fatalf("gearman -w exited: %s", worker.Output())
		default:
		}
		st := mustRun(t, gearadmin, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "--status")
		for _, line := range strings.Split(st, "\n") {
			if f := strings.Split(line, "\t"); len(f) == 4 && f[0] == fn && f[3] != "0" {
				return true
			}
		}
		return false
	})
	if got := mustRun(t, gearman, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-f", fn, "hello deb"); strings.TrimSpace(got) != "HELLO DEB" {
		t.Errorf("job through the installed gserverd = %q, want %q", got, "HELLO DEB")
	}
	payload := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(payload, []byte("from gclient"), 0o644); err != nil {
		t.Fatal(err)
	}
	// gclient prints the job's handle on stderr, then the result.
	if got := mustRun(t, "/usr/bin/gclient", "--servers", addr, "submit", fn, payload, "--wait"); !strings.HasSuffix(strings.TrimSpace(got), "\nFROM GCLIENT") {
		t.Errorf("installed gclient submit --wait = %q, want the result %q", got, "FROM GCLIENT")
	}
	worker.Stop()
	srv.Stop()
	if st, err := os.Stat("/var/log/gserverd/gserverd.log"); err != nil || st.Size() == 0 {
		t.Errorf("the installed gserverd wrote no log in /var/log/gserverd: %v", err)
	}
	if ents, err := os.ReadDir("/var/lib/gserverd"); err != nil || len(ents) == 0 {
		t.Errorf("the installed gserverd kept no store in /var/lib/gserverd: %v", err)
	}

	out = mustRun(t, "dpkg", "--purge", pkg)
	t.Logf("dpkg --purge:\n%s", out)
	if installed(pkg) {
		t.Fatalf("%s is still installed after dpkg --purge", pkg)
	}
	// Nothing of the package is left: none of its paths that did not
	// exist before, no state or log, no enablement link or state of the
	// units, no maintainer scripts.
	var left []string
	for _, p := range paths {
		if !existedBefore[p] && exists(p) {
			left = append(left, p)
		}
	}
	for p := range scan() {
		if !before[p] && !slices.Contains(left, p) {
			left = append(left, p)
		}
	}
	infos, _ := filepath.Glob("/var/lib/dpkg/info/" + pkg + ".*")
	left = append(left, infos...)
	if len(left) > 0 {
		sort.Strings(left)
		t.Errorf("left after dpkg --purge %s:\n%s", pkg, strings.Join(left, "\n"))
	}
	// What is kept: the system users (Debian practice), and the gearman
	// user in any case when gearman-job-server uses it.
	if _, err := user.Lookup("gworkerd"); err != nil {
		t.Errorf("the gworkerd user went with the purge: %v", err)
	}
	if _, err := user.Lookup("gearman"); err != nil && gearmanUserErr == nil {
		t.Errorf("the gearman user, there before the install, went with the purge: %v", err)
	}
	// gearman-job-server, beside it, is untouched.
	if gjsInstalled {
		if got, _ := run("dpkg", "--verify", "gearman-job-server"); got != gjsVerify {
			t.Errorf("dpkg --verify gearman-job-server before:\n%s\nafter:\n%s", gjsVerify, got)
		}
		if exists(wantsGJS) != gjsEnabled {
			t.Errorf("gearman-job-server.service enablement changed: %v, was %v", exists(wantsGJS), gjsEnabled)
		}
	}
}

// checkManPages: each command has its page, made from its --help and its
// subcommands' (a flag of a subcommand's help is in it), and man finds
// gserverd's.
func checkManPages(t *testing.T) {
	t.Helper()
	for page, want := range map[string]string{
		"/usr/share/man/man8/gserverd.8.gz": `\-\-from\-gearmand\-sqlite`, // gserverd queue --help
		"/usr/share/man/man8/gworkerd.8.gz": `\-\-foreground`,             // gworkerd start --help
		"/usr/share/man/man1/gclient.1.gz":  `\-\-servers`,
	} {
		f, err := os.Open(page)
		if err != nil {
			t.Errorf("man page: %v", err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			t.Errorf("%s: %v", page, err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(zr, 1<<20))
		f.Close()
		if err != nil || !bytes.HasPrefix(b, []byte(".TH ")) || !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s: %v; want a page starting .TH holding %q, got:\n%.300s", page, err, want, b)
		}
	}
	man, err := exec.LookPath("man")
	if err != nil {
		return // man-db is optional; the page files are checked above
	}
	out, err := run(man, "-w", "gserverd")
	if err != nil || strings.TrimSpace(out) != "/usr/share/man/man8/gserverd.8.gz" {
		t.Errorf("man -w gserverd = %q, %v", out, err)
	}
}

// waitFor polls cond until it holds, or fails t after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling peers that cannot signal us
	}
}

// lintian finds nothing in the package but what its overrides justify
// (deploy/debian/lintian-overrides, shipped in the package).
func TestLintian(t *testing.T) {
	t.Parallel()
	lintian, err := exec.LookPath("lintian")
	if err != nil {
		testpeer.Missing(t, "lintian", "lintian")
	}
	deb := debFile(t)
	out, err := run(lintian, "--fail-on", "error,warning", "--display-level", ">=info", deb)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	var tags []string
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 2 && line[1] == ':' && strings.ContainsAny(line[:1], "EWI") {
			tags = append(tags, line)
		}
	}
	if err != nil || len(tags) > 0 {
		t.Errorf("lintian %s: %v\n%s", filepath.Base(deb), err, out)
	}
}
