package server

import "errors"

// Errors returned by the package.
var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("server: closed")
	// ErrInvalidOptions wraps every Options validation failure.
	ErrInvalidOptions = errors.New("server: invalid options")
	// ErrInvalidSubmit wraps every SubmitRequest that no SUBMIT_* packet
	// could carry (Server.Submit).
	ErrInvalidSubmit = errors.New("server: invalid submit request")
)

// ERROR packet texts of our own (gearmand has no equivalent: it closes the
// connection, or hangs, where we answer first).
const (
	textPayloadTooLarge = "Packet payload larger than the server limit"
	textArgsTooLarge    = "NUL-terminated arguments larger than 8 KiB"
	textTooFewArgs      = "Packet has too few arguments"
	textStoreFailed     = "QUEUE_ERROR"
	textMemoryFull      = "Job queue is full: memory bound"
)
