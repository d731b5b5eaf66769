package embedded

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/gworkerd/gworkerd/server/store"
)

// storeWithLog makes a stopped store of n jobs, one Add each, and returns
// its directory and the path of its write-ahead log.
func storeWithLog(t testing.TB, n int) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		j := store.Job{Function: "f", Key: store.NewKey(time.Unix(0, 0), uint64(i+1)), Data: bytes.Repeat([]byte{'d'}, 100)}
		if err := s.Add(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var size int64
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil && st.Size() > size {
			log, size = l, st.Size()
		}
	}
	if log == "" {
		t.Fatalf("no write-ahead log in %s", dir)
	}
	return dir, log
}

// TestDamagedLog overwrites 40 bytes of the log of a stopped store of
// 2,000 jobs. In the middle of the log, Open refuses the store with a
// *DamageError naming the file and counting the jobs that would be lost,
// logged at error level; with AcceptDamage it opens, and the jobs it has
// plus the count are the 2,000. At the end of the log (a torn tail, what
// a crash leaves) it opens without complaint.
func TestDamagedLog(t *testing.T) {
	const jobs = 2000
	tests := []struct {
		name       string
		at         func(size int64) int64
		wantDamage bool
	}{
		{"middle", func(size int64) int64 { return size / 2 }, true},
		{"tail", func(size int64) int64 { return size - 40 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, logPath := storeWithLog(t, jobs)
			st, err := os.Stat(logPath)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(logPath, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 40), tc.at(st.Size())); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			logger, hook := logtest.NewNullLogger()
			ctx := context.Background()
			s, err := Open(ctx, Options{Dir: dir, Logger: logger})
			if !tc.wantDamage {
				if err != nil {
					t.Fatalf("Open with a torn tail: %v", err)
				}
				defer func() { _ = s.Close() }()
				if n, err := s.Count(ctx); err != nil || n != jobs-1 {
					t.Fatalf("Count = %d, %v; want %d (all but the torn last one)", n, err, jobs-1)
				}
				for _, e := range hook.AllEntries() {
					if e.Level <= logrus.ErrorLevel {
						t.Errorf("error logged for a torn tail: %s %v", e.Message, e.Data)
					}
				}
				return
			}
			var de *DamageError
			if !errors.As(err, &de) {
				if err == nil {
					_ = s.Close()
				}
				t.Fatalf("Open of a damaged store: %v, want a *DamageError", err)
			}
			if de.File != logPath || de.LostJobs <= 0 || de.LostJobs >= jobs {
				t.Fatalf("DamageError = %+v, want file %s and 0 < lost < %d", de, logPath, jobs)
			}
			if !loggedDamage(hook, logPath) {
				t.Errorf("no error-level message naming %s with lost_jobs; got %v", logPath, hook.AllEntries())
			}

			hook.Reset()
			s, err = Open(ctx, Options{Dir: dir, Logger: logger, AcceptDamage: true})
			if err != nil {
				t.Fatalf("Open with AcceptDamage: %v", err)
			}
			defer func() { _ = s.Close() }()
			n, err := s.Count(ctx)
			if err != nil || n+de.LostJobs != jobs {
				t.Fatalf("with AcceptDamage: %d jobs (%v) + %d reported lost, want %d", n, err, de.LostJobs, jobs)
			}
			if !loggedDamage(hook, logPath) {
				t.Errorf("AcceptDamage: no error-level message naming %s; got %v", logPath, hook.AllEntries())
			}
			t.Logf("damage at %d: %d jobs kept, %d reported lost", de.Offset, n, de.LostJobs)
		})
	}
}

func loggedDamage(hook *logtest.Hook, file string) bool {
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && e.Data["file"] == file && e.Data["lost_jobs"] != nil {
			return true
		}
	}
	return false
}

// FuzzScanLog feeds scanLog logs of a real store with arbitrary bytes
// written over them: it must not panic, and what it calls damage must
// have a stop offset inside the file.
func FuzzScanLog(f *testing.F) {
	f.Add(int64(0), []byte{0})
	f.Add(int64(40000), bytes.Repeat([]byte{0xff}, 40))
	f.Add(int64(1<<20), []byte("x"))
	_, orig := storeWithLog(f, 300)
	good, err := os.ReadFile(orig)
	if err != nil {
		f.Fatal(err)
	}
	num := logNum(f, orig)
	f.Fuzz(func(t *testing.T, at int64, junk []byte) {
		b := bytes.Clone(good)
		logPath := filepath.Join(t.TempDir(), filepath.Base(orig))
		if len(b) == 0 || len(junk) == 0 {
			return
		}
		if at < 0 {
			at = -at
		}
		at %= int64(len(b))
		copy(b[at:], junk)
		if err := os.WriteFile(logPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		sc, err := scanLog(logPath, num)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("scanLog: %v", err)
		}
		if sc.damaged && (sc.offset < 0 || sc.offset > int64(len(b))) {
			t.Fatalf("damage at %d in a %d-byte log", sc.offset, len(b))
		}
	})
}

func logNum(t testing.TB, path string) uint64 {
	t.Helper()
	var n uint64
	for _, c := range filepath.Base(path) {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
