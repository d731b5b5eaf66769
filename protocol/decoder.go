package protocol

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Default limits, as in docs/PROTOCOL.md section 0.
const (
	// DefaultMaxPayload bounds a packet's payload (the bytes after the header).
	DefaultMaxPayload = 64 << 20
	// DefaultMaxArgs bounds the NUL-terminated arguments of one packet
	// together, like gearmand's 8 KiB receive buffer less the header.
	DefaultMaxArgs = 8192 - HeaderSize
	// DefaultMaxLine bounds an admin text line, terminator included.
	DefaultMaxLine = 8192
)

// Limits bound what a Decoder buffers. Zero fields take the defaults.
type Limits struct {
	// MaxPayload is the largest payload accepted; default DefaultMaxPayload.
	MaxPayload uint32
	// MaxArgs is the largest total of NUL-terminated arguments in one
	// packet, and the largest payload of a type without opaque data
	// (CAN_DO, GET_STATUS, WORK_STATUS, ...); default DefaultMaxArgs.
	MaxArgs int
	// MaxLine is the longest admin text line; default DefaultMaxLine.
	MaxLine int
}

func (l Limits) withDefaults() Limits {
	if l.MaxPayload == 0 {
		l.MaxPayload = DefaultMaxPayload
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = DefaultMaxArgs
	}
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	return l
}

// Frame is one unit read from a Gearman connection: a binary packet, or an
// admin text line (when the first byte of a frame is not NUL).
type Frame struct {
	// Text is true for an admin text line.
	Text bool
	// Line is the text line without its "\n" and a trailing "\r".
	Line []byte
	// Packet is the binary packet when Text is false.
	Packet Packet
	// Skipped is true for a packet whose payload the Decoder's admit
	// function refused (SetAdmit): the payload was read and discarded,
	// and Packet has its magic and type but no arguments.
	Skipped bool
}

type decState uint8

const (
	stStart decState = iota
	stHeader
	stPayload
	stLine
)

// Decoder splits a byte stream into frames. It is resumable: input may be
// cut anywhere and fed in pieces. It checks every size against its Limits
// before buffering, so a peer cannot make it allocate more than
// MaxPayload (grown as bytes arrive, never from the announced size alone),
// or MaxLine for text. A Decoder is not safe for concurrent use.
type Decoder struct {
	lim Limits

	st    decState
	hdr   [HeaderSize]byte
	hn    int
	magic Magic
	typ   Type
	size  uint32
	buf   []byte // payload or text line being accumulated
	args  [][]byte

	admit   func(Type, uint32) bool
	skip    bool   // the payload being read is discarded
	skipped uint32 // bytes of it discarded so far
}

// SetAdmit sets a function that the Decoder calls with the type and
// size of each packet whose payload is larger than min, once its header
// is read and before any of its payload is buffered. When it returns
// false, the payload is read and discarded, and Next returns the packet
// with Frame.Skipped set. A server uses it to refuse a large payload it
// has no memory for without buffering it. nil (the default) admits all.
func (d *Decoder) SetAdmit(min uint32, admit func(Type, uint32) bool) {
	if admit == nil {
		d.admit = nil
		return
	}
	d.admit = func(t Type, size uint32) bool { return size <= min || admit(t, size) }
}

// NewDecoder returns a Decoder with the given limits.
func NewDecoder(l Limits) *Decoder {
	return &Decoder{lim: l.withDefaults()}
}

