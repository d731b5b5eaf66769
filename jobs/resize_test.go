package jobs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
)

// samplePhoto is the 640x427 JPEG shipped for `make run`.
const samplePhoto = "testdata/sample.jpg"

// writePNG writes a w×h PNG with an alpha gradient.
func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 200, uint8(255 * x / w)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeBombPNG writes a PNG whose header claims w×h pixels, with no image
// data: decoding the header is cheap, decoding the image would not be.
func writeBombPNG(t *testing.T, path string, w, h uint32) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeFile(t *testing.T, path string) (image.Config, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		t.Fatalf("output %s is not an image: %v", path, err)
	}
	return cfg, format
}

func TestResize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pngSrc := filepath.Join(dir, "logo.png")
	writePNG(t, pngSrc, 300, 200)
	bomb := filepath.Join(dir, "bomb.png")
	writeBombPNG(t, bomb, 100000, 100000)
	text := filepath.Join(dir, "notes.jpg")
	if err := os.WriteFile(text, []byte("just some text, not a JPEG"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		in         jobs.ResizeInput
		wantFormat string
		want       []jobs.Size // output dimensions, in order
		wantErr    error
		wantMsg    string // substring of the exception message
	}{
		{name: "widths keep the aspect ratio", in: jobs.ResizeInput{Source: samplePhoto, Widths: []int{320, 100}},
			wantFormat: "jpeg", want: []jobs.Size{{Width: 320, Height: 214}, {Width: 100, Height: 67}}},
		{name: "box fits the longer side", in: jobs.ResizeInput{Source: samplePhoto, Sizes: []jobs.Size{{Width: 200, Height: 200}}},
			wantFormat: "jpeg", want: []jobs.Size{{Width: 200, Height: 133}}},
		{name: "height only", in: jobs.ResizeInput{Source: samplePhoto, Sizes: []jobs.Size{{Height: 100}}},
			wantFormat: "jpeg", want: []jobs.Size{{Width: 150, Height: 100}}},
		{name: "png stays png", in: jobs.ResizeInput{Source: pngSrc, Sizes: []jobs.Size{{Width: 150, Height: 150}}, Widths: []int{30}},
			wantFormat: "png", want: []jobs.Size{{Width: 150, Height: 100}, {Width: 30, Height: 20}}},
		{name: "missing file", in: jobs.ResizeInput{Source: filepath.Join(dir, "nope.jpg"), Widths: []int{10}},
			wantErr: jobs.ErrNotAllowed, wantMsg: "not allowed"},
		{name: "not an image", in: jobs.ResizeInput{Source: text, Widths: []int{10}},
			wantErr: jobs.ErrNotAnImage, wantMsg: "not an image"},
		{name: "image bomb", in: jobs.ResizeInput{Source: bomb, Widths: []int{10}},
			wantErr: jobs.ErrImageBomb, wantMsg: "100000x100000"},
		{name: "output bomb", in: jobs.ResizeInput{Source: samplePhoto, Widths: []int{100000}},
			wantErr: jobs.ErrImageBomb, wantMsg: "output"},
		{name: "no sizes", in: jobs.ResizeInput{Source: samplePhoto},
			wantErr: jobs.ErrResizeInput, wantMsg: "no sizes"},
		{name: "bad size", in: jobs.ResizeInput{Source: samplePhoto, Sizes: []jobs.Size{{Width: -5}}},
			wantErr: jobs.ErrResizeInput, wantMsg: "-5x0"},
		{name: "bad quality", in: jobs.ResizeInput{Source: samplePhoto, Widths: []int{10}, Quality: 101},
			wantErr: jobs.ErrResizeInput, wantMsg: "quality"},
	}
	outRoot := t.TempDir()
	h := jobs.NewResize(jobs.ResizeOptions{MaxPixels: 10_000_000, Roots: []string{"testdata", dir, outRoot}})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := tt.in
			in.OutputDir = filepath.Join(outRoot, fmt.Sprint(i), "out")
			payload, _ := json.Marshal(in)
			job := newJob("resize", string(payload))
			res, err := h.Run(context.Background(), job)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				var ex *worker.ExceptionError
				if !errors.As(err, &ex) || !strings.Contains(ex.Error(), tt.wantMsg) {
					t.Errorf("exception message %q, want it to contain %q", err, tt.wantMsg)
				}
				var perm *worker.PermanentError
				if !errors.As(err, &perm) {
					t.Errorf("err %v is not permanent: it would be retried", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resize: %v", err)
			}
			var out jobs.ResizeOutput
			if err := json.Unmarshal(res, &out); err != nil {
				t.Fatalf("result %q: %v", res, err)
			}
			if out.Format != tt.wantFormat {
				t.Errorf("format %q, want %q", out.Format, tt.wantFormat)
			}
			var got []jobs.Size
			for _, f := range out.Files {
				cfg, format := decodeFile(t, f.Path)
				if format != tt.wantFormat || cfg.Width != f.Width || cfg.Height != f.Height {
					t.Errorf("%s: file is %s %dx%d, result says %s %dx%d", f.Path, format, cfg.Width, cfg.Height, out.Format, f.Width, f.Height)
				}
				if st, err := os.Stat(f.Path); err != nil || st.Size() != f.Bytes {
					t.Errorf("%s: size on disk differs from %d bytes", f.Path, f.Bytes)
				}
				got = append(got, jobs.Size{Width: f.Width, Height: f.Height})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("outputs %v, want %v", got, tt.want)
			}
			status, _, _ := job.sent()
			if len(status) != len(tt.want) || status[len(status)-1] != fmt.Sprintf("%d/%d", len(tt.want), len(tt.want)) {
				t.Errorf("status updates %v, want one per output ending at n/n", status)
			}
		})
	}
}

