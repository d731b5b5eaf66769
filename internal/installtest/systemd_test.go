package installtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSystemd answers the README's systemctl lines for the units that
// the install put in the temporary root: enable runs the real
// `systemctl --root` (which only makes links), and start, stop and reload
// are done here as systemd would do them from the unit file: the
// directories of RuntimeDirectory=, StateDirectory= and LogsDirectory=
// made (or given back) to User=, ExecStartPre= then ExecStart= run as
// User= and Group= (looked up in the temporary root's /etc/passwd, which
// the README's systemd-sysusers line wrote), with systemd's bare
// environment and every absolute path of the command moved into the
// temporary root; stop sends KillSignal (SIGTERM) and removes the
// runtime directory; reload runs ExecReload's kill -HUP $MAINPID.
//
// Unlike systemd with Type=simple, start returns only when the unit's
// ready function says the daemon serves, so that the next README line
// does not race it (by hand, lines are seconds apart).
type fakeSystemd struct {
	root      string
	systemctl string                                 // the real one, for enable
	ready     map[string]func(context.Context) error // by unit name
	ln        net.Listener
	wg        sync.WaitGroup // the accept loop

	mu      sync.Mutex // guards running; requests are served one at a time
	running map[string]*unitProcess
}

// unitProcess is the main process of a started unit. Its Wait is owned
// by the goroutine that closes done.
type unitProcess struct {
	unit *unitFile
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// unitFile holds the [Service] settings the fake systemd acts on.
type unitFile struct {
	name                          string
	execStartPre                  [][]string
	execStart, execReload         []string
	user, group                   string
	runtimeDir, stateDir, logsDir string
	timeoutStop                   time.Duration
}

// unitDirs are where systemd looks for units, in its order of precedence.
func unitDirs() []string {
	return []string{"etc/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system"}
}

// startFakeSystemd serves systemctl requests on a socket in dir until the
// test ends, then stops every unit still running.
func startFakeSystemd(t *testing.T, root, dir, systemctl string, ready map[string]func(context.Context) error) *fakeSystemd {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, "systemctl.sock"))
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSystemd{root: root, systemctl: systemctl, ready: ready, ln: ln, running: map[string]*unitProcess{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for name := range s.running {
			if err := s.stopLocked(name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return s
}

func (s *fakeSystemd) sock() string { return s.ln.Addr().String() }

func (s *fakeSystemd) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		var args []string
		var rep systemctlReply
		if err := json.NewDecoder(c).Decode(&args); err != nil {
			rep.Err = err.Error()
		} else {
			out, err := s.handle(args)
			rep.Out = out
			if err != nil {
				rep.Err = err.Error()
			}
		}
		_ = json.NewEncoder(c).Encode(rep)
		c.Close()
	}
}

// handle carries out one systemctl command line.
func (s *fakeSystemd) handle(args []string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no command")
	}
	verb, now := args[0], false
	var units []string
	for _, a := range args[1:] {
		switch {
		case a == "--now" && (verb == "enable" || verb == "disable"):
			now = true
		case strings.HasPrefix(a, "-"):
			return "", fmt.Errorf("systemctl %s: option %s is not emulated", verb, a)
		default:
			if !strings.Contains(a, ".") {
				a += ".service"
			}
			units = append(units, a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out strings.Builder
	switch verb {
	case "daemon-reload":
		if len(units) > 0 {
			return "", errors.New("daemon-reload takes no unit")
		}
		return "", nil // units are read at each start
	case "enable":
		for _, u := range units {
			// systemctl --root makes the [Install] links in the
			// temporary root and needs no running systemd.
			b, err := exec.Command(s.systemctl, "--root="+s.root, "enable", u).CombinedOutput()
			out.Write(b)
			if err != nil {
				return out.String(), fmt.Errorf("systemctl --root enable %s: %w", u, err)
			}
		}
	case "start", "stop", "reload":
		now = true
	default:
		return "", fmt.Errorf("systemctl %s is not emulated", verb)
	}
	if len(units) == 0 {
		return out.String(), fmt.Errorf("systemctl %s: no unit", verb)
	}
	if !now {
		return out.String(), nil
	}
	for _, u := range units {
		var err error
		switch verb {
		case "enable", "start":
			err = s.startLocked(u)
		case "stop":
			err = s.stopLocked(u)
		case "reload":
			err = s.reloadLocked(u)
		}
		if err != nil {
			return out.String(), err
		}
	}
	return out.String(), nil
}

// readUnit reads the unit file of name from the temporary root.
func (s *fakeSystemd) readUnit(name string) (*unitFile, error) {
	var b []byte
	var err error
	for _, d := range unitDirs() {
		if b, err = os.ReadFile(filepath.Join(s.root, d, name)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("unit %s not found in the temporary root: %w", name, err)
	}
	u := &unitFile{name: name, timeoutStop: 90 * time.Second}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = line
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not key=value", name, line)
		}
		if section != "[Service]" {
			continue
		}
		if strings.HasPrefix(key, "Exec") && strings.ContainsAny(val[:1], "-@+!:") {
			return nil, fmt.Errorf("%s: %s=%s: the prefix is not emulated", name, key, val)
		}
		switch key {
		case "ExecStartPre":
			u.execStartPre = append(u.execStartPre, strings.Fields(val))
		case "ExecStart":
			u.execStart = strings.Fields(val)
		case "ExecReload":
			u.execReload = strings.Fields(val)
		case "User":
			u.user = val
		case "Group":
			u.group = val
		case "RuntimeDirectory":
			u.runtimeDir = val
		case "StateDirectory":
			u.stateDir = val
		case "LogsDirectory":
			u.logsDir = val
		case "TimeoutStopSec":
			d, err := time.ParseDuration(val)
			if err != nil {
				if n, err2 := strconv.Atoi(val); err2 == nil {
					d, err = time.Duration(n)*time.Second, nil
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s: TimeoutStopSec=%s: %w", name, val, err)
			}
			u.timeoutStop = d
		}
	}
	if len(u.execStart) == 0 {
		return nil, fmt.Errorf("%s has no ExecStart", name)
	}
	return u, sc.Err()
}

// account is a user of the temporary root.
type account struct {
	uid, gid uint32
	home     string
}

// lookup finds name in the temporary root's /etc/passwd (or, for a
// group, /etc/group: then only gid is set).
func (s *fakeSystemd) lookup(file, name string) (account, error) {
	b, err := os.ReadFile(filepath.Join(s.root, "etc", file))
	if err != nil {
		return account{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return account{}, fmt.Errorf("/etc/%s: %s: %w", file, name, err)
		}
		if file == "group" {
			return account{gid: uint32(id)}, nil
		}
		if len(f) < 6 {
			return account{}, fmt.Errorf("/etc/passwd: %s: short line", name)
		}
		gid, err := strconv.ParseUint(f[3], 10, 32)
		if err != nil {
			return account{}, fmt.Errorf("/etc/passwd: %s: %w", name, err)
		}
		return account{uid: uint32(id), gid: uint32(gid), home: f[5]}, nil
	}
	return account{}, fmt.Errorf("no %s in the temporary root's /etc/%s", name, file)
}

// identity returns the credential of the unit's User= and Group=.
func (s *fakeSystemd) identity(u *unitFile) (*syscall.Credential, account, error) {
	if u.user == "" {
		return nil, account{home: "/root"}, nil
	}
	a, err := s.lookup("passwd", u.user)
	if err != nil {
		return nil, a, fmt.Errorf("%s: User=%s: %w", u.name, u.user, err)
	}
	if u.group != "" {
		g, err := s.lookup("group", u.group)
		if err != nil {
			return nil, a, fmt.Errorf("%s: Group=%s: %w", u.name, u.group, err)
		}
		a.gid = g.gid
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}}, a, nil
}

// inRootArgs moves the absolute paths of a command into the root.
func (s *fakeSystemd) inRootArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "/") {
			a = filepath.Join(s.root, a)
		}
		out[i] = a
	}
	return out
}