// Next consumes bytes from p until one frame is complete or p is used up.
// It returns how many bytes it consumed and, when ok is true, the frame.
// The frame's byte slices point into p or into the Decoder's buffer and
// stay valid only until the next call to Next: copy what you keep.
// A non-nil error is a *FrameError; the stream cannot be resumed after it.
func (d *Decoder) Next(p []byte) (n int, f Frame, ok bool, err error) {
	for n < len(p) {
		switch d.st {
		case stStart:
			if p[n] != 0 {
				d.st = stLine
				d.buf = d.buf[:0]
				continue
			}
			d.st = stHeader
			d.hn = 0
		case stHeader:
			c := copy(d.hdr[d.hn:], p[n:])
			d.hn += c
			n += c
			if d.hn < HeaderSize {
				return n, Frame{}, false, nil
			}
			if err := d.header(); err != nil {
				return n, Frame{}, false, err
			}
			d.buf = d.buf[:0]
			if d.size == 0 {
				return n, d.packet(nil), true, nil
			}
			d.st = stPayload
			d.skip, d.skipped = d.admit != nil && !d.admit(d.typ, d.size), 0
		case stPayload:
			if d.skip {
				c := int(min(d.size-d.skipped, uint32(len(p)-n)))
				d.skipped += uint32(c)
				n += c
				if d.skipped < d.size {
					return n, Frame{}, false, nil
				}
				d.st, d.skip = stStart, false
				return n, Frame{Packet: Packet{Magic: d.magic, Type: d.typ}, Skipped: true}, true, nil
			}
			want := int(d.size) - len(d.buf)
			if len(d.buf) == 0 && len(p)-n >= want {
				// The whole payload is in p: no copy.
				payload := p[n : n+want]
				n += want
				if err := d.checkArgs(payload, true); err != nil {
					return n, Frame{}, false, err
				}
				return n, d.packet(payload), true, nil
			}
			c := min(want, len(p)-n)
			d.buf = growPayload(d.buf, c, int(d.size))
			d.buf = append(d.buf, p[n:n+c]...)
			n += c
			complete := len(d.buf) == int(d.size)
			if err := d.checkArgs(d.buf, complete); err != nil {
				return n, Frame{}, false, err
			}
			if complete {
				return n, d.packet(d.buf), true, nil
			}
		case stLine:
			i := bytes.IndexByte(p[n:], '\n')
			if i < 0 {
				if len(d.buf)+len(p)-n >= d.lim.MaxLine {
					return len(p), Frame{}, false, &FrameError{Err: ErrLineTooLong}
				}
				d.buf = append(d.buf, p[n:]...)
				return len(p), Frame{}, false, nil
			}
			if len(d.buf)+i+1 > d.lim.MaxLine {
				return n + i + 1, Frame{}, false, &FrameError{Err: ErrLineTooLong}
			}
			var line []byte
			if len(d.buf) == 0 {
				line = p[n : n+i]
			} else {
				d.buf = append(d.buf, p[n:n+i]...)
				line = d.buf
			}
			n += i + 1
			d.st = stStart
			return n, Frame{Text: true, Line: bytes.TrimSuffix(line, []byte{'\r'})}, true, nil
		}
	}
	return n, Frame{}, false, nil
}

// growPayload makes room in buf for n more bytes of a payload of size
// bytes. It doubles the capacity, and takes the whole size once a
// quarter of it has arrived: the allocations for a payload of any size
// add up to at most twice its size, and the buffer is never larger than
// the payload. (append alone grows a large slice by a quarter at a time:
// the garbage of a 50 MiB payload read in socket-sized pieces was about
// 240 MiB, issue 10.) Memory still follows the bytes that arrived (at
// most four times as much), never the announced size alone.
func growPayload(buf []byte, n, size int) []byte {
	need := len(buf) + n
	if need <= cap(buf) {
		return buf
	}
	c := max(2*cap(buf), need, minPayloadBuf)
	if 4*need >= size {
		c = size
	}
	c = min(c, size)
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb
}

// minPayloadBuf is the first capacity growPayload gives a payload buffer.
const minPayloadBuf = 4 << 10

// Pending reports whether the decoder holds part of an unfinished frame.
func (d *Decoder) Pending() bool { return d.st != stStart }

func (d *Decoder) header() error {
	d.magic = Magic(binary.BigEndian.Uint32(d.hdr[0:4]))
	d.typ = Type(binary.BigEndian.Uint32(d.hdr[4:8]))
	d.size = binary.BigEndian.Uint32(d.hdr[8:12])
	if d.magic != Req && d.magic != Res {
		return &FrameError{Err: ErrBadMagic, Magic: d.magic}
	}
	if !d.typ.Valid() {
		return &FrameError{Err: ErrBadType, Magic: d.magic, Packet: d.typ}
	}
	if d.size > d.lim.MaxPayload {
		return &FrameError{Err: ErrPayloadTooLarge, Magic: d.magic, Packet: d.typ, Size: d.size}
	}
	if !d.typ.hasData() && int64(d.size) > int64(d.lim.MaxArgs) {
		// No opaque payload: gearmand parses the whole packet inside its
		// 8 KiB buffer (CAN_DO with a 9000-byte name closes the connection).
		return &FrameError{Err: ErrArgsTooLarge, Magic: d.magic, Packet: d.typ, Size: d.size}
	}
	return nil
}

