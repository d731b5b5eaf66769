//go:build linux

// Package fleet tests a fleet of gserverd servers sharing one PostgreSQL
// table (issue 12) on simulated hosts: each server, the workers and the
// clients in network namespaces of their own (internal/netlab), the
// database reached from all of them through the lab's bridge. A server
// host is cut off (its link dropped, packets lost, not reset) and another
// SIGKILLed while clients submit background jobs and gworkerd runs them;
// the test counts what was acknowledged against what ran.
package fleet

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gworkerd/gworkerd/internal/netlab"
	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(testpeer.Main(m, "gserverd", "gworkerd")) }

const (
	pgAddr    = "127.0.0.1:5432"
	heartbeat = 250 * time.Millisecond
	lease     = 3 * time.Second
	fn        = "fleet"
	// bound is how long any one condition may take before the test fails:
	// generous, for a loaded machine; nothing is timed against it.
	bound = 90 * time.Second
)

// fleet is a lab of server hosts, a worker host and a client host.
type fleet struct {
	t       *testing.T
	lab     *netlab.Lab
	db      string // host:port of PostgreSQL as the hosts reach it
	table   string
	servers []*member
	worker  *netlab.Host
	client  *netlab.Host
	runLog  string // one line per job run: "<unique> <handle> <time>"
	// jobTime is how long the handler takes per job, in seconds (a
	// Python literal): slower than the load keeps a backlog to hand over.
	jobTime string
}

// member is one gserverd of the fleet.
type member struct {
	id   string
	host *netlab.Host
	p    *testpeer.Process
	cut  bool
}

func (m *member) addr() string { return net.JoinHostPort(m.host.IP(), "4730") }
func (m *member) web() string  { return net.JoinHostPort(m.host.IP(), "4731") }

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	storetest.RequireTCP(t, "PostgreSQL", pgAddr)
	lab := netlab.New(t)
	f := &fleet{t: t, lab: lab, db: lab.Expose(pgAddr), table: table(t), jobTime: "0.05"}
	for i := range n {
		m := &member{id: fmt.Sprintf("s%d", i+1), host: lab.Host(fmt.Sprintf("s%d", i+1))}
		f.servers = append(f.servers, m)
	}
	f.worker = lab.Host("w1")
	f.client = lab.Host("c1")
	for _, m := range f.servers {
		f.start(m)
	}
	f.waitMembers(n)
	return f
}

// table returns a table name of the test's own, dropped at its end with
// the fleet's members table.
func table(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "gserverd_netfleet_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP TABLE IF EXISTS "+name+", "+name+"_members")
	})
	return name
}

