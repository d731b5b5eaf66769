package supervise

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// SelfRSS returns this process's resident set size in bytes (0 when
// unknown).
func SelfRSS() int64 { return RSS(os.Getpid()) }

// RSS returns the resident set size of pid in bytes, read from
// /proc/<pid>/statm (0 when unknown).
func RSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// descendantGroups returns the process groups of the descendants of root,
// from /proc.
func descendantGroups(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	kids := map[int][]int{}
	pgid := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 > len(b) {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 3 {
			continue
		}
		ppid, err1 := strconv.Atoi(string(f[1]))
		pg, err2 := strconv.Atoi(string(f[2]))
		if err1 != nil || err2 != nil {
			continue
		}
		kids[ppid] = append(kids[ppid], pid)
		pgid[pid] = pg
	}
	seen := map[int]bool{}
	var groups []int
	queue := append([]int(nil), kids[root]...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if g := pgid[p]; !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
		queue = append(queue, kids[p]...)
	}
	return groups
}

func closeOnExec(fd int) { syscall.CloseOnExec(fd) }

func umask(m int) int { return syscall.Umask(m) }
