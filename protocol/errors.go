package protocol

import (
	"errors"
	"fmt"
)

// Decoder errors. A framing error (bad magic, bad type, oversized input)
// leaves the stream unusable: the caller closes the connection. The
// decoder reports each as a *FrameError wrapping one of these sentinels.
var (
	ErrBadMagic        = errors.New("invalid magic value")
	ErrBadType         = errors.New("invalid command value")
	ErrPayloadTooLarge = errors.New("payload larger than the limit")
	ErrArgsTooLarge    = errors.New("NUL-terminated arguments larger than the limit")
	ErrLineTooLong     = errors.New("text line longer than the limit")
)

// FrameError is a framing error from the decoder. Packet is the type of the
// offending packet when it is known (0 otherwise); Size its announced size.
type FrameError struct {
	Err    error
	Magic  Magic
	Packet Type
	Size   uint32
}

func (e *FrameError) Error() string {
	switch {
	case errors.Is(e.Err, ErrPayloadTooLarge):
		return fmt.Sprintf("protocol: %s packet of %d bytes: %v", e.Packet, e.Size, e.Err)
	case errors.Is(e.Err, ErrArgsTooLarge):
		return fmt.Sprintf("protocol: %s packet: %v", e.Packet, e.Err)
	case errors.Is(e.Err, ErrBadMagic):
		return fmt.Sprintf("protocol: %v %s", e.Err, e.Magic)
	case errors.Is(e.Err, ErrBadType):
		return fmt.Sprintf("protocol: %v %d", e.Err, uint32(e.Packet))
	}
	return "protocol: " + e.Err.Error()
}

func (e *FrameError) Unwrap() error { return e.Err }

// PriorityError reports a priority name that is not high, normal or low.
type PriorityError struct{ Value string }

func (e *PriorityError) Error() string {
	return fmt.Sprintf("protocol: unknown priority %q (want high, normal or low)", e.Value)
}

// ERROR packet codes, as gearmand sends them (libgearman return names
// without the GEARMAN_ prefix).
const (
	CodeInvalidMagic     = "INVALID_MAGIC"
	CodeInvalidCommand   = "INVALID_COMMAND"
	CodeInvalidPacket    = "INVALID_PACKET"
	CodeArgumentTooLarge = "ARGUMENT_TOO_LARGE"
	CodeQueueError       = "QUEUE_ERROR"
	CodeJobNotFound      = "JOB_NOT_FOUND"
	CodeUnknownOption    = "UNKNOWN_OPTION"
	// CodeInvalidFunctionName refuses a function name with a control
	// character (see ValidFunctionName); gearmand accepts any name.
	CodeInvalidFunctionName = "INVALID_FUNCTION_NAME"
)

// TextInvalidFunctionName is the text of ERROR INVALID_FUNCTION_NAME
// (gserverd's own: gearmand has no such check).
const TextInvalidFunctionName = "Function name contains a control character (byte below 0x20 or 0x7f)"

// ERROR packet texts, byte for byte as gearmand 1.1.20 sends them.
const (
	TextRequestMagicExpected = "Request magic expected"
	TextCommandNotExpected   = "Command not expected"
	TextUniqueTooLarge       = "Unique value too large"
	TextQueueFull            = "Job queue is full"
	TextWorkResultNotFound   = "Job given in work result not found"
	TextJobDoesNotExist      = "Job does not exist on server"
	TextExceptionNotFound    = "An exception was received for a job that does not exist"
	TextHandleTooLarge       = "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf"
	TextUnknownOption        = "Server does not recognize given option"
)

// ErrorPacket is the content of an ERROR packet.
type ErrorPacket struct {
	Code string
	Text string
}

func (e *ErrorPacket) Error() string { return "gearman: " + e.Code + ": " + e.Text }

// ParseError reads the code and text of an ERROR packet.
func ParseError(p *Packet) *ErrorPacket {
	return &ErrorPacket{Code: string(p.Arg(0)), Text: string(p.Arg(1))}
}
