package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gworkerd/gworkerd/internal/loadgen"
)

// server is one server under test across its incarnations: a scenario
// kills and restarts it with the same arguments (the same data
// directory), and it keeps the current address (a restart takes a new
// kernel-chosen port) and the peak resident memory of every incarnation.
type server struct {
	name string // "gserverd" or "gearmand"
	path string
	args []string

	mu     sync.Mutex    // guards cur, peak, starts, exits
	cur    *loadgen.Proc // nil before the first start
	peak   int64         // highest VmHWM seen, bytes
	starts int
	exits  []string // how incarnations that were not killed by us ended

	wg sync.WaitGroup // the samplers, one per incarnation
}

func newServer(name, path string, args ...string) *server {
	return &server{name: name, path: path, args: args}
}

// start starts a new incarnation and a sampler of its memory that runs
// until it exits.
func (s *server) start(ctx context.Context) error {
	p, err := loadgen.Start(ctx, s.path, s.args...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = p
	s.starts++
	s.mu.Unlock()
	s.wg.Add(1)
	go s.sample(p)
	return nil
}

// sample reads p's peak resident memory every 50ms until it exits.
func (s *server) sample(p *loadgen.Proc) {
	defer s.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.readPeak(p)
		select {
		case <-p.Done():
			return
		case <-t.C:
		}
	}
}

func (s *server) readPeak(p *loadgen.Proc) {
	hwm, err := vmHWM(p.PID)
	if err != nil {
		return // exited
	}
	s.mu.Lock()
	s.peak = max(s.peak, hwm)
	s.mu.Unlock()
}

// addr is the current incarnation's address ("" before the first start).
func (s *server) addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return ""
	}
	return s.cur.Addr
}

func (s *server) proc() *loadgen.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// alive reports whether the current incarnation runs.
func (s *server) alive() bool {
	p := s.proc()
	if p == nil {
		return false
	}
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// died returns a closed channel once the current incarnation has exited.
func (s *server) died() <-chan struct{} {
	if p := s.proc(); p != nil {
		return p.Done()
	}
	c := make(chan struct{})
	close(c)
	return c
}

// kill sends SIGKILL to the current incarnation's process group and
// waits for its exit.
func (s *server) kill() {
	p := s.proc()
	if p == nil {
		return
	}
	s.readPeak(p)
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	<-p.Done()
}

// stop ends the current incarnation gracefully (SIGTERM, SIGKILL after 5s).
func (s *server) stop() {
	if p := s.proc(); p != nil {
		s.readPeak(p)
		p.Stop()
	}
}

// noteExit records how the current incarnation ended when it was not by
// our hand: the telling line of its output (see keyLine).
func (s *server) noteExit() string {
	p := s.proc()
	if p == nil {
		return ""
	}
	out := keyLine(p.Output())
	s.mu.Lock()
	s.exits = append(s.exits, out)
	s.mu.Unlock()
	return out
}

// keyLine picks the line of a server's output that says why it ended: a
// panic, else the first line naming an error or fatal condition or
// starting with the program's name (gserverd's one-line exit reason),
// else the last line; shortened.
func keyLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	pick := lines[len(lines)-1]
	found := false
	for _, l := range lines {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			pick, found = l, true
			break
		}
	}
	if !found {
		for _, l := range lines {
			low := strings.ToLower(l)
			if strings.Contains(low, "error") || strings.Contains(low, "fatal") ||
				strings.HasPrefix(l, "gserverd:") || strings.HasPrefix(l, "gearmand:") {
				pick = l
				break
			}
		}
	}
	pick = strings.TrimSpace(pick)
	if len(pick) > 200 {
		pick = pick[:200] + "..."
	}
	return pick
}

// close stops the server and waits for the samplers.
func (s *server) close() {
	s.stop()
	s.wg.Wait()
}

func (s *server) peakRSS() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// vmHWM returns a process's peak resident memory (VmHWM) in bytes.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("gchaos: peak rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("gchaos: peak rss: bad line %q", sc.Text())
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("gchaos: peak rss: no VmHWM for pid %d", pid)
}
