package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	rt "github.com/gworkerd/gworkerd/jobs/runtime"
)

// Runtime is a language runtime shipped with gworkerd that loads handler
// files as resident handlers.
type Runtime string

// The shipped runtimes.
const (
	RuntimePHP    Runtime = "php"
	RuntimePython Runtime = "python"
)

// source returns the runtime's script and its file extension.
func (r Runtime) source() ([]byte, string, error) {
	switch r {
	case RuntimePHP:
		return rt.PHP(), ".php", nil
	case RuntimePython:
		return rt.Python(), ".py", nil
	}
	return nil, "", fmt.Errorf("jobs: unknown runtime %q", string(r))
}

// File writes the runtime's script, embedded in gworkerd, to dir (default:
// gworkerd-runtime-<uid> under the system's temporary directory) unless
// the same script is already there, and returns its path. The name holds
// the script's hash, so that versions of gworkerd do not share a file.
// The directory must belong to this user and be writable by no one else.
func (r Runtime) File(dir string) (string, error) {
	src, ext, err := r.source()
	if err != nil {
		return "", err
	}
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "gworkerd-runtime-"+strconv.Itoa(os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("jobs: runtime directory: %w", err)
	}
	if err := privateDir(dir); err != nil {
		return "", err
	}
	sum := sha256.Sum256(src)
	path := filepath.Join(dir, "gworkerd-"+hex.EncodeToString(sum[:6])+ext)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, src) {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".runtime-*")
	if err != nil {
		return "", fmt.Errorf("jobs: write runtime: %w", err)
	}
	_, werr := tmp.Write(src)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("jobs: write runtime: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("jobs: write runtime: %w", err)
	}
	return path, nil
}

// privateDir checks that dir is a directory of this user that no one else
// may write to: another user could otherwise swap the runtime.
func privateDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("jobs: runtime directory: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Getuid() || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("jobs: runtime directory %s must be a directory owned by uid %d and writable by it alone", dir, os.Getuid())
	}
	return nil
}
