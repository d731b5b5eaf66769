package protocol

import (
	"encoding/binary"
	"io"
)

// AppendHeader appends a packet header announcing size payload bytes.
func AppendHeader(dst []byte, m Magic, t Type, size int) []byte {
	return binary.BigEndian.AppendUint32(
		binary.BigEndian.AppendUint32(
			binary.BigEndian.AppendUint32(dst, uint32(m)), uint32(t)), uint32(size))
}

// AppendPacket appends a packet with args joined by NUL: every argument
// but the last is NUL-terminated, the last runs to the end.
func AppendPacket(dst []byte, m Magic, t Type, args ...[]byte) []byte {
	dst = AppendHeader(dst, m, t, argsSize(args))
	for i, a := range args {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, a...)
	}
	return dst
}

// AppendPacketString is AppendPacket for string arguments; it spares the
// caller the conversions on hot paths.
func AppendPacketString(dst []byte, m Magic, t Type, args ...string) []byte {
	size := 0
	for i, a := range args {
		if i > 0 {
			size++
		}
		size += len(a)
	}
	dst = AppendHeader(dst, m, t, size)
	for i, a := range args {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, a...)
	}
	return dst
}

func argsSize(args [][]byte) int {
	size := 0
	for i, a := range args {
		if i > 0 {
			size++
		}
		size += len(a)
	}
	return size
}

// Append appends the encoded packet to dst.
func (p *Packet) Append(dst []byte) []byte {
	m := p.Magic
	if m == 0 {
		m = Req
	}
	return AppendPacket(dst, m, p.Type, p.Args...)
}

// WritePacket writes one packet to w.
func WritePacket(w io.Writer, m Magic, t Type, args ...[]byte) error {
	_, err := w.Write(AppendPacket(make([]byte, 0, HeaderSize+argsSize(args)), m, t, args...))
	return err
}
