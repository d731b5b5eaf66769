package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/draw"

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
}

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
	ErrResizeInput   = errors.New("resize: invalid input")
	ErrSourceMissing = errors.New("resize: source file does not exist")
	ErrNotAnImage    = errors.New("resize: source is not an image (JPEG or PNG)")
	ErrImageBomb     = errors.New("resize: image bomb")
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

	f, err := os.Open(in.Source)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fail(fmt.Errorf("%w: %s", ErrSourceMissing, in.Source))
		}
		return nil, fail(fmt.Errorf("resize: open source: %w", err))
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
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
	if _, err := f.Seek(0, 0); err != nil {
		return nil, fail(fmt.Errorf("resize: read source: %w", err))
	}
	src, _, err := image.Decode(f)
	if err != nil {
		return nil, fail(fmt.Errorf("%w: %s: %v", ErrNotAnImage, in.Source, err))
	}
	if err := os.MkdirAll(in.OutputDir, 0o755); err != nil {
		return nil, fail(fmt.Errorf("resize: output_dir: %w", err))
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
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
		path := filepath.Join(in.OutputDir, fmt.Sprintf("%s_%dx%d%s", stem, d.Width, d.Height, ext))
		n, err := writeImage(path, dst, format, quality)
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

// writeImage encodes img to path through a temporary file and a rename,
// so that readers never see half an image.
func writeImage(path string, img image.Image, format string, quality int) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".resize-*")
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
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, fmt.Errorf("resize: write %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("resize: write %s: %w", path, err)
	}
	return st.Size(), nil
}
