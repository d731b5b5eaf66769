package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const addr = "127.0.0.1:6379"

func require(t *testing.T) {
	t.Helper()
	storetest.RequireTCP(t, "Redis", addr)
}

func optsFor(hostport, prefix string) Options {
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	return Options{Server: host, Port: p, Prefix: prefix}
}

func rawClient(t *testing.T) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// prefixFor returns a key prefix of the test's own, whose keys are deleted
// at its end.
func prefixFor(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "_gstest_" + hex.EncodeToString(b)
	c := rawClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}

func TestStore(t *testing.T) {
	require(t)
	var mu sync.Mutex
	prefixes := map[string]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		mu.Lock()
		p, ok := prefixes[t.Name()]
		if !ok {
			p = prefixFor(t)
			prefixes[t.Name()] = p
		}
		mu.Unlock()
		s, err := Open(context.Background(), optsFor(addr, p))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestOutage(t *testing.T) {
	require(t)
	prefix := prefixFor(t)
	storetest.RunOutage(t, addr, func(t *testing.T, a string) store.Store {
		s, err := Open(context.Background(), optsFor(a, prefix))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestStall: with a short deadline on each call, a database that stops
// answering (packets dropped, not reset) fails Add, Delete and Replay
// instead of hanging them, and Close still returns.
func TestStall(t *testing.T) {
	require(t)
	prefix := prefixFor(t)
	storetest.RunStall(t, addr, func(t *testing.T, a string) store.Store {
		opts := optsFor(a, prefix)
		opts.IOTimeout = storetest.StallTimeout
		s, err := Open(context.Background(), opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestReplaysGearmandKeys writes keys exactly as gearmand's redis plugin
// does (SET PREFIX-FUNCTION-UNIQUE payload) and checks Replay returns them
// as NORMAL jobs, before the jobs gserverd added, and that Delete removes
// them.
func TestReplaysGearmandKeys(t *testing.T) {
	require(t)
	ctx := context.Background()
	prefix := prefixFor(t)
	c := rawClient(t)
	for _, kv := range [][2]string{{"resize-u1", "img\x00data"}, {"mail-u2", ""}} {
		if err := c.Set(ctx, prefix+"-"+kv[0], kv[1], 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, optsFor(addr, prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ours := store.Job{Function: "resize", Key: "mine", Priority: 0, Data: []byte("x"), When: 5}
	if err := s.Add(ctx, ours); err != nil {
		t.Fatal(err)
	}
	got := storetest.ReplayAll(t, s)
	if len(got) != 3 {
		t.Fatalf("replayed %v, want 3 jobs", storetest.SortedKeys(got))
	}
	if last := got[2]; last.Key != "mine" || last.Priority != 0 || last.When != 5 {
		t.Errorf("gserverd's job = %+v, want it last and intact", last)
	}
	m := map[string]store.Job{}
	for _, j := range got[:2] {
		m[j.Function+"/"+j.Key] = j
	}
	if j := m["resize/u1"]; string(j.Data) != "img\x00data" || j.Priority != 1 || j.When != 0 {
		t.Errorf("gearmand job resize/u1 = %+v", j)
	}
	if _, ok := m["mail/u2"]; !ok {
		t.Errorf("gearmand job mail/u2 missing: %v", m)
	}
	// gearmand's keys have no version: older than any versioned delete,
	// as the server deletes them.
	if err := s.Delete(ctx, store.Ref{Function: "resize", Key: "u1", Version: 42}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, prefix+"-resize-u1").Result(); n != 0 {
		t.Error("Delete left gearmand's key behind")
	}
}

// TestOlderHashes: a job hash written by a gserverd from before versioned
// deletes (no v field) replays with version 0 and is removed by a
// versioned Delete.
func TestOlderHashes(t *testing.T) {
	require(t)
	ctx := context.Background()
	prefix := prefixFor(t)
	c := rawClient(t)
	if err := c.HSet(ctx, prefix+"-f-old", "f", "f", "k", "old", "p", "2", "w", "0", "r", "", "d", "payload", "s", "1").Err(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, optsFor(addr, prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := storetest.ReplayAll(t, s)
	if len(got) != 1 || got[0].Key != "old" || got[0].Priority != 2 || string(got[0].Data) != "payload" || got[0].Version != 0 {
		t.Fatalf("replay of an older gserverd's hash = %+v, want f/old, priority 2, payload, version 0", got)
	}
	if err := s.Delete(ctx, store.Ref{Function: "f", Key: "old", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got := storetest.ReplayAll(t, s); len(got) != 0 {
		t.Fatalf("after a versioned delete: %+v, want nothing", got)
	}
}

func TestGlobEscape(t *testing.T) {
	for in, want := range map[string]string{"_gear_": "_gear_", "a*b?[c]\\": `a\*b\?\[c\]\\`} {
		if got := globEscape(in); got != want {
			t.Errorf("globEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
