package supervise

import (
	"bytes"
	"io"
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

// TreeRSS returns the resident set size in bytes of pid and all its
// descendants (0 when unknown). It is the sum of each process's RSS, so
// pages shared between them (copy-on-write after a fork, shared
// libraries) count once per process: an upper bound of the memory the
// tree holds. A descendant that detached itself (its parent exited and it
// was reparented) is no longer counted.
func TreeRSS(pid int) int64 { return treeRSS(scanTree(pid), []int{pid})[pid] }

// procInfo is what scanProcs reads of one process.
type procInfo struct {
	ppid, pgid int
	rss        int64 // bytes
	state      byte  // 'R', 'S', 'Z' (zombie), ...
}

// procTable is a snapshot of every process, by pid.
type procTable map[int]procInfo

// maxStat bounds the read of one /proc/<pid>/stat: the line is at most a
// few hundred bytes (the command name is at most 64).
const maxStat = 1024

// scanProcs reads /proc/<pid>/stat of every process once: one directory
// listing and one bounded read per process. Processes that vanish during
// the scan are skipped.
func scanProcs() procTable {
	dir, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer dir.Close()
	page := int64(os.Getpagesize())
	buf := make([]byte, maxStat)
	t := procTable{}
	for {
		names, err := dir.Readdirnames(256)
		for _, name := range names {
			pid, err := strconv.Atoi(name)
			if err != nil {
				continue
			}
			if p, ok := readStat(name, buf, page); ok {
				t[pid] = p
			}
		}
		if err != nil { // io.EOF at the end
			return t
		}
	}
}

// scanTree reads /proc/<pid>/stat of root and of its descendants only,
// found through the children lists of their threads
// (/proc/<pid>/task/<tid>/children): a few reads for a small tree,
// where scanProcs reads one file per process of the machine. Where the
// kernel has no children lists, it is scanProcs.
func scanTree(root int) procTable {
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(syscall.Gettid()) + "/children"); err != nil {
		return scanProcs()
	}
	page := int64(os.Getpagesize())
	buf := make([]byte, maxStat)
	kids := make([]byte, maxChildren)
	t := procTable{}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if _, seen := t[pid]; seen {
			continue // defensive: pids reused during the walk
		}
		name := strconv.Itoa(pid)
		p, ok := readStat(name, buf, page)
		if !ok {
			continue // gone
		}
		t[pid] = p
		queue = appendChildren(queue, name, kids)
	}
	return t
}

// maxTasks bounds the threads of one process whose children are read,
// and maxChildren the children list read of one thread (64 KiB: some
// 9,000 pids).
const (
	maxTasks    = 4096
	maxChildren = 64 << 10
)

// appendChildren appends the children of process name to pids, from the
// children list of each of its threads.
func appendChildren(pids []int, name string, buf []byte) []int {
	dir, err := os.Open("/proc/" + name + "/task")
	if err != nil {
		return pids
	}
	tids, _ := dir.Readdirnames(maxTasks)
	dir.Close()
	for _, tid := range tids {
		n, ok := readProcFile("/proc/"+name+"/task/"+tid+"/children", buf)
		if !ok {
			continue
		}
		list := buf[:n]
		if n == len(buf) { // cut: drop the last, maybe partial, pid
			if i := bytes.LastIndexByte(list, ' '); i >= 0 {
				list = list[:i]
			}
		}
		for _, f := range bytes.Fields(list) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// readProcFile reads a small procfs file into buf with plain system
// calls (no os.File: procfs files cannot be polled, and an os.File
// would try). A file larger than buf is cut at len(buf).
func readProcFile(path string, buf []byte) (int, bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, false
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, true
}

// readStat parses ppid, pgrp and rss out of /proc/<name>/stat.
func readStat(name string, buf []byte, page int64) (procInfo, bool) {
	// procfs hands the whole line to one read.
	n, ok := readProcFile("/proc/"+name+"/stat", buf)
	if !ok {
		return procInfo{}, false
	}
	b := buf[:n]
	// The command name, in parentheses, may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, false
	}
	// After the name: state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime vsize rss ...
	fs := bytes.Fields(b[i+1:])
	if len(fs) < 22 {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(string(fs[1]))
	pgid, err2 := strconv.Atoi(string(fs[2]))
	pages, err3 := strconv.ParseInt(string(fs[21]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procInfo{}, false
	}
	return procInfo{ppid: ppid, pgid: pgid, rss: pages * page, state: fs[0][0]}, true
}

// children returns the children of every process, by parent pid.
func (t procTable) children() map[int][]int {
	kids := make(map[int][]int, len(t))
	for pid, p := range t {
		kids[p.ppid] = append(kids[p.ppid], pid)
	}
	return kids
}

// descendants calls f for each descendant of root (not root itself).
func descendants(kids map[int][]int, root int, f func(pid int)) {
	seen := map[int]bool{root: true}
	queue := append([]int(nil), kids[root]...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] { // defensive: a table read while pids were reused
			continue
		}
		seen[p] = true
		f(p)
		queue = append(queue, kids[p]...)
	}
}

// treeRSS returns, for each root found in t, the summed RSS of the root
// and its descendants. Roots missing from t are missing from the result.
func treeRSS(t procTable, roots []int) map[int]int64 {
	out := make(map[int]int64, len(roots))
	if len(roots) == 0 {
		return out
	}
	kids := t.children()
	for _, root := range roots {
		p, ok := t[root]
		if !ok {
			continue
		}
		sum := p.rss
		descendants(kids, root, func(pid int) { sum += t[pid].rss })
		out[root] = sum
	}
	return out
}

// descendantGroups returns the process groups of the descendants of root,
// from /proc.
func descendantGroups(root int) []int {
	t := scanTree(root)
	seen := map[int]bool{}
	var groups []int
	descendants(t.children(), root, func(pid int) {
		if g := t[pid].pgid; !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	})
	return groups
}

// cmdline returns the command line of pid, its arguments separated by
// spaces, read from /proc/<pid>/cmdline (at most 4 KiB). While the
// process is inside execve its command line reads empty for a moment,
// as a zombie's does: then it is the command name from
// /proc/<pid>/comm in brackets, as ps shows it; empty for a process gone.
func cmdline(pid int) string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := io.ReadFull(f, b)
	if line := bytes.TrimRight(bytes.ReplaceAll(b[:n], []byte{0}, []byte{' '}), " "); len(line) > 0 {
		return string(line)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return "[" + string(bytes.TrimSpace(comm)) + "]"
}

func closeOnExec(fd int) { syscall.CloseOnExec(fd) }

func umask(m int) int { return syscall.Umask(m) }
