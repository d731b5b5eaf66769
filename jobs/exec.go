package jobs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/worker"
)

// ExecPrefix starts the file name of every executable job handler.
const ExecPrefix = "job_"

// scriptExts are the extensions stripped from job_<name><ext> to get the
// function name; any other suffix is part of the name.
var scriptExts = []string{".sh", ".bash", ".php", ".py", ".pl", ".rb", ".js", ".lua", ".tcl"}

// Kind says how a found handler file is run.
type Kind int

// Kinds of handler files.
const (
	// KindExec: an executable, run once per job (the executable
	// contract), unless its function sets resident.
	KindExec Kind = iota
	// KindPHP: a PHP file loaded once per handler by the PHP runtime.
	KindPHP
	// KindPython: a Python file loaded once per handler by the Python
	// runtime.
	KindPython
)

func (k Kind) String() string {
	switch k {
	case KindPHP:
		return "php"
	case KindPython:
		return "python"
	}
	return "exec"
}

// Found is one handler file found in a job or worker directory.
type Found struct {
	// Function is the Gearman function name.
	Function string
	// Path is the file.
	Path string
	// Kind says how it runs.
	Kind Kind
	// Callable is what the runtime calls (KindPHP, KindPython):
	// fnc_<name> in a job directory, <Function> in a worker directory.
	Callable string
}

// FunctionName returns the function served by a file named base, and
// whether base names a job handler at all: job_<name> or
// job_<name>.<script extension> (.sh .bash .php .py .pl .rb .js .lua .tcl).
func FunctionName(base string) (string, bool) {
	name, ok := strings.CutPrefix(base, ExecPrefix)
	if !ok {
		return "", false
	}
	for _, ext := range scriptExts {
		if n, ok := strings.CutSuffix(name, ext); ok {
			name = n
			break
		}
	}
	return name, ValidName(name)
}

// classify says how the file job_<fn><ext> at path runs: an executable
// that starts with #! (or has no script extension: a binary) runs per
// job; a .php or .py file that is not such an executable is loaded by
// its runtime (the GearmanDaemon layout: no #!, not executable).
func classify(path string, mode os.FileMode) (Kind, bool) {
	exe := mode&0o111 != 0
	ext := filepath.Ext(path)
	if ext != ".php" && ext != ".py" {
		return KindExec, exe
	}
	if exe && hasShebang(path) {
		return KindExec, true
	}
	if ext == ".php" {
		return KindPHP, true
	}
	return KindPython, true
}

// startError explains a failed start of the program at path: when the
// program exists but its #! interpreter does not, exec says "no such
// file or directory"; the error then names the interpreter.
func startError(path string, err error) error {
	if !errors.Is(err, syscall.ENOENT) {
		return err
	}
	f, oerr := os.Open(path)
	if oerr != nil {
		return err
	}
	defer f.Close()
	line, _ := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return err
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return fmt.Errorf("%s: empty #! line: %w", filepath.Base(path), err)
	}
	if _, serr := os.Stat(fields[0]); serr != nil {
		return fmt.Errorf("%s: interpreter %s not found: %w", filepath.Base(path), fields[0], err)
	}
	return err
}

func hasShebang(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [2]byte
	n, _ := io.ReadFull(f, b[:])
	return n == 2 && string(b[:]) == "#!"
}

// Skipped is a handler file that Discover found but cannot run, and why.
type Skipped struct {
	// Path is the file, as found in its directory.
	Path string
	// Reason says why it is not served and how to fix it.
	Reason string
}

func (s Skipped) String() string { return s.Path + ": " + s.Reason }

// Reasons a handler file is skipped.
const (
	reasonNotExecutable = "not executable (chmod +x, or name it .php/.py to run it resident)"
	reasonNotRegular    = "not a regular file"
)

