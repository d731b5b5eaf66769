package jobs_test

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
)

// serve runs a worker with the default registry (built-ins and the
// examples) against addr until the test ends.
func serve(t *testing.T, addr string, roots ...string) {
	t.Helper()
	reg, err := jobs.Default(jobs.Options{Dirs: []string{"examples"}, Resize: jobs.ResizeOptions{Roots: roots}})
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]worker.FunctionConfig{}
	for _, name := range reg.Names() {
		h, _ := reg.Lookup(name)
		funcs[name] = worker.FunctionConfig{Handler: h}
	}
	w, err := worker.New(worker.Options{Servers: []string{addr}, Functions: funcs, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})
}

func checkResize(t *testing.T, out string, want []jobs.Size) {
	t.Helper()
	var res jobs.ResizeOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("resize result %q: %v", out, err)
	}
	if len(res.Files) != len(want) {
		t.Fatalf("resize wrote %d files, want %d: %s", len(res.Files), len(want), out)
	}
	for i, f := range res.Files {
		cfg, format := decodeFile(t, f.Path)
		if format != "jpeg" || cfg.Width != want[i].Width || cfg.Height != want[i].Height {
			t.Errorf("%s is %s %dx%d, want jpeg %dx%d", f.Path, format, cfg.Width, cfg.Height, want[i].Width, want[i].Height)
		}
	}
}

// TestEndToEnd: the gearman CLI and PHP's extension submit resize and
// executable jobs to gearmand and gserverd; a worker with the default
// registry serves them.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	gearman := testpeer.Require(t, "gearman")
	php := testpeer.RequirePHPGearman(t)
	src, err := filepath.Abs(samplePhoto)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			srv := tg.start(t)
			outDir := t.TempDir()
			serve(t, srv.Addr, filepath.Dir(src), outDir)
			host, port, _ := net.SplitHostPort(srv.Addr)
			run := func(t *testing.T, name string, args ...string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
				}
				return string(out)
			}

			t.Run("gearman CLI resize", func(t *testing.T) {
				in, _ := json.Marshal(jobs.ResizeInput{Source: src, OutputDir: filepath.Join(outDir, "cli"), Widths: []int{160, 64}})
				out := run(t, gearman, "-h", host, "-p", port, "-f", "resize", string(in))
				// The CLI appends "N% Complete" lines for WORK_STATUS.
				out, _, _ = strings.Cut(out, "50% Complete")
				checkResize(t, out, []jobs.Size{{Width: 160, Height: 107}, {Width: 64, Height: 43}})
			})
			t.Run("PHP resize", func(t *testing.T) {
				in, _ := json.Marshal(jobs.ResizeInput{Source: src, OutputDir: filepath.Join(outDir, "php"),
					Sizes: []jobs.Size{{Width: 100, Height: 100}}, Quality: 70})
				out := run(t, php, "testdata/client.php", host, port, "resize", string(in))
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 2 || lines[0] != "status:1/1" || !strings.HasPrefix(lines[1], "complete:") {
					t.Fatalf("php output %q, want status:1/1 then complete:", out)
				}
				checkResize(t, strings.TrimPrefix(lines[1], "complete:"), []jobs.Size{{Width: 100, Height: 67}})
			})
			t.Run("PHP resize of a missing file", func(t *testing.T) {
				in, _ := json.Marshal(jobs.ResizeInput{Source: filepath.Join(outDir, "nope.jpg"), OutputDir: outDir, Widths: []int{10}})
				out := run(t, php, "testdata/client.php", host, port, "resize", string(in))
				if !strings.HasPrefix(out, "exception:resize: not allowed: "+filepath.Join(outDir, "nope.jpg")) {
					t.Errorf("php output %q, want the missing-file exception", out)
				}
			})
			t.Run("gearman CLI shell example", func(t *testing.T) {
				// WORK_DATA "lines=1", the result " words=4\n", then one line per WORK_STATUS.
				out := run(t, gearman, "-h", host, "-p", port, "-f", "wordcount", "one two three four")
				if want := "lines=1 words=4\n" + "0% Complete\n50% Complete\n100% Complete\n"; out != want {
					t.Errorf("gearman output %q, want %q", out, want)
				}
			})
			t.Run("PHP client, PHP example", func(t *testing.T) {
				out := run(t, php, "testdata/client.php", host, port, "shout", "hey\nyou")
				want := "data:HEY\nstatus:1/2\ndata:YOU\nstatus:2/2\ncomplete:HEY\nYOU\n"
				if out != want {
					t.Errorf("php output %q, want %q", out, want)
				}
			})
			t.Run("PHP client, failing script", func(t *testing.T) {
				// PHP refuses an empty workload; a lone newline is empty to the script.
				out := run(t, php, "testdata/client.php", host, port, "wordcount", "\n")
				if want := "status:0/2\nexception:wordcount: the workload is empty\n"; out != want {
					t.Errorf("php output %q, want %q", out, want)
				}
			})
		})
	}
}
