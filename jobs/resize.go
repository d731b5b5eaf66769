package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/draw"
	"golang.org/x/sys/unix"

	"github.com/gworkerd/gworkerd/worker"
)

// ResizeOptions configure the resize handler. Zero fields take the
// defaults stated here.
type ResizeOptions struct {
	// MaxPixels bounds the source image (width × height, read from the
	// header before decoding) and every output. Default 40 million.
	MaxPixels int64
	// MaxSizes bounds the number of outputs per job. Default 32.
	MaxSizes int
	// Quality is the JPEG quality when the input gives none. Default 85.
	Quality int
	// Roots are the directories sources are read from and outputs written
	// into: a source or an output_dir is allowed only if, cleaned and with
	// the symbolic links of its existing part resolved, it lies within
	// one of them (resolved alike). Default none: every job is refused.
	Roots []string
	// MaxSourceBytes bounds the size of a source file. Default 256 MiB.
	MaxSourceBytes int64
}

// DefaultMaxSourceBytes is ResizeOptions.MaxSourceBytes's default.
const DefaultMaxSourceBytes = 256 << 20

// ResizeInput is the resize job's workload (JSON).
type ResizeInput struct {
	// Source is the image to resize, JPEG or PNG.
	Source string `json:"source"`
	// OutputDir receives the outputs; it is created if missing.
	OutputDir string `json:"output_dir"`
	// Sizes are boxes the outputs fit in, keeping the aspect ratio. A zero
	// width or height is derived from the other side.
	Sizes []Size `json:"sizes,omitempty"`
	// Widths is a shorthand for sizes with only a width.
	Widths []int `json:"widths,omitempty"`
	// Quality is the JPEG quality, 1..100. Default ResizeOptions.Quality.
	Quality int `json:"quality,omitempty"`
}

// Size is a width and a height in pixels.
type Size struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// ResizeOutput is the resize job's result (JSON).
type ResizeOutput struct {
	Source string `json:"source"`
	Format string `json:"format"` // "jpeg" or "png"
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Files  []File `json:"files"`
}

