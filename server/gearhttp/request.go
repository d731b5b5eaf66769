package gearhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/gworkerd/gworkerd/protocol"
)

// method is a request method gearmand's plugin serves.
type method int

const (
	methodGet method = iota + 1
	methodHead
	methodPost
	methodPut
)

// defaultUnique is the unique ID of a request without X-Gearman-Unique:
// gearmand's plugin sends "-", which coalesces jobs by payload.
const defaultUnique = "-"

// request is a parsed request head.
type request struct {
	method method
	// function is the request target without its leading slashes, raw
	// (no percent-decoding; a query string is part of it), as gearmand.
	function string
	// contentLength is the body length: Content-Length of a POST or PUT,
	// 0 otherwise (gearmand reads no body for GET and HEAD).
	contentLength int64
	unique        string
	background    bool
	priority      protocol.Priority
}

// readRequest reads a request line and its headers from br, at most max
// bytes in all (gearmand's receive buffer is 8 KiB). Empty lines before
// the request line are skipped. It parses as gearmand 1.1.20's plugin
// (libgearman-server/plugins/protocol/http/protocol.cc):
//
//   - the method runs to the first space; GET, HEAD, POST and PUT are
//     served (case-sensitive). gearmand also takes TRACE but then never
//     answers (it waits for a body that will not come); here TRACE is
//     refused like any other method;
//   - after spaces, leading slashes are dropped and the function name runs
//     to the next space;
//   - after spaces, the rest must be exactly HTTP/1.0 or HTTP/1.1;
//   - header names are case-insensitive; Content-Length (POST and PUT
//     only), X-Gearman-Unique (empty: none), X-Gearman-Background (true,
//     case-insensitive, sets it), X-Gearman-Priority (high or low,
//     case-insensitive; anything else leaves normal). Other headers,
//     Connection included, are ignored. Unlike gearmand, which wants
//     exactly one space after the colon and keeps trailing spaces, the
//     value is trimmed of spaces and tabs (RFC 9110 optional whitespace).
func readRequest(br *bufio.Reader, max int) (request, error) {
	budget := max
	var line []byte
	var err error
	for len(line) == 0 {
		if line, err = readLine(br, &budget); err != nil {
			return request{}, err
		}
	}
	req := request{unique: defaultUnique, priority: protocol.Normal}
	if err := parseRequestLine(&req, line); err != nil {
		return request{}, err
	}
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return request{}, err
		}
		if len(line) == 0 {
			return req, nil
		}
		if err := parseHeader(&req, line); err != nil {
			return request{}, err
		}
	}
}

func parseRequestLine(req *request, line []byte) error {
	if bytes.IndexByte(line, 0) >= 0 {
		return errMalformed
	}
	name, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return errMalformed
	}
	switch string(name) {
	case "GET":
		req.method = methodGet
	case "HEAD":
		req.method = methodHead
	case "POST":
		req.method = methodPost
	case "PUT":
		req.method = methodPut
	default:
		return errBadMethod
	}
	rest = bytes.TrimLeft(rest, " ")
	rest = bytes.TrimLeft(rest, "/")
	target, version, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return errMalformed
	}
	switch string(bytes.TrimLeft(version, " ")) {
	case "HTTP/1.0", "HTTP/1.1":
	default:
		return errBadVersion
	}
	req.function = string(target)
	return nil
}

func parseHeader(req *request, line []byte) error {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return nil // gearmand ignores what it does not recognise
	}
	value = bytes.Trim(value, " \t")
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		if req.method != methodPost && req.method != methodPut {
			return nil
		}
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || n < 0 {
			return errMalformed
		}
		req.contentLength = n
	case bytes.EqualFold(name, []byte("X-Gearman-Unique")):
		if len(value) > 0 {
			if bytes.IndexByte(value, 0) >= 0 {
				return errMalformed
			}
			req.unique = string(value)
		}
	case bytes.EqualFold(name, []byte("X-Gearman-Background")):
		if bytes.EqualFold(value, []byte("true")) {
			req.background = true
		}
	case bytes.EqualFold(name, []byte("X-Gearman-Priority")):
		switch {
		case bytes.EqualFold(value, []byte("high")):
			req.priority = protocol.High
		case bytes.EqualFold(value, []byte("low")):
			req.priority = protocol.Low
		}
	}
	return nil
}

// readLine reads one line ending in \n, without it and without a \r
// before it, charging its length to budget.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		*budget -= len(chunk)
		if *budget < 0 {
			return nil, errHeadTooLarge
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