// TestResizeQuality: a higher JPEG quality gives a larger file.
func TestResizeQuality(t *testing.T) {
	t.Parallel()
	outRoot := t.TempDir()
	h := jobs.NewResize(jobs.ResizeOptions{Roots: []string{"testdata", outRoot}})
	sizeAt := func(q int) int64 {
		in := jobs.ResizeInput{Source: samplePhoto, OutputDir: filepath.Join(outRoot, fmt.Sprint(q)), Widths: []int{400}, Quality: q}
		payload, _ := json.Marshal(in)
		res, err := h.Run(context.Background(), newJob("resize", string(payload)))
		if err != nil {
			t.Fatalf("quality %d: %v", q, err)
		}
		var out jobs.ResizeOutput
		if err := json.Unmarshal(res, &out); err != nil {
			t.Fatal(err)
		}
		return out.Files[0].Bytes
	}
	low, high := sizeAt(20), sizeAt(95)
	if low >= high {
		t.Errorf("quality 20 gave %d bytes, quality 95 gave %d: want fewer bytes at low quality", low, high)
	}
}

// TestResizeInvalidJSON: a workload that is not JSON fails with a message.
func TestResizeInvalidJSON(t *testing.T) {
	t.Parallel()
	_, err := jobs.NewResize(jobs.ResizeOptions{}).Run(context.Background(), newJob("resize", "{not json"))
	if !errors.Is(err, jobs.ErrResizeInput) {
		t.Fatalf("err = %v, want ErrResizeInput", err)
	}
}