// File is one image written by resize.
type File struct {
	Path   string `json:"path"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
}

// Resize errors; the job fails with one of them wrapped, as an exception
// whose message says which.
var (
	ErrResizeInput = errors.New("resize: invalid input")
	// ErrNotAllowed refuses a source or an output_dir outside
	// ResizeOptions.Roots, a source that is missing, not a regular file or
	// above MaxSourceBytes: one message for all, so that a job cannot
	// learn whether a file exists.
	ErrNotAllowed = errors.New("resize: not allowed")
	ErrNotAnImage = errors.New("resize: source is not an image (JPEG or PNG)")
	ErrImageBomb  = errors.New("resize: image bomb")
)

// resize is the built-in resize handler.
type resize struct{ opts ResizeOptions }

// NewResize returns the resize handler: it reads a ResizeInput, writes
// one image per size with Catmull-Rom resampling into the output
// directory, named <source stem>_<W>x<H>.<ext>, in the source's format,
// and returns a ResizeOutput. It sends WORK_STATUS i/n after each output.
func NewResize(opts ResizeOptions) worker.Handler {
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = 40_000_000
	}
	if opts.MaxSizes <= 0 {
		opts.MaxSizes = 32
	}
	if opts.Quality <= 0 || opts.Quality > 100 {
		opts.Quality = 85
	}
	if opts.MaxSourceBytes <= 0 {
		opts.MaxSourceBytes = DefaultMaxSourceBytes
	}
	opts.Roots = append([]string(nil), opts.Roots...)
	return &resize{opts: opts}
}

// fail marks a job error as not worth retrying and as an exception, so
// that clients asking for exceptions get the message.
func fail(err error) error { return worker.Exception(worker.Permanent(err)) }

func (r *resize) Run(ctx context.Context, job worker.Job) ([]byte, error) {
	var in ResizeInput
	if err := json.Unmarshal(job.Payload(), &in); err != nil {
		return nil, fail(fmt.Errorf("%w: %v", ErrResizeInput, err))
	}
	out, err := r.resize(ctx, job, in)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func (r *resize) resize(ctx context.Context, job worker.Job, in ResizeInput) (*ResizeOutput, error) {
	sizes := append([]Size(nil), in.Sizes...)
	for _, w := range in.Widths {
		sizes = append(sizes, Size{Width: w})
	}
	switch {
	case in.Source == "":
		return nil, fail(fmt.Errorf("%w: no source", ErrResizeInput))
	case in.OutputDir == "":
		return nil, fail(fmt.Errorf("%w: no output_dir", ErrResizeInput))
	case len(sizes) == 0:
		return nil, fail(fmt.Errorf("%w: no sizes or widths", ErrResizeInput))
	case len(sizes) > r.opts.MaxSizes:
		return nil, fail(fmt.Errorf("%w: %d sizes, at most %d", ErrResizeInput, len(sizes), r.opts.MaxSizes))
	case in.Quality < 0 || in.Quality > 100:
		return nil, fail(fmt.Errorf("%w: quality %d not in 1..100", ErrResizeInput, in.Quality))
	}
	for _, s := range sizes {
		if s.Width < 0 || s.Height < 0 || (s.Width == 0 && s.Height == 0) {
			return nil, fail(fmt.Errorf("%w: size %dx%d", ErrResizeInput, s.Width, s.Height))
		}
	}
	quality := in.Quality
	if quality == 0 {
		quality = r.opts.Quality
	}

	f, err := r.openSource(in.Source)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() > r.opts.MaxSourceBytes {
		return nil, r.notAllowed(in.Source)
	}
	// Read no further than the size checked, should the file grow.
	src := io.NewSectionReader(f, 0, st.Size())
	cfg, format, err := image.DecodeConfig(src)
	if err != nil || (format != "jpeg" && format != "png") {
		return nil, fail(fmt.Errorf("%w: %s", ErrNotAnImage, in.Source))
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > r.opts.MaxPixels || cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fail(fmt.Errorf("%w: %s is %dx%d = %d pixels, above the limit of %d",
			ErrImageBomb, in.Source, cfg.Width, cfg.Height, px, r.opts.MaxPixels))
	}
	dims := make([]Size, len(sizes))
	for i, s := range sizes {
		dims[i] = fit(cfg.Width, cfg.Height, s)
		if px := int64(dims[i].Width) * int64(dims[i].Height); px > r.opts.MaxPixels {
			return nil, fail(fmt.Errorf("%w: output %dx%d = %d pixels, above the limit of %d",
				ErrImageBomb, dims[i].Width, dims[i].Height, px, r.opts.MaxPixels))
		}
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return nil, fail(fmt.Errorf("resize: read source: %w", err))
	}
	img, _, err := image.Decode(src)
	if err != nil {
		return nil, fail(fmt.Errorf("%w: %s: %v", ErrNotAnImage, in.Source, err))
	}
	outDir, err := r.outputDir(in.OutputDir)
	if err != nil {
		return nil, err
	}

	stem := strings.TrimSuffix(filepath.Base(in.Source), filepath.Ext(in.Source))
	ext := ".jpg"
	if format == "png" {
		ext = ".png"
	}
	out := &ResizeOutput{Source: in.Source, Format: format, Width: cfg.Width, Height: cfg.Height}
	for i, d := range dims {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dst := image.NewRGBA(image.Rect(0, 0, d.Width, d.Height))
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
		name := fmt.Sprintf("%s_%dx%d%s", stem, d.Width, d.Height, ext)
		path := filepath.Join(in.OutputDir, name)
		n, err := writeImage(filepath.Join(outDir, name), path, dst, format, quality)
		if err != nil {
			return nil, err
		}
		out.Files = append(out.Files, File{Path: path, Width: d.Width, Height: d.Height, Bytes: n})
		if err := job.SendStatus(ctx, i+1, len(dims)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fit returns the size of a w×h image scaled to fit box, keeping the
// aspect ratio; a zero side of box is unconstrained. Never below 1×1.
func fit(w, h int, box Size) Size {
	scale := math.Inf(1)
	if box.Width > 0 {
		scale = float64(box.Width) / float64(w)
	}
	if box.Height > 0 {
		scale = min(scale, float64(box.Height)/float64(h))
	}
	return Size{
		Width:  max(1, int(math.Round(float64(w)*scale))),
		Height: max(1, int(math.Round(float64(h)*scale))),
	}
}

// writeImage encodes img to dst through a temporary file and a rename,
// so that readers never see half an image; errors name path, the output
// as the job gave it.
func writeImage(dst, path string, img image.Image, format string, quality int) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".resize-*")
	if err != nil {
		return 0, fmt.Errorf("resize: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if format == "png" {
		err = png.Encode(tmp, img)
	} else {
		err = jpeg.Encode(tmp, img, &jpeg.Options{Quality: quality})
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return 0, fmt.Errorf("resize: write %s: %w", path, err)
	}
	st, err := os.Lstat(dst)
	if err != nil {
		return 0, fmt.Errorf("resize: write %s: %w", path, err)
	}
	return st.Size(), nil
}

// notAllowed is the one refusal of a path, whatever the reason.
func (r *resize) notAllowed(path string) error {
	if len(r.opts.Roots) == 0 {
		return fail(fmt.Errorf("%w: %s (resize.roots allows no directory)", ErrNotAllowed, path))
	}
	return fail(fmt.Errorf("%w: %s", ErrNotAllowed, path))
}

// openSource opens path, if it lies within a root, for reading without
// following a final symbolic link and without blocking (a FIFO or a
// terminal opens at once; the caller then refuses what is not a regular
// file). Every failure is notAllowed.
func (r *resize) openSource(path string) (*os.File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, r.notAllowed(path)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil || !r.within(real) {
		return nil, r.notAllowed(path)
	}
	fd, err := unix.Open(real, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, r.notAllowed(path)
	}
	return os.NewFile(uintptr(fd), real), nil
}

// outputDir returns the directory dir resolves to, created if missing,
// if it lies within a root.
func (r *resize) outputDir(dir string) (string, error) {
	real, err := resolve(dir)
	if err != nil || !r.within(real) {
		return "", r.notAllowed(dir)
	}
	if err := os.MkdirAll(real, 0o755); err != nil {
		return "", fail(fmt.Errorf("resize: output_dir %s: %w", dir, err))
	}
	// A symbolic link put in place meanwhile must still lead into a root.
	if again, err := filepath.EvalSymlinks(real); err != nil || !r.within(again) {
		return "", r.notAllowed(dir)
	}
	return real, nil
}

// within reports whether the resolved absolute path p lies within a root.
func (r *resize) within(p string) bool {
	for _, root := range r.opts.Roots {
		real, err := resolve(root)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(real, p)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// resolve returns the absolute, cleaned path p with the symbolic links of
// its longest existing ancestor resolved; the missing rest (which, cleaned,
// holds no "..") is appended as it is.
func resolve(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