// hasData reports whether packets of type t end with an opaque payload
// (the data flag of libgearman's command.cc). The arguments of the other
// types are bounded as a whole by Limits.MaxArgs, as in gearmand.
func (t Type) hasData() bool {
	switch t {
	case SubmitJob, SubmitJobBg, SubmitJobHigh, SubmitJobHighBg, SubmitJobLow, SubmitJobLowBg,
		SubmitJobSched, SubmitJobEpoch, SubmitReduceJob, SubmitReduceJobBackground,
		JobAssign, JobAssignUniq, JobAssignAll, WorkComplete, WorkException, WorkData,
		WorkWarning, EchoReq, EchoRes:
		return true
	}
	return false
}

// checkArgs fails when the NUL-terminated arguments of the packet cannot
// fit within MaxArgs bytes. complete says b is the whole payload.
func (d *Decoder) checkArgs(b []byte, complete bool) error {
	need := d.typ.Args() - 1
	if need <= 0 {
		return nil
	}
	if !complete && len(b) <= d.lim.MaxArgs {
		return nil // not enough bytes yet to tell
	}
	window := b[:min(len(b), d.lim.MaxArgs)]
	if bytes.Count(window, []byte{0}) >= need {
		return nil
	}
	if complete && len(b) <= d.lim.MaxArgs {
		return nil // short packet: fewer arguments, reported by the caller
	}
	return &FrameError{Err: ErrArgsTooLarge, Magic: d.magic, Packet: d.typ, Size: d.size}
}

func (d *Decoder) packet(payload []byte) Frame {
	d.st = stStart
	d.args = splitArgs(d.args[:0], payload, d.typ.Args())
	return Frame{Packet: Packet{Magic: d.magic, Type: d.typ, Args: d.args}}
}

// splitArgs splits payload into at most n arguments: n-1 NUL-terminated
// ones and the rest. A payload with fewer NULs gives fewer arguments; a
// type without arguments gives none (its payload is ignored).
func splitArgs(dst [][]byte, payload []byte, n int) [][]byte {
	if n == 0 {
		return dst
	}
	for i := 0; i < n-1; i++ {
		j := bytes.IndexByte(payload, 0)
		if j < 0 {
			return append(dst, payload)
		}
		dst = append(dst, payload[:j:j])
		payload = payload[j+1:]
	}
	return append(dst, payload)
}

// Reader reads frames from an io.Reader. It is the blocking counterpart of
// Decoder, for clients, workers and tests.
type Reader struct {
	r          io.Reader
	d          *Decoder
	buf        []byte
	start, end int
}

// NewReader returns a Reader with the given limits.
func NewReader(r io.Reader, l Limits) *Reader {
	return &Reader{r: r, d: NewDecoder(l), buf: make([]byte, 32<<10)}
}

// Next returns the next frame. Its byte slices are valid until the next
// call. At a clean end of stream it returns io.EOF; in the middle of a
// frame, io.ErrUnexpectedEOF.
func (r *Reader) Next() (Frame, error) {
	for {
		if r.start < r.end {
			n, f, ok, err := r.d.Next(r.buf[r.start:r.end])
			r.start += n
			if err != nil {
				return Frame{}, err
			}
			if ok {
				return f, nil
			}
		}
		r.start, r.end = 0, 0
		n, err := r.r.Read(r.buf)
		r.end = n
		if n > 0 {
			continue
		}
		if err == io.EOF && r.d.Pending() {
			return Frame{}, io.ErrUnexpectedEOF
		}
		if err != nil {
			return Frame{}, err
		}
	}
}

// Buffered reports how many read bytes the Reader has not yet decoded.
func (r *Reader) Buffered() int { return r.end - r.start }
