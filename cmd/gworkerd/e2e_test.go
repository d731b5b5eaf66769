package main

import (
	"bytes"
	"context"
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

	"github.com/gworkerd/gworkerd/internal/sysproc"
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
	e.appendConfig(fmt.Sprintf("resize:\n  roots: [%s, %s]\n", filepath.Dir(sample), e.dir))
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

// The resize section reaches the resize children: with max_pixels below
// the sample photo's 640x427, resizing it fails as an image bomb; after
// a reload to jpeg_quality 7 without a limit, it succeeds and a job that
// gives no quality is encoded at 7 (byte for byte the output of a job
// asking for 7, unlike the built-in default 85).
func TestResizeConfig(t *testing.T) {
	t.Parallel()
	gs := testpeer.StartGserverd(t)
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(root, "jobs", "testdata", "sample.jpg")
	e := newEnv(t, gs.Addr, "  resize: {}\nresize:\n  max_pixels: 1000\n", 5*time.Second)
	e.appendConfig(fmt.Sprintf("  roots: [%s, %s]\n", filepath.Dir(sample), e.dir)) // within the resize section
	e.must("check")
	e.must("start")
	pid := e.masterPid()
	defer func() { e.run("stop"); reap(pid) }()
	waitFor(t, 20*time.Second, "a resize child", func() bool { return len(e.running("resize")) == 1 })
	first := e.running("resize")[0]

	resize := func(dir, quality string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		payload := fmt.Sprintf(`{"source":%q,"output_dir":%q,"widths":[200]%s}`, sample, filepath.Join(e.dir, dir), quality)
		return submitJob(ctx, gs.Addr, "resize", payload, false, true)
	}
	out, err := resize("limited", "")
	if err == nil {
		t.Fatalf("resize with max_pixels 1000 completed (%s); want an image bomb failure", out)
	}
	for _, want := range []string{"image bomb", "640x427", "above the limit of 1000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("resize with max_pixels 1000: %v; want it to say %q", err, want)
		}
	}

	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(string(cfg), "  max_pixels: 1000\n", "  jpeg_quality: 7\n", 1)
	if next == string(cfg) {
		t.Fatalf("config %q has no max_pixels line", cfg)
	}
	if err := os.WriteFile(e.cfg, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("reload")
	waitFor(t, 20*time.Second, "the resize child replaced", func() bool {
		got := e.running("resize")
		return len(got) == 1 && got[0] != first && len(e.status().Children) == 1 && !sysproc.Alive(first)
	})
	file := func(name, dir, quality string) []byte {
		t.Helper()
		out, err := resize(dir, quality)
		if err != nil {
			t.Fatalf("%s: %v\nlog:\n%s", name, err, e.logTail())
		}
		var r struct{ Files []struct{ Path string } }
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Files) != 1 {
			t.Fatalf("%s: result %q: %v", name, out, err)
		}
		b, err := os.ReadFile(r.Files[0].Path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return b
	}
	configured := file("no quality", "configured", "")
	asked7 := file("quality 7", "q7", `,"quality":7`)
	asked85 := file("quality 85", "q85", `,"quality":85`)
	if !bytes.Equal(configured, asked7) {
		t.Errorf("a job without quality wrote %d bytes, a job asking for 7 wrote %d; want the same image (jpeg_quality: 7)", len(configured), len(asked7))
	}
	if bytes.Equal(configured, asked85) {
		t.Errorf("a job without quality wrote the image of quality 85, the built-in default; want jpeg_quality: 7")
	}
}
