// Package protocol implements the Gearman wire protocol: the binary packet
// types and their argument layouts, a resumable and bounded decoder, an
// encoder, and the admin text-line codec.
//
// It uses the standard library only and is the bottom layer of the project:
// server, worker and client all build on it.
package protocol

import "strconv"

// Magic is the 4-byte code that opens every binary packet.
type Magic uint32

// The two magic codes: requests go to the server, responses come from it.
const (
	Req Magic = 0x00524551 // "\0REQ"
	Res Magic = 0x00524553 // "\0RES"
)

func (m Magic) String() string {
	switch m {
	case Req:
		return "REQ"
	case Res:
		return "RES"
	}
	return "0x" + strconv.FormatUint(uint64(m), 16)
}

// HeaderSize is the size of a binary packet header.
const HeaderSize = 12

// Type is a binary packet type (1..42).
type Type uint32

// Packet types, numbered as in gearmand's PROTOCOL file.
const (
	CanDo                     Type = 1
	CantDo                    Type = 2
	ResetAbilities            Type = 3
	PreSleep                  Type = 4
	Unused                    Type = 5
	Noop                      Type = 6
	SubmitJob                 Type = 7
	JobCreated                Type = 8
	GrabJob                   Type = 9
	NoJob                     Type = 10
	JobAssign                 Type = 11
	WorkStatus                Type = 12
	WorkComplete              Type = 13
	WorkFail                  Type = 14
	GetStatus                 Type = 15
	EchoReq                   Type = 16
	EchoRes                   Type = 17
	SubmitJobBg               Type = 18
	Error                     Type = 19
	StatusRes                 Type = 20
	SubmitJobHigh             Type = 21
	SetClientID               Type = 22
	CanDoTimeout              Type = 23
	AllYours                  Type = 24
	WorkException             Type = 25
	OptionReq                 Type = 26
	OptionRes                 Type = 27
	WorkData                  Type = 28
	WorkWarning               Type = 29
	GrabJobUniq               Type = 30
	JobAssignUniq             Type = 31
	SubmitJobHighBg           Type = 32
	SubmitJobLow              Type = 33
	SubmitJobLowBg            Type = 34
	SubmitJobSched            Type = 35
	SubmitJobEpoch            Type = 36
	SubmitReduceJob           Type = 37
	SubmitReduceJobBackground Type = 38
	GrabJobAll                Type = 39
	JobAssignAll              Type = 40
	GetStatusUnique           Type = 41
	StatusResUnique           Type = 42

	// MaxType is the highest valid packet type.
	MaxType = StatusResUnique
)

// typeInfo describes one packet type: its name and how many arguments it
// has. Every argument but the last is NUL-terminated; the last one runs to
// the end of the packet (it may contain NULs). This follows libgearman's
// command.cc: args = argc + 1 when the type carries data, else argc.
type typeInfo struct {
	name string
	args int
	// request is true for types a client or worker sends to the server.
	request bool
}

var types = [...]typeInfo{
	0:                         {"TEXT", 0, false},
	CanDo:                     {"CAN_DO", 1, true},
	CantDo:                    {"CANT_DO", 1, true},
	ResetAbilities:            {"RESET_ABILITIES", 0, true},
	PreSleep:                  {"PRE_SLEEP", 0, true},
	Unused:                    {"UNUSED", 0, false},
	Noop:                      {"NOOP", 0, false},
	SubmitJob:                 {"SUBMIT_JOB", 3, true},
	JobCreated:                {"JOB_CREATED", 1, false},
	GrabJob:                   {"GRAB_JOB", 0, true},
	NoJob:                     {"NO_JOB", 0, false},
	JobAssign:                 {"JOB_ASSIGN", 3, false},
	WorkStatus:                {"WORK_STATUS", 3, true},
	WorkComplete:              {"WORK_COMPLETE", 2, true},
	WorkFail:                  {"WORK_FAIL", 1, true},
	GetStatus:                 {"GET_STATUS", 1, true},
	EchoReq:                   {"ECHO_REQ", 1, true},
	EchoRes:                   {"ECHO_RES", 1, false},
	SubmitJobBg:               {"SUBMIT_JOB_BG", 3, true},
	Error:                     {"ERROR", 2, false},
	StatusRes:                 {"STATUS_RES", 5, false},
	SubmitJobHigh:             {"SUBMIT_JOB_HIGH", 3, true},
	SetClientID:               {"SET_CLIENT_ID", 1, true},
	CanDoTimeout:              {"CAN_DO_TIMEOUT", 2, true},
	AllYours:                  {"ALL_YOURS", 0, false},
	WorkException:             {"WORK_EXCEPTION", 2, true},
	OptionReq:                 {"OPTION_REQ", 1, true},
	OptionRes:                 {"OPTION_RES", 1, false},
	WorkData:                  {"WORK_DATA", 2, true},
	WorkWarning:               {"WORK_WARNING", 2, true},
	GrabJobUniq:               {"GRAB_JOB_UNIQ", 0, true},
	JobAssignUniq:             {"JOB_ASSIGN_UNIQ", 4, false},
	SubmitJobHighBg:           {"SUBMIT_JOB_HIGH_BG", 3, true},
	SubmitJobLow:              {"SUBMIT_JOB_LOW", 3, true},
	SubmitJobLowBg:            {"SUBMIT_JOB_LOW_BG", 3, true},
	SubmitJobSched:            {"SUBMIT_JOB_SCHED", 8, false},
	SubmitJobEpoch:            {"SUBMIT_JOB_EPOCH", 4, true},
	SubmitReduceJob:           {"SUBMIT_REDUCE_JOB", 5, true},
	SubmitReduceJobBackground: {"SUBMIT_REDUCE_JOB_BACKGROUND", 5, true},
	GrabJobAll:                {"GRAB_JOB_ALL", 0, true},
	JobAssignAll:              {"JOB_ASSIGN_ALL", 5, false},
	GetStatusUnique:           {"GET_STATUS_UNIQUE", 1, true},
	StatusResUnique:           {"STATUS_RES_UNIQUE", 6, false},
}

