package sysproc

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestLogFileRotation: writes go to the renamed file until Reopen, then
// to the new one; a failed Reopen keeps the old file.
func TestLogFileRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	out, err := OpenLog(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if err := out.Reopen(); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("three\n")); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "one\ntwo\n" || string(cur) != "three\n" {
		t.Errorf("rotated %q, current %q; want \"one\\ntwo\\n\" and \"three\\n\"", old, cur)
	}
	// A failed reopen (the name is now a directory) keeps the old file.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := out.Reopen(); err == nil {
		t.Error("Reopen onto a directory succeeded")
	}
	if _, err := out.Write([]byte("four\n")); err != nil {
		t.Errorf("write after a failed reopen: %v", err)
	}
	if b, _ := os.ReadFile(path + ".2"); string(b) != "three\nfour\n" {
		t.Errorf("after a failed reopen the old file holds %q, want \"three\\nfour\\n\"", b)
	}
}

// TestLogFileSpecial: "stderr" writes to the writer given, "none" nowhere.
func TestLogFileSpecial(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	out, err := OpenLog("stderr", &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = out.Write([]byte("x"))
	if err := out.Reopen(); err != nil || buf.String() != "x" {
		t.Errorf("stderr output: %q, reopen %v", buf.String(), err)
	}
	none, err := OpenLog("none", &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = none.Write([]byte("y"))
	if buf.String() != "x" {
		t.Errorf("none wrote to stderr: %q", buf.String())
	}
}