// Discover lists the handlers job_<name> in dirs, sorted by function:
// executables, and .php and .py files for the runtimes. skipped lists
// job_ files that cannot be run (not executable, or directories), each
// with its reason, so that the caller can report them. A
// function found twice (two files, or two directories) is an error
// naming both paths; a missing directory is an error.
func Discover(dirs ...string) (found []Found, skipped []Skipped, err error) {
	return discover(dirs, func(name string) (string, string, bool) {
		fn, ok := FunctionName(name)
		return fn, "fnc_" + fn, ok
	})
}

// DiscoverWorkerDirs lists the GearmanManager function files of dirs:
// each <Function>.php serves the Gearman function <Function> through the
// PHP runtime, which calls the function prefix+<Function>($job, &$log)
// or the method run of a class prefix+<Function>. As in GearmanManager,
// prefix is part of the PHP names only, never of the Gearman name. Files
// whose name is not a valid function name, and hidden files, are ignored.
func DiscoverWorkerDirs(prefix string, dirs ...string) (found []Found, skipped []Skipped, err error) {
	found, skipped, err = discover(dirs, func(name string) (string, string, bool) {
		base, ok := strings.CutSuffix(name, ".php")
		if !ok || strings.HasPrefix(name, ".") {
			return "", "", false
		}
		return base, prefix + base, ValidName(base)
	})
	for i := range found { // a #! line does not make these executables
		found[i].Kind = KindPHP
		found[i].Callable = prefix + found[i].Function
	}
	return found, skipped, err
}

func discover(dirs []string, name func(string) (fn, callable string, ok bool)) (found []Found, skipped []Skipped, err error) {
	seen := map[string]string{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("jobs: scan job directory: %w", err)
		}
		for _, e := range entries {
			fn, callable, ok := name(e.Name())
			if !ok {
				continue
			}
			path := filepath.Join(dir, e.Name())
			st, err := os.Stat(path) // follows symlinks
			if err != nil {
				skipped = append(skipped, Skipped{Path: path, Reason: err.Error()})
				continue
			}
			if !st.Mode().IsRegular() {
				skipped = append(skipped, Skipped{Path: path, Reason: reasonNotRegular})
				continue
			}
			kind, ok := classify(path, st.Mode())
			if !ok {
				skipped = append(skipped, Skipped{Path: path, Reason: reasonNotExecutable})
				continue
			}
			if prev, dup := seen[fn]; dup {
				return nil, nil, fmt.Errorf("%w: %q by %s and %s", ErrDuplicate, fn, prev, path)
			}
			seen[fn] = path
			f := Found{Function: fn, Path: path, Kind: kind}
			if kind != KindExec {
				f.Callable = callable
			}
			found = append(found, f)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Function < found[j].Function })
	return found, skipped, nil
}

// Executable is a worker.Handler that runs a program once per job.
//
// The contract (see README.md): the workload arrives on stdin; stdout is
// the result; exit 0 completes the job; a non-zero exit fails it, as an
// exception carrying the stderr tail when stderr is not empty (the server
// turns it into a plain failure for clients that did not ask for
// exceptions). Lines written to file descriptor 3 report progress:
// `status N D` becomes WORK_STATUS, `data TEXT` WORK_DATA and
// `warning TEXT` WORK_WARNING. The environment carries GEARMAN_HANDLE,
// GEARMAN_FUNCTION, GEARMAN_UNIQUE and GEARMAN_ATTEMPT. The program runs in
// its own process group, killed whole when the job's context ends (timeout
// or hard shutdown) and after the program exits.
type Executable struct {
	// Path is the program. Required.
	Path string
	// Function is the function name, for logs and errors. Default: the
	// name derived from Path.
	Function string
	// Dir is the working directory. Default: the directory of Path.
	Dir string
	// Env is added to the worker's environment.
	Env []string
	// StderrTail is how many bytes of stderr are kept for the failure
	// message. Default 2048.
	StderrTail int
	// MaxOutput bounds stdout (the result). Default 64 MiB.
	MaxOutput int
	// WaitDelay bounds the wait for the output pipes after the program
	// exits (a background child may keep them open). Default 2s.
	WaitDelay time.Duration
	// Logger receives malformed fd 3 lines. Default: discarded.
	Logger logrus.FieldLogger
}

