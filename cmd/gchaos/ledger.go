package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ledger records what happened to every job of a scenario: the reply to
// its submit (JOB_CREATED, ERROR, or none before the connection died) and
// how many times a worker was given it. Jobs are numbered; a job's number
// is the first field of its workload (see workload), so the worker side
// knows which job it got whatever unique it was submitted with.
type ledger struct {
	mu         sync.Mutex     // guards everything below
	acked      map[int]bool   // JOB_CREATED received: true when the job had an empty unique
	refused    map[int]string // ERROR received: its code
	unanswered int            // sent, connection lost before a reply
	drained    map[int]int    // times a worker got the job
	foreign    int            // drained workloads that name no job of ours
}

func newLedger() *ledger {
	return &ledger{acked: map[int]bool{}, refused: map[int]string{}, drained: map[int]int{}}
}

// ack records job id's JOB_CREATED; emptyUnique says it was submitted
// with an empty unique.
func (l *ledger) ack(id int, emptyUnique bool) {
	l.mu.Lock()
	l.acked[id] = emptyUnique
	l.mu.Unlock()
}

func (l *ledger) refuse(id int, code string) {
	l.mu.Lock()
	l.refused[id] = code
	l.mu.Unlock()
}

func (l *ledger) lostReply(n int) {
	l.mu.Lock()
	l.unanswered += n
	l.mu.Unlock()
}

// ran records a job a worker was given, by its workload.
func (l *ledger) ran(workload []byte) {
	id, ok := jobID(workload)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		l.foreign++
		return
	}
	l.drained[id]++
}

// counts is a ledger's summary.
type counts struct {
	Acked      int            // JOB_CREATED received
	Refused    int            // ERROR received
	Codes      map[string]int // refusals by error code
	Unanswered int            // no reply before the connection died
	Drained    int            // jobs handed to workers, repeats included
	Lost       int            // acked, never drained
	LostEmpty  int            // of Lost: those submitted with an empty unique
	Dups       int            // drains beyond the first of a job
	Unacked    int            // drained but never acked (stored before a crash, or refused yet stored)
	RefusedRan int            // of Unacked: those that were refused with an ERROR
	Foreign    int            // drained workloads that were not ours
}

func (l *ledger) counts() counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := counts{Acked: len(l.acked), Refused: len(l.refused), Unanswered: l.unanswered, Foreign: l.foreign, Codes: map[string]int{}}
	for _, code := range l.refused {
		c.Codes[code]++
	}
	for id, empty := range l.acked {
		if l.drained[id] == 0 {
			c.Lost++
			if empty {
				c.LostEmpty++
			}
		}
	}
	for id, n := range l.drained {
		c.Drained += n
		c.Dups += n - 1
		if _, ok := l.acked[id]; !ok {
			c.Unacked++
			if _, ok := l.refused[id]; ok {
				c.RefusedRan++
			}
		}
	}
	return c
}

// codes formats the refusals by code, "QUEUE_ERROR:12,X:1".
func (c counts) codes() string {
	var s []string
	for k, v := range c.Codes {
		s = append(s, k+":"+strconv.Itoa(v))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// workload returns job id's workload: its number, a colon, and padding
// up to size bytes.
func workload(id, size int) string {
	s := strconv.Itoa(id) + ":"
	if len(s) < size {
		s += strings.Repeat("x", size-len(s))
	}
	return s
}

// jobID reads the job number at the head of a workload.
func jobID(w []byte) (int, bool) {
	head, _, ok := strings.Cut(string(w), ":")
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(head)
	return id, err == nil && id >= 0
}

func (c counts) String() string {
	return fmt.Sprintf("acked=%d lost=%d dups=%d refused=%d", c.Acked, c.Lost, c.Dups, c.Refused)
}
