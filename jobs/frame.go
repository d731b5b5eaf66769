package jobs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Frame types of the resident protocol (README.md, "The resident
// protocol"). Requests go from gworkerd to the handler on its fd 3,
// replies from the handler to gworkerd on its fd 4.
const (
	FrameJob       byte = 'J' // request: handle, function, unique, attempt, workload
	FrameHello     byte = 'H' // reply: "1 ..." once the code is loaded
	FrameStatus    byte = 'S' // reply: numerator, denominator (uint32 BE each)
	FrameData      byte = 'D' // reply: WORK_DATA
	FrameWarning   byte = 'W' // reply: WORK_WARNING
	FrameComplete  byte = 'C' // reply: the result; ends the job
	FrameFail      byte = 'F' // reply: WORK_FAIL; ends the job
	FrameException byte = 'E' // reply: the message; ends the job
)

// ResidentVersion is the protocol version a hello must start with.
const ResidentVersion = "1"

// DefaultMaxFrame bounds the body of a frame read from a handler.
const DefaultMaxFrame = 64 << 20

// frameHeader is the type byte and the 4-byte big-endian body length.
const frameHeader = 5

// ErrFrame: a frame that breaks the resident protocol.
var ErrFrame = errors.New("jobs: resident protocol error")

// Frame is one frame of the resident protocol.
type Frame struct {
	Type byte
	Body []byte
}

// ReadFrame reads one frame from r. A body longer than max (default
// DefaultMaxFrame) is an ErrFrame error and is not buffered. A clean end
// of input before the first byte returns io.EOF; one inside a frame
// io.ErrUnexpectedEOF.
func ReadFrame(r *bufio.Reader, max int) (Frame, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if uint64(n) > uint64(max) {
		return Frame{}, fmt.Errorf("%w: %q frame of %d bytes, above the limit of %d", ErrFrame, h[0], n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Type: h[0], Body: body}, nil
}

// AppendFrame appends a frame of type t whose body is the given fields,
// each with its 4-byte big-endian length. With raw set, the single field
// is the body itself, without a length (the reply frames).
func AppendFrame(dst []byte, t byte, raw bool, fields ...[]byte) []byte {
	n := 0
	for _, f := range fields {
		n += len(f)
		if !raw {
			n += 4
		}
	}
	dst = append(dst, t)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for _, f := range fields {
		if !raw {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		}
		dst = append(dst, f...)
	}
	return dst
}

// JobFrame is the body of a J frame, decoded.
type JobFrame struct {
	Handle, Function, Unique string
	Attempt                  int
	Workload                 []byte
}

// AppendJobFrame appends the J frame of a job.
func AppendJobFrame(dst []byte, j JobFrame) []byte {
	return AppendFrame(dst, FrameJob, false, []byte(j.Handle), []byte(j.Function), []byte(j.Unique),
		[]byte(strconv.Itoa(j.Attempt)), j.Workload)
}

// ParseJobFrame decodes the body of a J frame: five fields or more (the
// ones after the fifth are ignored, as runtimes must).
func ParseJobFrame(body []byte) (JobFrame, error) {
	var f [5][]byte
	for i := range f {
		if len(body) < 4 {
			return JobFrame{}, fmt.Errorf("%w: job frame has %d fields, want 5", ErrFrame, i)
		}
		n := binary.BigEndian.Uint32(body)
		body = body[4:]
		if uint64(n) > uint64(len(body)) {
			return JobFrame{}, fmt.Errorf("%w: job field %d is %d bytes, %d left", ErrFrame, i+1, n, len(body))
		}
		f[i], body = body[:n], body[n:]
	}
	attempt, err := strconv.Atoi(string(f[3]))
	if err != nil || attempt < 1 {
		return JobFrame{}, fmt.Errorf("%w: attempt %q", ErrFrame, f[3])
	}
	return JobFrame{Handle: string(f[0]), Function: string(f[1]), Unique: string(f[2]), Attempt: attempt, Workload: f[4]}, nil
}

// ParseStatus decodes the body of an S frame.
func ParseStatus(body []byte) (num, den uint32, err error) {
	if len(body) != 8 {
		return 0, 0, fmt.Errorf("%w: status frame of %d bytes, want 8", ErrFrame, len(body))
	}
	return binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:]), nil
}