func (s *fakeSystemd) command(ctx context.Context, args []string, cred *syscall.Credential, a account, user string) *exec.Cmd {
	args = s.inRootArgs(args)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = s.root
	// systemd's environment of a system service.
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	if user != "" {
		cmd.Env = append(cmd.Env, "USER="+user, "LOGNAME="+user, "HOME="+a.home)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	return cmd
}

func (s *fakeSystemd) startLocked(name string) error {
	if p, ok := s.running[name]; ok {
		select {
		case <-p.done:
		default:
			return nil // running already, as systemctl start says nothing
		}
	}
	u, err := s.readUnit(name)
	if err != nil {
		return err
	}
	cred, a, err := s.identity(u)
	if err != nil {
		return err
	}
	// The directories systemd makes, and gives to User= with what they
	// hold (a run by hand as root may have left files there).
	for _, d := range []struct{ base, name string }{{"run", u.runtimeDir}, {"var/lib", u.stateDir}, {"var/log", u.logsDir}} {
		if d.name == "" {
			continue
		}
		dir := filepath.Join(s.root, d.base, d.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if cred != nil {
			err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, int(cred.Uid), int(cred.Gid))
			})
			if err != nil {
				return fmt.Errorf("%s: give %s to %s: %w", name, dir, u.user, err)
			}
		}
	}
	for _, pre := range u.execStartPre {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err := s.command(ctx, pre, cred, a, u.user).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("%s: ExecStartPre %s: %w\n%s", name, strings.Join(pre, " "), err, out)
		}
	}
	// Its lifetime is the unit's: stop ends it.
	cmd := s.command(context.Background(), u.execStart, cred, a, u.user)
	p := &unitProcess{unit: u, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: ExecStart: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.running[name] = p
	ready := s.ready[name]
	if ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ready(ctx) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("%s is not ready: %w\n%s", name, err, p.out.String())
		}
		return nil
	case <-p.done:
		cancel()
		<-errc
		return fmt.Errorf("%s exited at start: %v\n%s", name, cmd.ProcessState, p.out.String())
	}
}

func (s *fakeSystemd) stopLocked(name string) error {
	p, ok := s.running[name]
	if !ok {
		return nil
	}
	delete(s.running, name)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.done:
	case <-time.After(p.unit.timeoutStop):
		err = fmt.Errorf("%s did not stop within TimeoutStopSec (%v)\n%s", name, p.unit.timeoutStop, p.out.String())
	}
	// KillMode=mixed: what is left of the unit is killed.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	if p.unit.runtimeDir != "" {
		if rerr := os.RemoveAll(filepath.Join(s.root, "run", p.unit.runtimeDir)); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (s *fakeSystemd) reloadLocked(name string) error {
	p, ok := s.running[name]
	if !ok {
		return fmt.Errorf("%s is not running", name)
	}
	if strings.Join(p.unit.execReload, " ") != "/bin/kill -HUP $MAINPID" {
		return fmt.Errorf("%s: ExecReload=%s is not emulated", name, strings.Join(p.unit.execReload, " "))
	}
	return p.cmd.Process.Signal(syscall.SIGHUP)
}

// mainPID returns the main pid of a running unit, or 0.
func (s *fakeSystemd) mainPID(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.running[name]; ok {
		return p.cmd.Process.Pid
	}
	return 0
}
