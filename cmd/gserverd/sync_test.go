package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// These tests check the promises of --sync interval and --sync none
// (issue 10): JOB_CREATED goes out only after the job's record has been
// handed to the kernel, so a SIGKILL of gserverd loses nothing that was
// acknowledged, whatever the mode; only a machine crash may.

// pipelineClient pipelines background submits of fn with empty uniques
// on one connection, each with its own payload prefix+N, keeping at most
// window of them unanswered, until the connection fails, or until quiet
// is closed: then it sends no more and returns nil once every submit it
// sent has been answered. It reports each payload whose JOB_CREATED it
// read (replies come in request order); any other reply is an error.
func pipelineClient(addr, fn, prefix string, window int, acked func(string), quiet <-chan struct{}) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	sent := make(chan string, window)
	readErr := make(chan error, 1)
	go func() {
		r := protocol.NewReader(c, protocol.Limits{})
		for data := range sent {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := r.Next()
			if err != nil {
				readErr <- err
				return
			}
			if f.Text || f.Packet.Type != protocol.JobCreated {
				readErr <- fmt.Errorf("got %v (%q), want JOB_CREATED", f.Packet.Type, f.Packet.Args)
				return
			}
			acked(data)
			credits <- struct{}{}
		}
		readErr <- nil
	}()
	var buf []byte
	for i := 0; ; {
		// Write what the window allows in one write(2), so that the
		// server reads many submits at once and batches them.
		buf = buf[:0]
		var batch []string
		select {
		case <-credits:
		case err := <-readErr:
			close(sent)
			return err
		case <-quiet:
			close(sent)
			return <-readErr
		}
		for {
			data := prefix + strconv.Itoa(i)
			i++
			buf = protocol.AppendPacketString(buf, protocol.Req, protocol.SubmitJobBg, fn, "", data)
			batch = append(batch, data)
			more := false
			select {
			case <-credits:
				more = len(batch) < 64
			default:
			}
			if !more {
				break
			}
		}
		for _, d := range batch {
			sent <- d
		}
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(buf); err != nil {
			close(sent)
			_ = c.Close()
			<-readErr
			return err
		}
	}
}

// drainAll works off every job of fn on addr with one pipelined raw
// worker (GRAB_JOB, WORK_COMPLETE) and returns how often each payload ran.
// It stops when a whole window of grabs answers NO_JOB and `status`
// shows nothing left.
func drainAll(t *testing.T, addr, fn string) map[string]int {
	t.Helper()
	const window = 32
	got := map[string]int{}
	w := dialRaw(t, addr)
	w.send(protocol.CanDo, fn)
	var grabs []byte
	for range window {
		grabs = protocol.AppendPacketString(grabs, protocol.Req, protocol.GrabJob)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("draining %s: not empty after 2 minutes (%d jobs done)", fn, len(got))
		}
		_ = w.c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.c.Write(grabs); err != nil {
			t.Fatalf("draining %s: %v", fn, err)
		}
		var done []byte
		jobs := 0
		for range window {
			f, err := w.r.Next()
			if err != nil {
				t.Fatalf("draining %s: %v", fn, err)
			}
			switch {
			case !f.Text && f.Packet.Type == protocol.JobAssign:
				a := f.Packet.Args
				got[string(a[2])]++
				done = protocol.AppendPacket(done, protocol.Req, protocol.WorkComplete, a[0], nil)
				jobs++
			case !f.Text && f.Packet.Type == protocol.NoJob:
			default:
				t.Fatalf("draining %s: worker got %v, want JOB_ASSIGN or NO_JOB", fn, f.Packet.Type)
			}
		}
		if len(done) > 0 {
			if _, err := w.c.Write(done); err != nil {
				t.Fatalf("draining %s: %v", fn, err)
			}
		}
		if jobs == 0 && queueTotal(t, addr, fn) == 0 {
			return got
		}
	}
}

