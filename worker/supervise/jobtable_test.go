package supervise

import (
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestJobTable: what a child marks through its mapping, the master's
// read-only mapping of the same memfd sees; long handles are cut, a full
// table drops marks rather than overwrite, and a child without a table
// (or with a bad descriptor) works without one.
func TestJobTable(t *testing.T) {
	master, f, err := newJobTable()
	if err != nil {
		t.Fatal(err)
	}
	defer master.close()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Setenv(EnvJobsFD, strconv.Itoa(fd))
	child := openJobTable()
	if child == nil {
		t.Fatal("openJobTable: nil")
	}
	defer child.close()
	long := "H:" + strings.Repeat("x", 300)
	child.start("H:1")
	child.start("H:2")
	child.start(long)
	child.end("H:1")
	child.end("H:unknown")
	got := master.held()
	slices.Sort(got)
	want := []string{"H:2", cutHandle(long)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("held = %q, want %q", got, want)
	}
	child.end(long)
	child.end("H:2")
	if got := master.held(); len(got) != 0 {
		t.Errorf("held after every end = %q", got)
	}
	for i := range jobSlots + 5 {
		child.start("H:" + strconv.Itoa(i))
	}
	if got := master.held(); len(got) != jobSlots || !slices.Contains(got, "H:0") || slices.Contains(got, "H:"+strconv.Itoa(jobSlots)) {
		t.Errorf("a full table holds %d handles, want the first %d", len(got), jobSlots)
	}

	t.Setenv(EnvJobsFD, "")
	if openJobTable() != nil {
		t.Error("a table without the variable")
	}
	t.Setenv(EnvJobsFD, "1") // standard output: not a table
	if openJobTable() != nil {
		t.Error("a table from fd 1")
	}
	var none *jobTable // no table: every call is ignored
	none.start("H:1")
	none.end("H:1")
	if none.held() != nil {
		t.Error("held of no table")
	}
}
