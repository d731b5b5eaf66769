package interop

import (
	"bytes"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/protocol"
)

// statusUniqueScript drives a fresh server through the states a job
// passes and returns the raw STATUS_RES_UNIQUE packet of each step: an
// unknown unique, a queued background job, a queued foreground job with
// two clients, the same job running with a status, after one client
// left, with a background submit joined, a "-" unique, and after the job
// completed. Uniques and functions are fixed so that two servers' replies
// compare byte for byte.
func statusUniqueScript(t *testing.T, addr string) (steps []string, replies [][]byte) {
	query := func(c *rawConn, step, unique string) {
		t.Helper()
		c.send(protocol.GetStatusUnique, unique)
		p := c.expectType(protocol.StatusResUnique)
		steps = append(steps, step)
		replies = append(replies, p.raw)
	}
	q := dial(t, addr)
	query(q, "unknown", "su-none")

	q.submit(protocol.SubmitJobBg, "su_fb", "su-bg", "x")
	query(q, "queued background", "su-bg")

	c1, c2 := dial(t, addr), dial(t, addr)
	h := c1.submit(protocol.SubmitJob, "su_ff", "su-fg", "y")
	if h2 := c2.submit(protocol.SubmitJob, "su_ff", "su-fg", "z"); h2 != h {
		t.Fatalf("coalesced submit: handle %s, want %s", h2, h)
	}
	query(q, "queued, two clients", "su-fg")

	w := dial(t, addr)
	w.grab("su_ff")
	w.send(protocol.WorkStatus, h, "3", "10")
	c1.expect(protocol.WorkStatus, h, "3", "10")
	c2.expect(protocol.WorkStatus, h, "3", "10")
	query(q, "running, 3/10", "su-fg")

	c2.c.Close()
	// The server reads the close when it reads it: ask until the client
	// count changes (a server that never drops it answers as before, and
	// the comparison shows it).
	before := replies[len(replies)-1]
	deadline := time.Now().Add(3 * time.Second)
	for {
		q.send(protocol.GetStatusUnique, "su-fg")
		p := q.expectType(protocol.StatusResUnique)
		if !bytes.Equal(p.raw, before) || time.Now().After(deadline) {
			steps = append(steps, "running, one client left")
			replies = append(replies, p.raw)
			break
		}
		time.Sleep(10 * time.Millisecond) // polling a server that cannot signal us
	}

	c3 := dial(t, addr)
	if h3 := c3.submit(protocol.SubmitJobBg, "su_ff", "su-fg", "bg"); h3 != h {
		t.Fatalf("background submit on the running job: handle %s, want %s", h3, h)
	}
	query(q, "running, background submit joined", "su-fg")

	q.submit(protocol.SubmitJobBg, "su_fd", "-", "dash-payload")
	query(q, "dash unique", "-")

	w.send(protocol.WorkComplete, h, "done")
	c1.expect(protocol.WorkComplete, h, "done")
	query(q, "completed", "su-fg")
	return steps, replies
}

// TestStatusUniqueSideBySide runs statusUniqueScript on gearmand and on
// gserverd and compares every STATUS_RES_UNIQUE byte for byte (issue 11).
func TestStatusUniqueSideBySide(t *testing.T) {
	t.Parallel()
	got := map[string][][]byte{}
	var steps []string
	for _, tg := range targets() {
		srv := tg.start(t)
		steps, got[tg.name] = statusUniqueScript(t, srv.Addr)
	}
	for i, step := range steps {
		g, s := got["gearmand"][i], got["gserverd"][i]
		t.Logf("%-34s gearmand %q", step, g)
		if !bytes.Equal(g, s) {
			t.Errorf("%s: gserverd %q, gearmand %q", step, s, g)
		}
	}
}
