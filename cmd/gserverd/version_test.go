package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// TestStampedVersion builds the three binaries as make build does, with a
// version stamped by -ldflags -X, and checks that every place that reports
// the version reports that one: -V and --version of gserverd, gworkerd and
// gclient, the admin command version (raw and through gearadmin
// --server-version), the HTTP API's /api/v1/server and /metrics'
// gserverd_build_info.
//
// Under make test the binaries are make build's, and the version the one
// the Makefile stamped (GWORKERD_VERSION, from git describe).
func TestStampedVersion(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want, dir := os.Getenv("GWORKERD_VERSION"), os.Getenv("GWORKERD_BIN")
	if want == "" || dir == "" {
		want, dir = "v9.8.7-stamp-test", t.TempDir()
		root, err := testpeer.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		build := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X github.com/gworkerd/gworkerd/internal/version.stamp="+want,
			"-o", dir+string(filepath.Separator), "./cmd/gserverd", "./cmd/gworkerd", "./cmd/gclient")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	for _, bin := range []string{"gserverd", "gworkerd", "gclient"} {
		for _, flag := range []string{"-V", "--version"} {
			out, err := exec.CommandContext(ctx, filepath.Join(dir, bin), flag).CombinedOutput()
			if err != nil || string(out) != bin+" "+want+"\n" {
				t.Errorf("%s %s: %q, %v; want %q", bin, flag, out, err, bin+" "+want+"\n")
			}
		}
	}

	hport := strconv.Itoa(testpeer.FreePort(t))
	port := strconv.Itoa(testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(filepath.Join(dir, "gserverd"), "-q", "builtin", "-p", port, "-L", "127.0.0.1",
		"--http-listen", "127.0.0.1:"+hport))
	addr := net.JoinHostPort("127.0.0.1", port)
	testpeer.WaitListening(t, addr, 10*time.Second)

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("version\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if got := string(buf[:n]); got != "OK "+want+"\n" {
		t.Errorf("admin version: %q, %v; want %q", got, err, "OK "+want+"\n")
	}
	if ga, err := exec.LookPath("gearadmin"); err == nil {
		out, err := exec.CommandContext(ctx, ga, "-h", "127.0.0.1", "-p", port, "--server-version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("gearadmin --server-version: %q, %v; want %q", out, err, want)
		}
	} else {
		t.Log("SKIP gearadmin --server-version: gearadmin not installed (Debian package gearman-tools)")
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) *http.Response {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			resp, err := hc.Get("http://127.0.0.1:" + hport + path)
			if err == nil && resp.StatusCode == http.StatusOK {
				return resp
			}
			if err == nil {
				resp.Body.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v %v\n%s", path, resp, err, p.Output())
			}
		}
	}
	resp := get("/api/v1/server")
	var info struct{ Version string }
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Version != want {
		t.Errorf("/api/v1/server version: %q, %v; want %q", info.Version, err, want)
	}
	resp = get("/metrics")
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	ms := fams["gserverd_build_info"].GetMetric()
	if len(ms) != 1 || ms[0].GetGauge().GetValue() != 1 {
		t.Fatalf("gserverd_build_info: %v, want one series of value 1", ms)
	}
	labels := map[string]string{}
	for _, l := range ms[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != want || !strings.HasPrefix(labels["goversion"], "go") {
		t.Errorf("gserverd_build_info labels %v, want version=%q and goversion", labels, want)
	}
}
