package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestBinarySyslog runs gserverd --syslog against a syslog socket of the
// test's own (a unix datagram socket, as /dev/log is): the start-up line
// arrives there tagged gserverd, facility daemon. A socket nobody listens
// on is one warning line, and gserverd serves all the same (gearmand's
// openlog cannot fail either).
func TestBinarySyslog(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p := testpeer.StartGserverd(t, "-q", "builtin", "--http-listen", "", "--syslog", "--syslog-socket", sock, "--verbose", "INFO")
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("no start-up line on the syslog socket: %v\n%s", err, p.Output())
		}
		msg := string(buf[:n])
		// <30> is facility daemon (3) * 8 + severity info (6).
		if strings.Contains(msg, "gserverd started") {
			if !strings.HasPrefix(msg, "<30>") || !strings.Contains(msg, " gserverd[") {
				t.Errorf("syslog message %q, want priority <30> and tag gserverd", msg)
			}
			break
		}
	}
	p.Stop()

	q := testpeer.StartGserverd(t, "-q", "builtin", "--http-listen", "", "--syslog", "--syslog-socket", filepath.Join(t.TempDir(), "none"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := testpeer.SubmitJob(ctx, q.Addr, "syslog", "x", true, false); err != nil {
		t.Fatalf("submit without a syslog: %v", err)
	}
	if out := q.Output(); strings.Count(out, "gserverd: warning: flag --syslog: ") != 1 {
		t.Errorf("stderr %q, want one warning line about --syslog", out)
	}
}
