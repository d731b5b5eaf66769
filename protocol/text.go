package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Command is a parsed admin text line.
type Command struct {
	// Name is the command name in lower case ("status", "show", ...). A
	// line that starts with a space has an empty name, as in gearmand.
	Name string
	// Args are the words after the name; runs of spaces separate words.
	Args []string
}

// ParseCommand splits an admin text line (without its line terminator).
func ParseCommand(line []byte) Command {
	words := strings.Fields(string(line))
	if len(line) == 0 || line[0] == ' ' || len(words) == 0 {
		// A line of blanks (such as "\r" or "\t") has no name either.
		return Command{Args: words}
	}
	return Command{Name: strings.ToLower(words[0]), Args: words[1:]}
}

// Exact admin reply lines of gearmand 1.1.20 (docs/PROTOCOL.md section 3).
const (
	ReplyOK                = "OK\r\n"
	ReplyEnd               = ".\n"
	ReplyUnknownShowArgs   = "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
	ReplyUnknownJob        = "ERR UNKNOWN_JOB\r\n"
	ReplyUnknownError      = "ERR UNKNOWN_ERROR\r\n"
	ReplyFunctionNotFound  = "ERR function not found\r\n"
	ReplyFunctionBusy      = "ERR there are still connected workers or executing clients\r\n"
	ReplyFunctionHasQueued = "ERR there are still queued jobs\r\n"
	// ReplyInvalidFunctionName is gserverd's own answer to `create
	// function` or `maxqueue` with a name ValidFunctionName refuses.
	ReplyInvalidFunctionName = "ERR INVALID_FUNCTION_NAME Function+name+contains+a+control+character\r\n"
)

// ReplyUnknownCommand is gearmand's answer to an unknown command; the name
// is appended without a separator.
func ReplyUnknownCommand(name string) string {
	return "ERR UNKNOWN_COMMAND Unknown+server+command" + name + "\r\n"
}

// ReplyInvalidArguments is gearmand's answer to a command given too few
// arguments.
func ReplyInvalidArguments(name string) string {
	return "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+" + name + "\r\n"
}

// ReplyCreateFunction is the answer when a function cannot be created.
func ReplyCreateFunction(name string) string { return "ERR CREATE_FUNCTION " + name + "\r\n" }

// AdminError is an "ERR CODE text" reply to an admin command.
type AdminError struct {
	Code string
	Text string
}

func (e *AdminError) Error() string {
	if e.Text == "" {
		return "gearman admin: " + e.Code
	}
	return "gearman admin: " + e.Code + " " + strings.ReplaceAll(e.Text, "+", " ")
}

// ErrAdminReply is returned for an admin reply that cannot be parsed.
var ErrAdminReply = errors.New("malformed admin reply")

// ReadAdminLine reads one single-line admin reply ("OK ..." or "ERR ...").
// It returns the text after "OK" (trimmed), or an *AdminError.
func ReadAdminLine(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	return parseOKLine(line)
}

func parseOKLine(line string) (string, error) {
	switch {
	case line == "OK":
		return "", nil
	case strings.HasPrefix(line, "OK "):
		return line[3:], nil
	case strings.HasPrefix(line, "ERR"):
		f := strings.SplitN(strings.TrimPrefix(line, "ERR "), " ", 2)
		e := &AdminError{Code: f[0]}
		if len(f) > 1 {
			e.Text = f[1]
		}
		return "", e
	}
	return "", fmt.Errorf("protocol: %w: %q", ErrAdminReply, line)
}

// ReadAdminList reads a list reply up to its "." line. An "ERR" first
// line is returned as an *AdminError.
func ReadAdminList(r *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if line == "." {
			return lines, nil
		}
		if len(lines) == 0 && strings.HasPrefix(line, "ERR ") {
			_, err := parseOKLine(line)
			return nil, err
		}
		lines = append(lines, line)
	}
}