// start starts member m's gserverd on its host (again, after a kill: the
// same member id, as a restarted server).
func (f *fleet) start(m *member) {
	f.t.Helper()
	host, port, _ := net.SplitHostPort(f.db)
	cmd := m.host.Command(context.Background(), testpeer.Binary(f.t, "gserverd"),
		"-L", m.host.IP(), "-p", "4730", "--log-file", "stderr", "--verbose", "INFO",
		"-q", "postgres", "--libpq-conninfo", fmt.Sprintf("host=%s port=%s user=postgres dbname=test sslmode=disable connect_timeout=5", host, port),
		"--libpq-table", f.table, "--member-id", m.id, "--job-handle-prefix", m.id,
		"--fleet-heartbeat", heartbeat.String(), "--fleet-lease", lease.String(),
		"--store-timeout", "2s", "--http-listen", m.web())
	m.p = testpeer.Start(f.t, cmd)
	testpeer.WaitListening(f.t, m.addr(), bound)
	f.t.Cleanup(func() {
		if f.t.Failed() {
			f.t.Logf("%s output:\n%s", m.id, tail(m.p.Output(), 6000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// serverFigures is the part of /api/v1/server the tests read.
type serverFigures struct {
	Jobs, Running int
	Fleet         *server.FleetInfo
}

// serverInfo reads member m's /api/v1/server (the test process reaches
// every host); nil when m does not answer.
func serverInfo(m *member) *serverFigures {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + m.web() + "/api/v1/server")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var si serverFigures
	if json.NewDecoder(resp.Body).Decode(&si) != nil {
		return nil
	}
	return &si
}

// fleetInfo reads member m's fleet section of /api/v1/server; nil when m
// does not answer.
func fleetInfo(m *member) *server.FleetInfo {
	if si := serverInfo(m); si != nil {
		return si.Fleet
	}
	return nil
}

func (f *fleet) waitMembers(n int) {
	f.t.Helper()
	for _, m := range f.servers {
		if m.cut || m.p == nil {
			continue
		}
		waitFor(f.t, m.id+" sees every lease", func() bool {
			fi := fleetInfo(m)
			return fi != nil && len(fi.Members) == n && !fi.Fenced
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", bound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startWorkers runs gworkerd on the worker host, connected to every
// server, with a resident Python handler that appends each job's unique
// and handle to runLog.
func (f *fleet) startWorkers() {
	f.t.Helper()
	dir, err := os.MkdirTemp("", "gwf")
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { os.RemoveAll(dir) })
	jobs := filepath.Join(dir, "jobs")
	if err := os.MkdirAll(jobs, 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.runLog = filepath.Join(dir, "runs.log")
	handler := fmt.Sprintf(`import os
import time

LOG = %q


def fnc_fleet(job):
    time.sleep(%s)  # the servers keep a backlog to hand over
    line = ("%%s %%s %%r\n" %% (job.unique(), job.handle(), time.time())).encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return b"ok"
`, f.runLog, f.jobTime)
	if err := os.WriteFile(filepath.Join(jobs, "job_fleet.py"), []byte(handler), 0o644); err != nil {
		f.t.Fatal(err)
	}
	var addrs []string
	for _, m := range f.servers {
		addrs = append(addrs, m.addr())
	}
	cfg := fmt.Sprintf("servers: [%s]\njob_dirs: [%s]\npid_file: %s\ncontrol_socket: %s\nlog_file: %s\nstop_timeout: 10s\nhttp_listen: \"\"\nmemory_cgroup: \"off\"\nfunctions:\n  fleet:\n    count: 4\n",
		strings.Join(addrs, ", "), jobs, filepath.Join(dir, "g.pid"), filepath.Join(dir, "g.sock"), filepath.Join(dir, "g.log"))
	cfgPath := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		f.t.Fatal(err)
	}
	testpeer.Start(f.t, f.worker.Command(context.Background(), testpeer.Binary(f.t, "gworkerd"), "--config", cfgPath, "start", "--foreground"))
	f.t.Cleanup(func() {
		if f.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "g.log"))
			f.t.Logf("gworkerd log:\n%s", tail(string(b), 6000))
		}
	})
}

// run is one run of a job: the handle it was served under (the member's
// id, a colon, a number) and when it ran.
type run struct {
	handle string
	at     time.Time
}

// runs reads the run log: each unique's runs, in run order.
func (f *fleet) runs() map[string][]run {
	out := map[string][]run{}
	fh, err := os.Open(f.runLog)
	if err != nil {
		return out
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue
		}
		var sec float64
		if _, err := fmt.Sscan(fs[2], &sec); err != nil {
			continue
		}
		out[fs[0]] = append(out[fs[0]], run{handle: fs[1], at: time.Unix(0, int64(sec*1e9))})
	}
	return out
}

// load submits background jobs from the client host until its context
// ends: one connection per server, each submit to the next usable server
// in turn. A server whose connection fails (reset, or no answer within
// the deadline: cut off) is left alone for retry, then dialled again (0:
// never again). It records every unique whose JOB_CREATED arrived.
type load struct {
	mu     sync.Mutex
	acked  map[string]string // unique -> the member that acknowledged it
	sent   int
	failed int
}

func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (f *fleet) runLoad(ctx context.Context, prefix string, l *load, retry time.Duration) {
	type conn struct {
		id, addr string
		c        net.Conn
		r        *protocol.Reader
		gone     bool      // failed, and retry is 0
		retryAt  time.Time // failed: dial again from then
	}
	var conns []*conn
	for _, m := range f.servers {
		conns = append(conns, &conn{id: m.id, addr: m.addr()})
	}
	defer func() {
		for _, c := range conns {
			if c.c != nil {
				c.c.Close()
			}
		}
	}()
	fail := func(c *conn) {
		if c.c != nil {
			c.c.Close()
			c.c = nil
		}
		c.gone = retry == 0
		c.retryAt = time.Now().Add(retry)
	}
	buf := make([]byte, 0, 256)
	for i, next := 0, 0; ctx.Err() == nil; next++ {
		c := conns[next%len(conns)]
		if c.gone || (c.c == nil && time.Now().Before(c.retryAt)) {
			if next%len(conns) == len(conns)-1 {
				time.Sleep(10 * time.Millisecond) // every server down: wait for one
			}
			continue
		}
		if c.c == nil {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			nc, err := f.client.Dial(dctx, "tcp", c.addr)
			cancel()
			if err != nil {
				fail(c)
				continue
			}
			c.c, c.r = nc, protocol.NewReader(nc, protocol.Limits{})
		}
		u := fmt.Sprintf("%s-%06d", prefix, i)
		i++
		buf = protocol.AppendPacketString(buf[:0], protocol.Req, protocol.SubmitJobBg, fn, u, "payload-"+u)
		_ = c.c.SetDeadline(time.Now().Add(3 * time.Second))
		l.mu.Lock()
		l.sent++
		l.mu.Unlock()
		if _, err := c.c.Write(buf); err != nil {
			fail(c)
			continue
		}
		fr, err := c.r.Next()
		if err != nil {
			fail(c)
			continue
		}
		l.mu.Lock()
		if !fr.Text && fr.Packet.Type == protocol.JobCreated {
			l.acked[u] = c.id
		} else {
			l.failed++
		}
		l.mu.Unlock()
		if i%10 == 9 {
			time.Sleep(10 * time.Millisecond) // a steady load, not a flood
		}
	}
}

// claimOf returns the claim of member from that any live member made,
// and who made it.
func (f *fleet) claimOf(from string) (string, *storeClaim) {
	for _, m := range f.servers {
		if m.cut || m.p == nil {
			continue
		}
		select {
		case <-m.p.Done():
			continue
		default:
		}
		fi := fleetInfo(m)
		if fi == nil {
			continue
		}
		for _, c := range fi.Claims {
			if c.From == from {
				return m.id, &storeClaim{Jobs: c.Jobs, Expired: c.Expired, Takeover: c.Takeover}
			}
		}
	}
	return "", nil
}

type storeClaim struct {
	Jobs              int
	Expired, Takeover time.Duration
}

// TestFleetCutAndKill is issue 12's fleet test on simulated hosts.
func TestFleetCutAndKill(t *testing.T) {
	f := newFleet(t, 3)
	f.startWorkers()
	s1, s2, s3 := f.servers[0], f.servers[1], f.servers[2]

	l := &load{acked: map[string]string{}}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.runLoad(ctx, "a", l, 0) }()
	ackedAt := l.ackedCount
	waitFor(t, "load running", func() bool { return ackedAt() >= 300 })

	// s1's host loses its link.
	s1.host.Cut()
	s1.cut = true
	cutAt := time.Now()
	t.Logf("s1 cut at %s", cutAt.Format("15:04:05.000"))
	var by1 string
	var c1 *storeClaim
	waitFor(t, "s1's jobs claimed by another member", func() bool { by1, c1 = f.claimOf("s1"); return c1 != nil })
	if c1.Jobs == 0 {
		t.Fatalf("s1 had no stored job queued when it was cut: no takeover to measure")
	}
	waitFor(t, "s1's first claimed job served", func() bool { _, c1 = f.claimOf("s1"); return c1.Takeover > 0 })
	t.Logf("s1 cut: %s claimed its %d jobs %v after the lease expired; first served %v after the expiry (%v after the cut; lease %v)",
		by1, c1.Jobs, c1.Expired, c1.Takeover, time.Since(cutAt).Round(time.Millisecond), lease)
	before := ackedAt()
	waitFor(t, "load going on without s1", func() bool { return ackedAt() >= before+200 })

	// s2 is killed; s3 carries on alone.
	s2.p.Kill()
	t.Logf("s2 killed at %s", time.Now().Format("15:04:05.000"))
	var by2 string
	var c2 *storeClaim
	waitFor(t, "s2's jobs claimed", func() bool { by2, c2 = f.claimOf("s2"); return c2 != nil })
	if by2 != s3.id {
		t.Errorf("s2's jobs claimed by %s, want s3 (s1 is cut off)", by2)
	}
	if c2.Jobs == 0 {
		t.Fatalf("s2 had no stored job queued when it was killed: no takeover to measure")
	}
	waitFor(t, "s2's first claimed job served", func() bool { _, c2 = f.claimOf("s2"); return c2.Takeover > 0 })
	t.Logf("s2 killed: s3 claimed its %d jobs %v after the lease expired; first served %v after the expiry", c2.Jobs, c2.Expired, c2.Takeover)
	before = ackedAt()
	waitFor(t, "load going on, on s3 alone", func() bool { return ackedAt() >= before+200 })
	stopLoad()
	wg.Wait()

	// s1 comes back: it must find its lease lost and serve nothing it
	// lost.
	healAt := time.Now()
	s1.host.Heal()
	s1.cut = false
	waitFor(t, "s1 rejoins", func() bool {
		fi := fleetInfo(s1)
		return fi != nil && !fi.Fenced && fi.LeaseLost >= 1
	})
	t.Logf("s1 healed at %s: rejoined %v later", healAt.Format("15:04:05.000"), time.Since(healAt).Round(time.Millisecond))
	// Rejoined, s1 holds no queued job: it forgot them at the fence, and
	// the re-read found none of its records left (all were claimed).
	if si := serverInfo(s1); si == nil || si.Jobs != si.Running {
		t.Errorf("s1 after rejoining: %+v, want no queued job", si)
	}
	if fi := fleetInfo(s1); fi == nil || fi.FencedJobs == 0 {
		t.Errorf("s1 forgot no stored job at the fence (it had a backlog): %+v", fi)
	}

	l.mu.Lock()
	acked := l.acked
	t.Logf("load: %d submits, %d acknowledged, %d refused", l.sent, len(acked), l.failed)
	l.mu.Unlock()
	waitFor(t, "every acknowledged job run", func() bool {
		r := f.runs()
		for u := range acked {
			if len(r[u]) == 0 {
				return false
			}
		}
		return true
	})
	// A last look once things are quiet: s3 and s1 hold nothing.
	waitFor(t, "the servers drained", func() bool {
		for _, m := range []*member{s1, s3} {
			if si := serverInfo(m); si == nil || si.Jobs != 0 {
				return false
			}
		}
		return true
	})
	runs := f.runs()
	tl := tallyRuns(acked, runs)
	for _, r := range tl.repeats {
		// A repeat is explained only by a job that ran on a member that
		// was then cut or killed: its first run was served by s1 or s2.
		if first := strings.SplitN(runs[r][0].handle, ":", 2)[0]; first != "s1" && first != "s2" {
			t.Errorf("job %s ran %d times, first on %s, which was never cut or killed: %v", r, len(runs[r]), first, runs[r])
		}
	}
	lost := tl.lost
	t.Logf("acked %d, lost %d, duplicates %d, run without an ack %d, takeover s1 %v, s2 %v", len(acked), tl.lost, tl.dups, tl.unacked, c1.Takeover, c2.Takeover)
	if len(tl.repeats) > 0 {
		t.Logf("repeats (jobs that ran on a member, or had just ended there, when it was cut or killed: the end never reached the database): %s",
			tl.describe(acked, runs, 10))
	}
	if lost != 0 {
		t.Errorf("%d acknowledged jobs never ran", lost)
	}
	// s1 served nothing it lost: every job s1 ran is one it acknowledged
	// (a job it handed out just before the cut may reach the worker only
	// after the heal, when TCP retransmits it); and it claimed nothing.
	for u, hs := range runs {
		for _, r := range hs {
			if who := acked[u]; strings.HasPrefix(r.handle, "s1:") && who != "s1" && who != "" {
				t.Errorf("s1 ran %s, acknowledged by %s", u, who)
			}
		}
	}
	if fi := fleetInfo(s1); fi == nil || fi.ClaimedJobs != 0 {
		t.Errorf("s1 claimed jobs: %+v", fi)
	}
}

// tally counts acknowledged jobs against their runs.
type tally struct {
	lost, dups, unacked int
	repeats             []string // uniques run more than once, sorted
}

func tallyRuns(acked map[string]string, runs map[string][]run) tally {
	var tl tally
	for u := range acked {
		switch n := len(runs[u]); {
		case n == 0:
			tl.lost++
		case n > 1:
			tl.dups += n - 1
			tl.repeats = append(tl.repeats, u)
		}
	}
	for u := range runs {
		if _, ok := acked[u]; !ok {
			tl.unacked++
		}
	}
	sort.Strings(tl.repeats)
	return tl
}

// describe lists up to n repeats with who acknowledged them and their
// runs (handle@time).
func (tl tally) describe(acked map[string]string, runs map[string][]run, n int) string {
	var out []string
	for _, u := range tl.repeats[:min(n, len(tl.repeats))] {
		var rs []string
		for _, r := range runs[u] {
			rs = append(rs, r.handle+"@"+r.at.Format("15:04:05.000"))
		}
		out = append(out, fmt.Sprintf("%s (acked by %s, runs %s)", u, acked[u], strings.Join(rs, " ")))
	}
	return strings.Join(out, "; ")
}
