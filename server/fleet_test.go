package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gworkerd/gworkerd/internal/tcpproxy"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store/postgres"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

const pgAddr = "127.0.0.1:5432"

func pgConninfo(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "host=" + host + " port=" + port + " user=postgres dbname=test sslmode=disable connect_timeout=5"
}

// pgTable returns a table name of the test's own; it and its members
// table are dropped at the test's end.
func pgTable(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "gserverd_fleet_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgConninfo(pgAddr))
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP TABLE IF EXISTS "+name+", "+name+"_members")
	})
	return name
}

// startMember starts an in-process server whose store is a fleet member
// on table, reached at addr.
func startMember(t *testing.T, table, id, addr string) *testServer {
	t.Helper()
	st, err := postgres.Open(context.Background(), postgres.Options{ConnInfo: pgConninfo(addr), Table: table, Member: id,
		HeartbeatInterval: 100 * time.Millisecond, LeaseTimeout: time.Second})
	if err != nil {
		t.Fatalf("open member %s: %v", id, err)
	}
	t.Cleanup(func() { _ = st.Close() }) // after the server's Close (cleanups run last first)
	return startServer(t, func(o *Options) {
		o.Store = st
		o.StoreTimeout = 2 * time.Second
	})
}

// TestFleetFenceAndTakeover is the server's side of a fleet (fleet.go):
// member a, cut off from the database (packets dropped), is fenced: it
// forgets its queued stored jobs and does not requeue the one its worker
// ran when that worker goes; member b claims all three records and
// serves them. Back on the network, a rejoins holding nothing it lost.
func TestFleetFenceAndTakeover(t *testing.T) {
	storetest.RequireTCP(t, "PostgreSQL", pgAddr)
	table := pgTable(t)
	p, err := tcpproxy.New(pgAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer p.Resume()
	a := startMember(t, table, "a", p.Addr())
	b := startMember(t, table, "b", pgAddr)

	cl := a.dial(t)
	for _, u := range []string{"u1", "u2", "u3"} {
		cl.submit(protocol.SubmitJobBg, "f", u, "data-"+u)
	}
	wa := a.worker(t, "f")
	wa.send(protocol.GrabJobUniq)
	running := wa.expectType(protocol.JobAssignUniq)
	if running[2] != "u1" {
		t.Fatalf("a's worker got %q, want u1", running[2])
	}

	p.Stall()
	waitFor(t, "a fenced, its queued stored jobs forgotten", func() bool {
		st := a.Stats()
		return st.Fleet != nil && st.Fleet.Fenced && st.Jobs == 1 && st.Fleet.FencedJobs == 2
	})
	wa.nc.Close() // the worker goes: the job it ran must not come back on a
	waitFor(t, "a drops the job its worker ran", func() bool { return a.Stats().Jobs == 0 })
	if st := a.Stats(); st.Requeued != 0 {
		t.Errorf("a requeued %d jobs while fenced", st.Requeued)
	}

	// b claims the three records, u1 included (it ran on a when a was
	// cut: at least once).
	wb := b.worker(t, "f")
	got := map[string]bool{}
	waitFor(t, "b serves a's three jobs", func() bool {
		wb.send(protocol.GrabJobUniq)
		pk := wb.next()
		if pk.typ == protocol.JobAssignUniq {
			a := pk.args()
			got[a[2]] = true
			wb.send(protocol.WorkComplete, a[0], "")
		}
		return len(got) == 3
	})
	fi := b.Stats().Fleet
	if len(fi.Claims) != 1 || fi.Claims[0].From != "a" || fi.Claims[0].Jobs != 3 || fi.Claims[0].Takeover <= 0 {
		t.Errorf("b's claims: %+v", fi.Claims)
	}

	p.Resume()
	waitFor(t, "a rejoins", func() bool {
		f := a.Stats().Fleet
		return !f.Fenced && f.LeaseLost == 1
	})
	if st := a.Stats(); st.Jobs != 0 {
		t.Errorf("a holds %d jobs after rejoining, want 0", st.Jobs)
	}
	wa2 := a.worker(t, "f")
	wa2.grabNone()
	// a works again: a new background job is its own.
	cl2 := a.dial(t)
	cl2.submit(protocol.SubmitJobBg, "f", "u4", "data-u4")
	wa2.send(protocol.GrabJobUniq)
	if got := wa2.expectType(protocol.JobAssignUniq)[2]; got != "u4" {
		t.Errorf("a's worker got %q after the rejoin, want u4", got)
	}
}