// TestResizeRoots: a job reads and writes only within resize.roots,
// opens only regular files of at most MaxSourceBytes without blocking,
// and every refusal reads the same, so that a job cannot learn whether a
// file exists.
func TestResizeRoots(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	photo, err := os.ReadFile(samplePhoto)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(root, "in.jpg"), filepath.Join(outside, "secret.jpg")} {
		if err := os.WriteFile(p, photo, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"escape.jpg": filepath.Join(outside, "secret.jpg"), // a file outside
		"escape":     outside,                              // a directory outside
		"inside.jpg": filepath.Join(root, "in.jpg"),        // a file inside
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(root, "fifo.jpg") // what /proc/self/fd/1 may be: opening it blocks
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	tests := []struct {
		name, source, outputDir string
		allowed                 bool
	}{
		{"file and output within the root", filepath.Join(root, "in.jpg"), out, true},
		{"symbolic link within the root", filepath.Join(root, "inside.jpg"), filepath.Join(root, "new", "deep"), true},
		{"source outside", filepath.Join(outside, "secret.jpg"), out, false},
		{"missing source outside", filepath.Join(outside, "nope.jpg"), out, false},
		{"missing source inside", filepath.Join(root, "nope.jpg"), out, false},
		{"dot-dot escape", filepath.Join(root, "..", filepath.Base(outside), "secret.jpg"), out, false},
		{"symbolic link escape", filepath.Join(root, "escape.jpg"), out, false},
		{"source through a linked directory", filepath.Join(root, "escape", "secret.jpg"), out, false},
		{"FIFO inside the root", fifo, out, false},
		{"directory inside the root", filepath.Join(root, "dir.jpg"), out, false},
		{"standard output", "/proc/self/fd/1", out, false},
		{"a device", "/dev/zero", out, false},
		{"relative source", "in.jpg", out, false},
		{"output outside", filepath.Join(root, "in.jpg"), filepath.Join(outside, "out"), false},
		{"output dot-dot escape", filepath.Join(root, "in.jpg"), root + "/out/../../" + filepath.Base(outside), false},
		{"output through a linked directory", filepath.Join(root, "in.jpg"), filepath.Join(root, "escape", "sub"), false},
	}
	h := jobs.NewResize(jobs.ResizeOptions{Roots: []string{root}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			payload, _ := json.Marshal(jobs.ResizeInput{Source: tt.source, OutputDir: tt.outputDir, Widths: []int{10}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := h.Run(ctx, newJob("resize", string(payload)))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				t.Fatalf("resize of %s still running after 10s: it blocks", tt.source)
			}
			if tt.allowed {
				if err != nil {
					t.Fatalf("resize: %v, want success", err)
				}
				return
			}
			refused := tt.outputDir
			if strings.HasPrefix(tt.outputDir, root+string(filepath.Separator)) && !strings.Contains(tt.outputDir, "..") && !strings.Contains(tt.outputDir, "escape") {
				refused = tt.source
			}
			if want := "resize: not allowed: " + refused; err == nil || err.Error() != want {
				t.Errorf("err = %v, want exactly %q", err, want)
			}
			if !errors.Is(err, jobs.ErrNotAllowed) {
				t.Errorf("err %v is not ErrNotAllowed", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(outside, "out")); err == nil {
		t.Errorf("an output directory was created outside the roots")
	}
}

// TestResizeRootsOversize: a source above MaxSourceBytes is refused like
// any other, before it is read.
func TestResizeRootsOversize(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	h := jobs.NewResize(jobs.ResizeOptions{Roots: []string{"testdata", root}, MaxSourceBytes: 1000})
	payload, _ := json.Marshal(jobs.ResizeInput{Source: samplePhoto, OutputDir: root, Widths: []int{10}})
	_, err := h.Run(context.Background(), newJob("resize", string(payload)))
	if want := "resize: not allowed: " + samplePhoto; err == nil || err.Error() != want {
		t.Errorf("err = %v, want exactly %q", err, want)
	}
}

// TestResizeNoRoots: without roots every job is refused, naming the key.
func TestResizeNoRoots(t *testing.T) {
	t.Parallel()
	payload, _ := json.Marshal(jobs.ResizeInput{Source: samplePhoto, OutputDir: t.TempDir(), Widths: []int{10}})
	_, err := jobs.NewResize(jobs.ResizeOptions{}).Run(context.Background(), newJob("resize", string(payload)))
	if !errors.Is(err, jobs.ErrNotAllowed) || !strings.Contains(err.Error(), "resize.roots") {
		t.Errorf("err = %v, want not allowed naming resize.roots", err)
	}
}
