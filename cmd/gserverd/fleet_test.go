package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// fleetMember is a gserverd of a fleet test with its HTTP endpoint.
type fleetMember struct {
	id  string
	p   *testpeer.Process
	web string // host:port of the monitor
}

// startFleetMember starts gserverd as member id of the fleet on q's table
// reached at dbAddr, with a short heartbeat and lease.
func startFleetMember(t *testing.T, q externalQueue, dbAddr, id string) *fleetMember {
	t.Helper()
	args := append(q.flags(dbAddr), "--member-id", id, "--fleet-heartbeat", "200ms", "--fleet-lease", "2s",
		"--http-listen", "127.0.0.1:0")
	p := logOnFailure(t, startGserverd(t, args...))
	m := &fleetMember{id: id, p: p}
	eventually(t, "gserverd logs its HTTP address", func() bool {
		if s := httpEndpointAddr.FindStringSubmatch(p.Output()); s != nil {
			m.web = s[1]
		}
		return m.web != ""
	})
	return m
}

// fleetInfo reads the member's /api/v1/server fleet section.
func (m *fleetMember) fleetInfo(t *testing.T) *server.FleetInfo {
	t.Helper()
	resp, err := http.Get("http://" + m.web + "/api/v1/server")
	if err != nil {
		t.Fatalf("GET /api/v1/server of %s: %v", m.id, err)
	}
	defer resp.Body.Close()
	var si struct {
		Fleet *server.FleetInfo `json:"fleet"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&si); err != nil {
		t.Fatalf("GET /api/v1/server of %s: %v", m.id, err)
	}
	return si.Fleet
}

func (m *fleetMember) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + m.web + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics of %s: %v", m.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBinaryFleetSIGKILL (issue 12): three gserverd share one PostgreSQL
// table. 300 background jobs are acknowledged by member a, which has no
// worker; a is then SIGKILLed. Workers on b and c complete every one of
// them exactly once, after exactly one of b and c claimed a's records;
// the claim, its takeover time and the members are in /api/v1/server
// and /metrics.
func TestBinaryFleetSIGKILL(t *testing.T) {
	t.Parallel()
	storetest.RequireTCP(t, "PostgreSQL", pgAddr)
	q := newPGQueue(t)
	a := startFleetMember(t, q, pgAddr, "a")
	b := startFleetMember(t, q, pgAddr, "b")
	c := startFleetMember(t, q, pgAddr, "c")
	defer b.p.Stop()
	defer c.p.Stop()

	eventually(t, "every member sees three leases", func() bool {
		fi := b.fleetInfo(t)
		return fi != nil && len(fi.Members) == 3
	})

	const jobs = 300
	want := map[string]bool{}
	rc := dialRaw(t, a.p.Addr)
	for i := range jobs {
		u := fmt.Sprintf("fleet-%03d", i)
		rc.send(protocol.SubmitJobBg, "fleet", u, "payload-"+u)
		rc.expect(protocol.JobCreated)
		want[u] = true
	}
	a.p.Kill()
	killed := time.Now()

	var mu sync.Mutex
	done := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range []*fleetMember{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = drainWorker(m.p.Addr, "fleet", func(u string) {
				mu.Lock()
				done[u]++
				mu.Unlock()
			}, stop)
		}()
	}
	eventually(t, "every acknowledged job completed on b or c", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) >= jobs
	})
	t.Logf("all %d jobs of the killed member completed %v after the SIGKILL (lease 2s)", jobs, time.Since(killed).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	mu.Lock()
	for u, n := range done {
		if !want[u] {
			t.Errorf("completed %q, never submitted", u)
		}
		if n != 1 {
			t.Errorf("job %s completed %d times, want once", u, n)
		}
	}
	mu.Unlock()

	var claimer *fleetMember
	var claim server.FleetInfo
	for _, m := range []*fleetMember{b, c} {
		fi := m.fleetInfo(t)
		if fi == nil {
			t.Fatalf("%s: /api/v1/server has no fleet", m.id)
		}
		if len(fi.Claims) > 0 {
			if claimer != nil {
				t.Fatalf("both %s and %s claimed: %+v", claimer.id, m.id, fi.Claims)
			}
			claimer, claim = m, *fi
		}
	}
	if claimer == nil {
		t.Fatal("no member lists a claim")
	}
	cl := claim.Claims[0]
	if cl.From != "a" || cl.Jobs != jobs || cl.Takeover <= 0 {
		t.Errorf("%s's claim: %+v, want from a, %d jobs, a takeover time", claimer.id, cl, jobs)
	}
	t.Logf("%s claimed %d jobs %v after a's lease expired; first claimed job served %v after the expiry", claimer.id, cl.Jobs, cl.Expired, cl.Takeover)
	if claim.Member != claimer.id || claim.Fenced || claim.LeaseTimeout != 2*time.Second {
		t.Errorf("fleet status %+v", claim.FleetStatus)
	}
	eventually(t, "the claimer's lease list drops a", func() bool {
		fi := claimer.fleetInfo(t)
		for _, m := range fi.Members {
			if m.ID == "a" {
				return false
			}
		}
		return len(fi.Members) == 2
	})
	met := claimer.metrics(t)
	for _, line := range []string{"gserverd_fleet_members 2", "gserverd_fleet_claims_total 1", fmt.Sprintf("gserverd_fleet_claimed_jobs_total %d", jobs), "gserverd_fleet_fenced 0", "gserverd_fleet_last_takeover_seconds "} {
		if !strings.Contains(met, "\n"+line) {
			t.Errorf("/metrics of %s lacks %q", claimer.id, line)
		}
	}
}
