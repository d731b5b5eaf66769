package embedded

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockFile is the file in the store's directory that pebble locks
// (fcntl F_SETLK) while a process has the store open.
const lockFile = "LOCK"

// procLocksLimit bounds how much of /proc/locks lockHolder reads: a host
// with more locks than that gets "another process" without a pid.
const procLocksLimit = 4 << 20

// lockHolder returns the pid of the process holding a lock on dir's LOCK
// file and its command name, from /proc/locks; ok is false when no lock
// is held or the holder cannot be told (no /proc, another pid
// namespace).
func lockHolder(dir string) (pid int, comm string, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, lockFile), &st); err != nil {
		return 0, "", false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	dev := uint64(st.Dev)
	pid, ok = parseProcLocks(io.LimitReader(f, procLocksLimit), unix.Major(dev), unix.Minor(dev), st.Ino)
	if !ok || pid == os.Getpid() {
		return 0, "", false
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
		comm = string(bytes.TrimSpace(b))
	}
	return pid, comm, true
}

// parseProcLocks finds, in the text of /proc/locks, a granted lock on the
// file with device major:minor and inode ino, and returns its holder's
// pid. Lines look like
//
//	1: POSIX  ADVISORY  WRITE 3829 fe:00:778595 0 EOF
//
// (device numbers in hex); waiters ("1: -> POSIX ...") and locks whose
// pid is unknown (OFD locks: -1; another namespace: 0) are skipped. Lines
// longer than 256 bytes end the scan.
func parseProcLocks(r io.Reader, major, minor uint32, ino uint64) (int, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 256), 256)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 || bytes.Equal(f[1], []byte("->")) {
			continue
		}
		pid, err := strconv.Atoi(string(f[4]))
		if err != nil || pid <= 0 {
			continue
		}
		if id, ok := parseFileID(f[5]); ok && id == (fileID{major, minor, ino}) {
			return pid, true
		}
	}
	return 0, false
}

type fileID struct {
	major, minor uint32
	ino          uint64
}

// parseFileID parses /proc/locks' "MAJ:MIN:INODE" (hex, hex, decimal).
func parseFileID(b []byte) (fileID, bool) {
	p := bytes.Split(b, []byte(":"))
	if len(p) != 3 {
		return fileID{}, false
	}
	maj, err1 := strconv.ParseUint(string(p[0]), 16, 32)
	minor, err2 := strconv.ParseUint(string(p[1]), 16, 32)
	ino, err3 := strconv.ParseUint(string(p[2]), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fileID{}, false
	}
	return fileID{uint32(maj), uint32(minor), ino}, true
}