// crashError reports whether err is how a client sees gserverd die.
func crashError(err error) bool {
	var ne net.Error
	if err == nil || errors.As(err, &ne) {
		return true
	}
	for _, s := range []string{"EOF", "reset", "refused", "broken pipe", "closed"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// TestCrashSIGKILLSyncModes is issue 10's test of --sync interval and
// --sync none: two clients pipeline background submits with empty
// uniques to gserverd (embedded store); once a random number of them has
// been acknowledged, gserverd is killed with SIGKILL, six times,
// restarted on the same data dir each time; then a worker drains the
// queue. Every job whose JOB_CREATED a client read must run at least
// once (a job that was stored but whose ack never arrived may run too;
// duplicates are counted, not failed).
//
// Half of the kills land in mid-stream. There the acks of the last jobs
// gserverd wrote are often still in flight and die with the connection
// (the client cannot count them), so in the other half the clients stop
// sending at that point, read every ack still due, and the kill follows
// at once: the last jobs acknowledged are then the last ones written.
func TestCrashSIGKILLSyncModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"interval", "none"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			args := []string{"-q", "embedded", "--sync", mode, "--data-dir", dir, "--http-listen", ""}
			const (
				rounds  = 6
				clients = 2
				fn      = "crashsync"
			)
			var (
				mu    sync.Mutex
				acked = map[string]bool{}
			)
			for round := range rounds {
				midStream := round%2 == 0
				p := startGserverd(t, args...)
				// The crash comes once this many submits of the round
				// have been acknowledged.
				killAt := 2000 + rand.IntN(4000)
				n := 0
				reached := make(chan struct{})
				ack := func(data string) {
					mu.Lock()
					defer mu.Unlock()
					acked[data] = true
					if n++; n == killAt {
						close(reached)
					}
				}
				quiet := make(chan struct{})
				errs := make(chan error, clients)
				for c := range clients {
					go func() {
						errs <- pipelineClient(p.Addr, fn, fmt.Sprintf("r%d-c%d-", round, c), 512, ack, quiet)
					}()
				}
				select {
				case <-reached:
				case err := <-errs:
					t.Fatalf("round %d: a client stopped before the crash: %v\n%s", round, err, p.Output())
				case <-time.After(2 * time.Minute):
					mu.Lock()
					got := n
					mu.Unlock()
					t.Fatalf("round %d: %d of %d acknowledgements after 2 minutes", round, got, killAt)
				}
				if !midStream {
					close(quiet)
					for range clients {
						if err := <-errs; err != nil {
							t.Fatalf("round %d: reading the last acks: %v", round, err)
						}
					}
				}
				p.Kill()
				if midStream {
					for range clients {
						if err := <-errs; !crashError(err) {
							t.Fatalf("round %d: client failed other than by the crash: %v", round, err)
						}
					}
				}
				mu.Lock()
				t.Logf("round %d (mid-stream %v): killed after %d acknowledgements in the round; %d acknowledged so far", round, midStream, n, len(acked))
				mu.Unlock()
			}

			p := startGserverd(t, args...)
			ran := drainAll(t, p.Addr, fn)
			lost, dups := 0, 0
			lostIn := make([]int, rounds)
			var missing []string
			for data := range acked {
				if ran[data] == 0 {
					lost++
					var r int
					_, _ = fmt.Sscanf(data, "r%d-", &r)
					lostIn[r]++
					if len(missing) < 10 {
						missing = append(missing, data)
					}
				}
			}
			for _, k := range ran {
				dups += k - 1
			}
			msg := fmt.Sprintf("--sync %s, %d SIGKILLs: acknowledged %d, came back %d, lost %d (per round %v), duplicates %d, stored but never acknowledged %d",
				mode, rounds, len(acked), len(acked)-lost, lost, lostIn, dups, len(ran)-(len(acked)-lost))
			t.Log(msg)
			fmt.Println("TestCrashSIGKILLSyncModes: " + msg)
			if lost > 0 {
				t.Fatalf("%s; never came back, for example: %s", msg, strings.Join(missing, " "))
			}
		})
	}
}