// Valid reports whether t is a binary packet type (1..42).
func (t Type) Valid() bool { return t >= CanDo && t <= MaxType }

// String returns the protocol name of t, such as "SUBMIT_JOB".
func (t Type) String() string {
	if t <= MaxType {
		return types[t].name
	}
	return "TYPE_" + strconv.FormatUint(uint64(t), 10)
}

// Args returns how many arguments a packet of type t has. All but the last
// are NUL-terminated on the wire; the last runs to the end of the packet.
func (t Type) Args() int {
	if t <= MaxType {
		return types[t].args
	}
	return 0
}

// IsRequest reports whether a client or worker may send t to a server.
// Response-only types, UNUSED, ALL_YOURS and SUBMIT_JOB_SCHED are not
// requests: gearmand answers them with ERROR INVALID_COMMAND.
func (t Type) IsRequest() bool { return t <= MaxType && types[t].request }

// Priority is a job priority. The values are the ones persistent queues store.
type Priority int

// Job priorities.
const (
	High   Priority = 0
	Normal Priority = 1
	Low    Priority = 2
)

func (p Priority) String() string {
	switch p {
	case High:
		return "high"
	case Normal:
		return "normal"
	case Low:
		return "low"
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

// ParsePriority parses "high", "normal" or "low".
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "high", "HIGH", "High":
		return High, nil
	case "normal", "NORMAL", "Normal", "":
		return Normal, nil
	case "low", "LOW", "Low":
		return Low, nil
	}
	return Normal, &PriorityError{Value: s}
}

// SubmitInfo describes what a SUBMIT_* packet type asks for.
type SubmitInfo struct {
	Priority   Priority
	Background bool
	Epoch      bool // SUBMIT_JOB_EPOCH: the third argument is a unix time
	Reduce     bool // SUBMIT_REDUCE_JOB*: third argument reducer, fourth aggregator
}

// Submit reports whether t is a SUBMIT_* type the server accepts, and what
// it asks for. SUBMIT_JOB_SCHED is not one: gearmand does not implement it.
func (t Type) Submit() (SubmitInfo, bool) {
	switch t {
	case SubmitJob:
		return SubmitInfo{Priority: Normal}, true
	case SubmitJobBg:
		return SubmitInfo{Priority: Normal, Background: true}, true
	case SubmitJobHigh:
		return SubmitInfo{Priority: High}, true
	case SubmitJobHighBg:
		return SubmitInfo{Priority: High, Background: true}, true
	case SubmitJobLow:
		return SubmitInfo{Priority: Low}, true
	case SubmitJobLowBg:
		return SubmitInfo{Priority: Low, Background: true}, true
	case SubmitJobEpoch:
		return SubmitInfo{Priority: Normal, Background: true, Epoch: true}, true
	case SubmitReduceJob:
		return SubmitInfo{Priority: Normal, Reduce: true}, true
	case SubmitReduceJobBackground:
		return SubmitInfo{Priority: Normal, Background: true, Reduce: true}, true
	}
	return SubmitInfo{}, false
}

// SubmitType returns the SUBMIT_* type for a priority and background flag.
func SubmitType(p Priority, background bool) Type {
	switch {
	case p == High && background:
		return SubmitJobHighBg
	case p == High:
		return SubmitJobHigh
	case p == Low && background:
		return SubmitJobLowBg
	case p == Low:
		return SubmitJobLow
	case background:
		return SubmitJobBg
	}
	return SubmitJob
}

// Packet is one decoded binary packet.
type Packet struct {
	Magic Magic
	Type  Type
	// Args holds the packet's arguments; the last one is the raw payload.
	// Packets from a Decoder reference its buffers: see Decoder.Next.
	Args [][]byte
}

// Arg returns argument i, or nil when the packet has fewer.
func (p *Packet) Arg(i int) []byte {
	if i < len(p.Args) {
		return p.Args[i]
	}
	return nil
}

// Clone returns a copy of p that owns its argument bytes.
func (p *Packet) Clone() Packet {
	n := 0
	for _, a := range p.Args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	args := make([][]byte, len(p.Args))
	for i, a := range p.Args {
		start := len(buf)
		buf = append(buf, a...)
		args[i] = buf[start:len(buf):len(buf)]
	}
	return Packet{Magic: p.Magic, Type: p.Type, Args: args}
}

// ValidFunctionName reports whether name may name a function: it holds no
// control character (a byte below 0x20, or 0x7f). Such a name would break
// the tab- and newline-separated lines of the admin protocol (`status`,
// `workers`, ...) for every reader, so the server refuses it with ERROR
// INVALID_FUNCTION_NAME. Spaces, the empty name and any other bytes
// (UTF-8 included) are valid, as in gearmand.
func ValidFunctionName(name []byte) bool {
	for _, b := range name {
		if b < 0x20 || b == 0x7f {
			return false
		}
	}
	return true
}
