package gearhttp

import "errors"

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("gearhttp: server closed")

// Errors of readRequest. All of them close the connection without an
// answer, as gearmand does (it sets a status but its INVALID_PACKET return
// closes the connection before the status is sent).
var (
	errMalformed    = errors.New("gearhttp: malformed request")
	errBadMethod    = errors.New("gearhttp: method not served")
	errBadVersion   = errors.New("gearhttp: HTTP version not served")
	errHeadTooLarge = errors.New("gearhttp: request head too large")
)
