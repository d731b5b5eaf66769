package main

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// A scale beyond max_children_per_function, over the tokenless HTTP API
// and through gworkerd ctl, is refused naming the bound, and starts
// nothing (issue 10, item 14: n=1000000 forked children until the master
// aborted).
func TestScaleBeyondPerFunctionBound(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  reverse: {}\n", 5*time.Second)
	base := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	e.appendConfig("http_listen: " + base + "\n")
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 15*time.Second, "reverse running", func() bool { return len(e.running("reverse")) == 1 })

	bound := "max_children_per_function " + strconv.Itoa(config.DefaultWorkerMaxChildrenPerFunction)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	// Just past the bound first: the old code started them all.
	for _, n := range []int{config.DefaultWorkerMaxChildrenPerFunction + 1, 1_000_000} {
		resp, err := hc.Post("http://"+base+"/api/v1/functions/reverse/scale?n="+strconv.Itoa(n), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), bound) {
			t.Fatalf("POST scale?n=%d: %d %q, want 400 naming %s", n, resp.StatusCode, body, bound)
		}
		if out, err := e.run("ctl", "scale", "reverse", strconv.Itoa(n)); err == nil || !strings.Contains(out, bound) {
			t.Fatalf("ctl scale reverse %d: %v %q, want an error naming %s", n, err, out, bound)
		}
	}
	st := e.status()
	if len(st.Functions) != 1 || st.Functions[0].Desired != 1 || len(st.Children) != 1 {
		t.Errorf("refused scales changed the supervisor: %+v, %d children", st.Functions, len(st.Children))
	}
}

// max_children bounds the functions together: a config beyond it does
// not start (the error names the key and the file), a scale beyond it
// is refused naming it.
func TestScaleBeyondTotalBound(t *testing.T) {
	t.Parallel()
	gd := testpeer.StartGearmand(t)
	e := newEnv(t, gd.Addr, "  a:\n    count: 2\n  b:\n    count: 2\n", 5*time.Second)
	e.script("a", "cat")
	e.script("b", "cat")
	b, _ := os.ReadFile(e.cfg)
	cfg := string(b)
	if err := os.WriteFile(e.cfg, []byte(cfg+"http_listen: \"\"\nmax_children: 3\nmax_children_per_function: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.run("start"); err == nil || !strings.Contains(out, e.cfg) || !strings.Contains(out, "max_children: ") || !strings.Contains(out, "add up to 4") {
		t.Fatalf("start with 4 children beyond max_children 3: %v %q, want an error naming the file and the key", err, out)
	}
	// Discovered functions count too: the functions section names
	// neither here.
	if err := os.WriteFile(e.cfg, []byte(cfg[:strings.Index(cfg, "functions:")]+"http_listen: \"\"\nmax_children: 3\nmax_children_per_function: 2\ndefaults:\n  count: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.run("check"); err == nil || !strings.Contains(out, "max_children") {
		t.Fatalf("check with discovered functions beyond max_children: %v %q", err, out)
	}
	if err := os.WriteFile(e.cfg, []byte(cfg+"http_listen: \"\"\nmax_children: 4\nmax_children_per_function: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 15*time.Second, "4 children", func() bool { return len(e.running("a")) == 2 && len(e.running("b")) == 2 })
	if out, err := e.run("ctl", "scale", "a", "3"); err == nil || !strings.Contains(out, "5 children in all, beyond max_children 4") {
		t.Fatalf("ctl scale a 3: %v %q, want an error naming max_children", err, out)
	}
	e.must("ctl", "scale", "b", "1")
	e.must("ctl", "scale", "a", "3")
	waitFor(t, 15*time.Second, "a scaled to 3", func() bool { return len(e.running("a")) == 3 })
}
