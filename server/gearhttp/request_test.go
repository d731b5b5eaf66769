package gearhttp

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gworkerd/gworkerd/protocol"
)

// requestCases are heads readRequest must parse (want) or refuse (err).
func requestCases() []struct {
	name, in string
	want     request
	err      error
} {
	post := func(fn string) request {
		return request{method: methodPost, function: fn, unique: "-", priority: protocol.Normal}
	}
	with := func(r request, f func(*request)) request { f(&r); return r }
	return []struct {
		name, in string
		want     request
		err      error
	}{
		{"post", "POST /rev HTTP/1.1\r\nContent-Length: 5\r\n\r\n", with(post("rev"), func(r *request) { r.contentLength = 5 }), nil},
		{"http/1.0, LF only", "POST /rev HTTP/1.0\n\n", post("rev"), nil},
		{"empty lines before", "\r\n\r\nPOST /rev HTTP/1.0\r\n\r\n", post("rev"), nil},
		{"headers", "POST /f HTTP/1.1\r\nx-gearman-unique:  k1 \r\nX-GEARMAN-BACKGROUND: TRUE\r\nX-Gearman-Priority: high\r\nConnection: keep-alive\r\nno colon\r\n\r\n",
			with(post("f"), func(r *request) { r.unique = "k1"; r.background = true; r.priority = protocol.High }), nil},
		{"low priority, unknown values ignored", "POST /f HTTP/1.1\r\nX-Gearman-Priority: low\r\nX-Gearman-Priority: urgent\r\nX-Gearman-Background: yes\r\n\r\n",
			with(post("f"), func(r *request) { r.priority = protocol.Low }), nil},
		{"a later false does not undo background", "POST /f HTTP/1.1\r\nX-Gearman-Background: true\r\nX-Gearman-Background: false\r\n\r\n",
			with(post("f"), func(r *request) { r.background = true }), nil},
		{"empty unique is none", "POST /f HTTP/1.1\r\nX-Gearman-Unique:\r\n\r\n", post("f"), nil},
		{"slashes, spaces, query kept raw", "POST  ///a%20b?x=1  HTTP/1.0\r\n\r\n", post("a%20b?x=1"), nil},
		{"no function", "POST / HTTP/1.0\r\n\r\n", post(""), nil},
		{"get ignores Content-Length", "GET /f HTTP/1.0\r\nContent-Length: 3\r\n\r\n", request{method: methodGet, function: "f", unique: "-", priority: protocol.Normal}, nil},
		{"head", "HEAD /f HTTP/1.0\r\n\r\n", request{method: methodHead, function: "f", unique: "-", priority: protocol.Normal}, nil},
		{"put", "PUT /f HTTP/1.0\r\nContent-Length: 0\r\n\r\n", request{method: methodPut, function: "f", unique: "-", priority: protocol.Normal}, nil},
		{"no version", "POST /rev\r\n\r\n", request{}, errMalformed},
		{"no space", "garbage\r\n\r\n", request{}, errMalformed},
		{"method is case-sensitive", "post /rev HTTP/1.0\r\n\r\n", request{}, errBadMethod},
		{"delete", "DELETE /rev HTTP/1.0\r\n\r\n", request{}, errBadMethod},
		{"trace", "TRACE / HTTP/1.0\r\n\r\n", request{}, errBadMethod},
		{"http/2.0", "POST /rev HTTP/2.0\r\n\r\n", request{}, errBadVersion},
		{"trailing space after the version", "POST /rev HTTP/1.0 \r\n\r\n", request{}, errBadVersion},
		{"NUL in the function", "POST /a\x00b HTTP/1.0\r\n\r\n", request{}, errMalformed},
		{"NUL in the unique", "POST /a HTTP/1.0\r\nX-Gearman-Unique: a\x00b\r\n\r\n", request{}, errMalformed},
		{"bad Content-Length", "POST /a HTTP/1.0\r\nContent-Length: five\r\n\r\n", request{}, errMalformed},
		{"negative Content-Length", "POST /a HTTP/1.0\r\nContent-Length: -1\r\n\r\n", request{}, errMalformed},
		{"head over 8 KiB", "POST /a HTTP/1.0\r\nX-Pad: " + strings.Repeat("p", maxHead) + "\r\n\r\n", request{}, errHeadTooLarge},
		{"empty lines over 8 KiB", strings.Repeat("\r\n", maxHead), request{}, errHeadTooLarge},
		{"cut in the headers", "POST /a HTTP/1.0\r\nContent-Le", request{}, io.ErrUnexpectedEOF},
		{"cut after a header", "POST /a HTTP/1.0\r\n", request{}, io.EOF},
		{"nothing", "", request{}, io.EOF},
	}
}

func TestReadRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range requestCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Whole, and one byte per read: every split offset.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readRequest(bufio.NewReaderSize(r, 16), maxHead)
				if !errors.Is(err, tc.err) {
					t.Fatalf("readRequest(%q) error %v, want %v", tc.in, err, tc.err)
				}
				if err == nil && got != tc.want {
					t.Errorf("readRequest(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
				}
			}
		})
	}
}

// FuzzReadRequest: readRequest never panics, never reads more than the
// head bound, and what it accepts is a function and unique without NUL.
func FuzzReadRequest(f *testing.F) {
	for _, tc := range requestCases() {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &countReader{r: strings.NewReader(string(in))}
		req, err := readRequest(bufio.NewReaderSize(r, 64), maxHead)
		if r.n > maxHead+64 {
			t.Fatalf("read %d bytes, the bound is %d", r.n, maxHead)
		}
		if err != nil {
			return
		}
		if strings.IndexByte(req.function, 0) >= 0 || strings.IndexByte(req.unique, 0) >= 0 || req.unique == "" {
			t.Fatalf("accepted %+v", req)
		}
		if req.contentLength < 0 || (req.contentLength > 0 && req.method != methodPost && req.method != methodPut) {
			t.Fatalf("content length %d for method %d", req.contentLength, req.method)
		}
	})
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
