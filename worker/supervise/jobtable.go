package supervise

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// JobsFD is the file descriptor of the job table in a child (the second
// of exec.Cmd.ExtraFiles). The child maps the table and closes the
// descriptor at once, so that it keeps only fds 0-3 and its own
// subprocesses never see the table.
const JobsFD = 4

// EnvJobsFD is set in a child's environment to JobsFD when the master
// passed a job table.
const EnvJobsFD = "GWORKERD_JOBS_FD"

// The job table is shared memory (a memfd) of jobSlots slots of
// jobSlotSize bytes: a state word (0 free, 1 held, 2 being written), the
// handle's length, then the handle, cut to jobHandleMax bytes. A child
// marks a job in it before running the job and clears it after, with
// atomic stores and no system call; the master reads it once the child
// has died, to count the jobs it held (OutcomeLost) even when their
// job_start messages were still waiting in the child's Reporter.
const (
	jobSlots     = 256
	jobSlotSize  = 128
	jobHandleMax = jobSlotSize - 8
	jobTableSize = jobSlots * jobSlotSize
)

const (
	slotFree uint32 = iota
	slotHeld
	slotWriting
)

// jobTable is one side's mapping of a job table.
type jobTable struct {
	mem []byte
}

// newJobTable creates a job table for a child to be started: the
// master's read-only mapping and the descriptor to pass to the child.
// The caller closes the file once the child is started.
func newJobTable() (*jobTable, *os.File, error) {
	fd, err := unix.MemfdCreate("gworkerd-jobs", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("supervise: job table: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gworkerd-jobs")
	if err := f.Truncate(jobTableSize); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("supervise: job table: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, jobTableSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("supervise: job table: %w", err)
	}
	return &jobTable{mem: mem}, f, nil
}

// openJobTable maps the job table the master passed in the environment,
// closes its descriptor and drops the variable; nil when there is none
// or it cannot be mapped (the child then works without it).
func openJobTable() *jobTable {
	v := os.Getenv(EnvJobsFD)
	if v == "" {
		return nil
	}
	_ = os.Unsetenv(EnvJobsFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != jobTableSize {
		return nil
	}
	mem, err := unix.Mmap(fd, 0, jobTableSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return &jobTable{mem: mem}
}

func (t *jobTable) state(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.mem[i*jobSlotSize]))
}

func (t *jobTable) length(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.mem[i*jobSlotSize+4]))
}

// start marks handle held, in the first free slot (none free: not
// marked; a worker holds at most its concurrency, well under jobSlots).
func (t *jobTable) start(handle string) {
	if t == nil {
		return
	}
	h := handle[:min(len(handle), jobHandleMax)]
	for i := range jobSlots {
		if atomic.CompareAndSwapUint32(t.state(i), slotFree, slotWriting) {
			off := i*jobSlotSize + 8
			copy(t.mem[off:off+jobHandleMax], h)
			atomic.StoreUint32(t.length(i), uint32(len(h)))
			atomic.StoreUint32(t.state(i), slotHeld)
			return
		}
	}
}

// end clears the slot of handle.
func (t *jobTable) end(handle string) {
	if t == nil {
		return
	}
	h := handle[:min(len(handle), jobHandleMax)]
	for i := range jobSlots {
		if atomic.LoadUint32(t.state(i)) != slotHeld || int(atomic.LoadUint32(t.length(i))) != len(h) {
			continue
		}
		off := i*jobSlotSize + 8
		if string(t.mem[off:off+len(h)]) == h {
			atomic.StoreUint32(t.state(i), slotFree)
			return
		}
	}
}

// held returns the handles marked held (each cut to jobHandleMax bytes).
// The master calls it once the child has exited.
func (t *jobTable) held() []string {
	if t == nil {
		return nil
	}
	var hs []string
	for i := range jobSlots {
		if atomic.LoadUint32(t.state(i)) != slotHeld {
			continue
		}
		n := min(int(atomic.LoadUint32(t.length(i))), jobHandleMax)
		off := i*jobSlotSize + 8
		hs = append(hs, string(t.mem[off:off+n]))
	}
	return hs
}

// close unmaps the table.
func (t *jobTable) close() {
	if t == nil || t.mem == nil {
		return
	}
	_ = unix.Munmap(t.mem)
	t.mem = nil
}

// cutHandle is handle as the job table keeps it.
func cutHandle(handle string) string { return handle[:min(len(handle), jobHandleMax)] }
