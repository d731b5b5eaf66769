package main

import (
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// End to end: PHP's gearman extension and gclient submit resize jobs to
// gserverd and to the C gearmand; one gworkerd serves both; the outputs
// are real images of the requested sizes.
func TestResizeEndToEnd(t *testing.T) {
	t.Parallel()
	php := testpeer.RequirePHPGearman(t)
	gd := testpeer.StartGearmand(t)
	gs := testpeer.StartGserverd(t)
	gclient := testpeer.Binary(t, "gclient")
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(root, "jobs", "testdata", "sample.jpg")
	phpClient := filepath.Join(root, "jobs", "testdata", "client.php")
	e := newEnv(t, gd.Addr+", "+gs.Addr, "  resize:\n    count: 2\n", 10*time.Second)
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 20*time.Second, "resize children", func() bool { return len(e.running("resize")) == 2 })

	type result struct {
		Files []struct {
			Path          string
			Width, Height int
		}
	}
	check := func(name, out string, w int) {
		t.Helper()
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Files) != 1 {
			t.Fatalf("%s: result %q: %v", name, out, err)
		}
		f, err := os.Open(r.Files[0].Path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer f.Close()
		cfg, format, err := image.DecodeConfig(f)
		if err != nil {
			t.Fatalf("%s: output is not an image: %v", name, err)
		}
		if cfg.Width != w || format != "jpeg" || cfg.Width != r.Files[0].Width || cfg.Height != r.Files[0].Height {
			t.Errorf("%s: output %dx%d %s, result says %dx%d; want width %d jpeg", name, cfg.Width, cfg.Height, format, r.Files[0].Width, r.Files[0].Height, w)
		}
	}
	for i, srv := range []*testpeer.Process{gd, gs} {
		host, port, _ := strings.Cut(srv.Addr, ":")
		w := 100 + 10*i
		payload := fmt.Sprintf(`{"source":%q,"output_dir":%q,"widths":[%d]}`, sample, filepath.Join(e.dir, "php", port), w)
		out, err := exec.Command(php, phpClient, host, port, "resize", payload).CombinedOutput()
		_, complete, ok := strings.Cut(string(out), "complete:")
		if err != nil || !ok {
			t.Fatalf("php via %s: %v %s", srv.Addr, err, out)
		}
		check("php via "+srv.Addr, strings.TrimSpace(complete), w)

		w = 120 + 10*i
		payload = fmt.Sprintf(`{"source":%q,"output_dir":%q,"widths":[%d]}`, sample, filepath.Join(e.dir, "gclient", port), w)
		cmd := exec.Command(gclient, "--servers", srv.Addr, "submit", "resize", "-", "--wait")
		cmd.Stdin = strings.NewReader(payload)
		out, err = cmd.Output()
		if err != nil {
			t.Fatalf("gclient via %s: %v %s", srv.Addr, err, out)
		}
		check("gclient via "+srv.Addr, strings.TrimSpace(string(out)), w)
	}
}