// ExitError is a non-zero exit of an executable handler.
type ExitError struct {
	Function string
	// Code is the exit status, or -1 when killed by a signal.
	Code   int
	Signal string
	// Stderr is the tail of what the program wrote to stderr.
	Stderr string
}

func (e *ExitError) Error() string {
	how := "exit status " + strconv.Itoa(e.Code)
	if e.Signal != "" {
		how = "killed by " + e.Signal
	}
	if e.Stderr == "" {
		return fmt.Sprintf("job_%s: %s", e.Function, how)
	}
	return fmt.Sprintf("job_%s: %s: %s", e.Function, how, e.Stderr)
}

// ErrOutputTooLarge: the program wrote more than MaxOutput to stdout.
var ErrOutputTooLarge = errors.New("jobs: result larger than the output limit")

// Run runs the program for one job.
func (e *Executable) Run(ctx context.Context, job worker.Job) ([]byte, error) {
	fn := e.Function
	if fn == "" {
		fn, _ = FunctionName(filepath.Base(e.Path))
	}
	tailSize := e.StderrTail
	if tailSize <= 0 {
		tailSize = 2048
	}
	maxOut := e.MaxOutput
	if maxOut <= 0 {
		maxOut = 64 << 20
	}
	waitDelay := e.WaitDelay
	if waitDelay <= 0 {
		waitDelay = 2 * time.Second
	}
	dir := e.Dir
	if dir == "" {
		dir = filepath.Dir(e.Path)
	}
	path, err := filepath.Abs(e.Path)
	if err != nil {
		return nil, err
	}

	// Our own pipes, not exec's copying goroutines: Wait then returns when
	// the program exits, even if a leftover child holds a pipe, and the
	// group kill below closes them.
	var pipes [3][2]*os.File // stdout, stderr, fd 3: read end, write end
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			closePipes(pipes[:])
			return nil, fmt.Errorf("jobs: job_%s: pipe: %w", fn, err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	defer closePipes(pipes[:])

	stdout := &limitedBuffer{max: maxOut}
	stderr := &tailBuffer{max: tailSize}
	cmd := exec.CommandContext(ctx, path)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(job.Payload())
	cmd.Stdout = pipes[0][1]
	cmd.Stderr = pipes[1][1]
	cmd.ExtraFiles = []*os.File{pipes[2][1]}
	cmd.Env = append(append(os.Environ(), e.Env...),
		"GEARMAN_HANDLE="+job.Handle(),
		"GEARMAN_FUNCTION="+job.Function(),
		"GEARMAN_UNIQUE="+job.Unique(),
		"GEARMAN_ATTEMPT="+strconv.Itoa(job.Attempt()),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = waitDelay

	err = cmd.Start()
	for i := range pipes { // the child has its copies
		pipes[i][1].Close()
	}
	if err != nil {
		return nil, worker.Exception(fmt.Errorf("jobs: start job_%s: %w", fn, startError(e.Path, err)))
	}

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // each reader exits at EOF: the program and its group are gone
		defer wg.Done()
		_, _ = io.Copy(stdout, pipes[0][0])
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(stderr, pipes[1][0])
	}()
	go func() {
		defer wg.Done()
		e.readStatus(ctx, job, pipes[2][0], fn)
	}()

	waitErr := cmd.Wait()
	_ = killGroup(cmd) // leftovers of the job die with it
	for i := range pipes {
		// A process that left the group (setsid) may keep a pipe open.
		_ = pipes[i][0].SetReadDeadline(time.Now().Add(waitDelay))
	}
	wg.Wait()

	if ctx.Err() != nil {
		return nil, fmt.Errorf("jobs: job_%s: %w", fn, context.Cause(ctx))
	}
	if stdout.overflow {
		return nil, worker.Permanent(fmt.Errorf("jobs: job_%s: %w (%d bytes)", fn, ErrOutputTooLarge, maxOut))
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		xe := &ExitError{Function: fn, Code: ee.ExitCode(), Stderr: strings.TrimSpace(stderr.String())}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			xe.Signal = ws.Signal().String()
		}
		if xe.Stderr != "" {
			return nil, &execException{xe}
		}
		return nil, xe
	}
	if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return nil, fmt.Errorf("jobs: job_%s: %w", fn, waitErr)
	}
	return stdout.Bytes(), nil
}