// maxReplyLine bounds one admin reply line read by a client.
const maxReplyLine = 1 << 20

func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxReplyLine {
			return "", fmt.Errorf("protocol: %w: line longer than %d bytes", ErrAdminReply, maxReplyLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(bytes.TrimRight(buf, "\r\n")), nil
	}
}

// FunctionStatus is one line of the `status` reply.
type FunctionStatus struct {
	Function string `json:"function"`
	Total    int    `json:"total"`
	Running  int    `json:"running"`
	Workers  int    `json:"workers"`
}

// ParseStatus parses the lines of a `status` reply.
func ParseStatus(lines []string) ([]FunctionStatus, error) {
	out := make([]FunctionStatus, 0, len(lines))
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("protocol: %w: status line %q", ErrAdminReply, l)
		}
		n, err := atois(f[1:])
		if err != nil {
			return nil, fmt.Errorf("protocol: %w: status line %q", ErrAdminReply, l)
		}
		out = append(out, FunctionStatus{Function: f[0], Total: n[0], Running: n[1], Workers: n[2]})
	}
	return out, nil
}

// PriorityStatus is one line of the `prioritystatus` reply.
type PriorityStatus struct {
	Function string `json:"function"`
	High     int    `json:"high"`
	Normal   int    `json:"normal"`
	Low      int    `json:"low"`
	Workers  int    `json:"workers"`
}

// ParsePriorityStatus parses the lines of a `prioritystatus` reply.
func ParsePriorityStatus(lines []string) ([]PriorityStatus, error) {
	out := make([]PriorityStatus, 0, len(lines))
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("protocol: %w: prioritystatus line %q", ErrAdminReply, l)
		}
		n, err := atois(f[1:])
		if err != nil {
			return nil, fmt.Errorf("protocol: %w: prioritystatus line %q", ErrAdminReply, l)
		}
		out = append(out, PriorityStatus{Function: f[0], High: n[0], Normal: n[1], Low: n[2], Workers: n[3]})
	}
	return out, nil
}

// WorkerInfo is one line of the `workers` reply: one connection.
type WorkerInfo struct {
	FD        int      `json:"fd"`
	Addr      string   `json:"addr"`
	ClientID  string   `json:"client_id"`
	Functions []string `json:"functions"`
}

// ParseWorkers parses the lines of a `workers` reply.
func ParseWorkers(lines []string) ([]WorkerInfo, error) {
	out := make([]WorkerInfo, 0, len(lines))
	for _, l := range lines {
		// "FD IP CLIENT_ID : FUNC...": split on fields, not on " :",
		// which an IPv6 address such as "::1" also contains.
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != ":" {
			return nil, fmt.Errorf("protocol: %w: workers line %q", ErrAdminReply, l)
		}
		fd, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("protocol: %w: workers line %q", ErrAdminReply, l)
		}
		out = append(out, WorkerInfo{FD: fd, Addr: f[1], ClientID: f[2], Functions: append([]string{}, f[4:]...)})
	}
	return out, nil
}

// JobInfo is one line of the `show jobs` reply.
type JobInfo struct {
	Handle  string `json:"handle"`
	Retries int    `json:"retries"`
	Ignore  bool   `json:"ignore"`
	Queued  bool   `json:"persisted"`
}

// ParseJobs parses the lines of a `show jobs` reply.
func ParseJobs(lines []string) ([]JobInfo, error) {
	out := make([]JobInfo, 0, len(lines))
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("protocol: %w: show jobs line %q", ErrAdminReply, l)
		}
		n, err := atois(f[1:])
		if err != nil {
			return nil, fmt.Errorf("protocol: %w: show jobs line %q", ErrAdminReply, l)
		}
		out = append(out, JobInfo{Handle: f[0], Retries: n[0], Ignore: n[1] != 0, Queued: n[2] != 0})
	}
	return out, nil
}

func atois(s []string) ([]int, error) {
	out := make([]int, len(s))
	for i, v := range s {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