// execException is an ExitError reported as WORK_EXCEPTION whose payload
// is the stderr tail alone.
type execException struct{ *ExitError }

func (e *execException) Unwrap() []error {
	return []error{e.ExitError, worker.Exception(errors.New(e.ExitError.Stderr))}
}

// killGroup sends SIGKILL to the program's process group.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// maxStatusLine bounds one fd 3 line.
const maxStatusLine = 1 << 20

// readStatus turns the program's fd 3 lines into WORK_STATUS, WORK_DATA
// and WORK_WARNING packets.
func (e *Executable) readStatus(ctx context.Context, job worker.Job, r io.Reader, fn string) {
	log := e.Logger
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxStatusLine)
	for sc.Scan() {
		line := sc.Text()
		l, err := ParseLine(line)
		if err == nil {
			switch l.Kind {
			case LineStatus:
				err = job.SendStatus(ctx, l.Num, l.Den)
			case LineData:
				err = job.SendData(ctx, l.Data)
			case LineWarning:
				err = job.SendWarning(ctx, l.Data)
			}
		}
		if err != nil && log != nil {
			log.WithFields(logrus.Fields{"function": fn, "job_handle": job.Handle(), "line": line}).
				WithError(err).Warn("fd 3 line ignored")
		}
	}
	if err := sc.Err(); err != nil && log != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		log.WithField("function", fn).WithError(err).Warn("fd 3 read failed")
	}
	_, _ = io.Copy(io.Discard, r) // after an overlong line: keep the pipe drained
}

// LineKind is the kind of a file descriptor 3 line.
type LineKind int

// Kinds of fd 3 lines.
const (
	LineEmpty   LineKind = iota // an empty line, ignored
	LineStatus                  // status N D
	LineData                    // data TEXT
	LineWarning                 // warning TEXT
)

// Line is one parsed fd 3 line.
type Line struct {
	Kind     LineKind
	Num, Den int    // LineStatus
	Data     []byte // LineData, LineWarning: the text after the first space
}

// ErrBadLine: an fd 3 line that is not `status N D`, `data TEXT` or
// `warning TEXT`.
var ErrBadLine = errors.New("jobs: fd 3 line is not `status N D`, `data TEXT` or `warning TEXT`")

// ParseLine parses one fd 3 line (without its newline). N and D are
// non-negative decimal integers that fit in 32 bits.
func ParseLine(line string) (Line, error) {
	line = strings.TrimSuffix(line, "\r")
	verb, rest, _ := strings.Cut(line, " ")
	switch verb {
	case "":
		if rest == "" {
			return Line{Kind: LineEmpty}, nil
		}
	case "status":
		f := strings.Fields(rest)
		if len(f) != 2 {
			break
		}
		num, err1 := strconv.ParseUint(f[0], 10, 31)
		den, err2 := strconv.ParseUint(f[1], 10, 31)
		if err1 != nil || err2 != nil {
			break
		}
		return Line{Kind: LineStatus, Num: int(num), Den: int(den)}, nil
	case "data":
		return Line{Kind: LineData, Data: []byte(rest)}, nil
	case "warning":
		return Line{Kind: LineWarning, Data: []byte(rest)}, nil
	}
	return Line{}, fmt.Errorf("%w: %.80q", ErrBadLine, line)
}

func closePipes(pipes [][2]*os.File) {
	for _, p := range pipes {
		for _, f := range p {
			if f != nil {
				f.Close()
			}
		}
	}
}

// limitedBuffer keeps at most max bytes; past that it discards the rest
// (so that the writer is not blocked) and records the overflow.
type limitedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.overflow || b.Len()+len(p) > b.max {
		b.overflow = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) String() string { return string(b.buf) }
