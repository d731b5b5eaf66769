package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/gworkerd/gworkerd/jobs"
	"github.com/gworkerd/gworkerd/worker"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := jobs.NewRegistry()
	for _, name := range []string{"b", "a", "C"} {
		if err := r.Register(name, jobs.Echo()); err != nil {
			t.Fatalf("Register(%q): %v", name, err)
		}
	}
	tests := []struct {
		name    string
		h       worker.Handler
		wantErr error
	}{
		{"a", jobs.Echo(), jobs.ErrDuplicate},
		{"", jobs.Echo(), jobs.ErrInvalidName},
		{"with space", jobs.Echo(), jobs.ErrInvalidName},
		{"nul\x00", jobs.Echo(), jobs.ErrInvalidName},
	}
	for _, tt := range tests {
		if err := r.Register(tt.name, tt.h); !errors.Is(err, tt.wantErr) {
			t.Errorf("Register(%q) = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if err := r.Register("nil", nil); err == nil {
		t.Error("Register with a nil handler: no error")
	}
	if got, want := r.Names(), []string{"C", "a", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if _, ok := r.Lookup("A"); ok {
		t.Error(`Lookup("A") found "a": names must be case-sensitive`)
	}
	if _, ok := r.Lookup("a"); !ok {
		t.Error(`Lookup("a") not found`)
	}
}

func TestBuiltins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		h    worker.Handler
		in   string
		want string
	}{
		{jobs.Echo(), "a\x00b", "a\x00b"},
		{jobs.Reverse(), "hello", "olleh"},
		{jobs.Reverse(), "héllo→", "→olléh"},
		{jobs.Reverse(), "\xff\xfeab", "ba\xfe\xff"},
		{jobs.Reverse(), "", ""},
	}
	for _, tt := range tests {
		got, err := tt.h.Run(context.Background(), newJob("f", tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("Run(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	r, err := jobs.Default(jobs.Options{Dirs: []string{"examples"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Names(), []string{"echo", "resize", "reverse", "shout", "wordcount"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	h, _ := r.Lookup("wordcount")
	if res, err := h.Run(context.Background(), newJob("wordcount", "one two three")); err != nil || string(res) != " words=3\n" {
		t.Errorf("wordcount = %q, %v", res, err)
	}

	// An executable may not shadow a built-in.
	dir := t.TempDir()
	writeScript(t, dir, "job_echo.sh", "#!/bin/sh\ncat\n")
	if _, err := jobs.Default(jobs.Options{Dirs: []string{dir}}); !errors.Is(err, jobs.ErrDuplicate) {
		t.Errorf("executable named like a built-in: err = %v, want ErrDuplicate", err)
	}
}

func TestParseLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want jobs.Line
		err  bool
	}{
		{"status 1 2", jobs.Line{Kind: jobs.LineStatus, Num: 1, Den: 2}, false},
		{"status  10   20 ", jobs.Line{Kind: jobs.LineStatus, Num: 10, Den: 20}, false},
		{"status 1 2\r", jobs.Line{Kind: jobs.LineStatus, Num: 1, Den: 2}, false},
		{"data hello world", jobs.Line{Kind: jobs.LineData, Data: []byte("hello world")}, false},
		{"data", jobs.Line{Kind: jobs.LineData, Data: []byte("")}, false},
		{"warning  two spaces", jobs.Line{Kind: jobs.LineWarning, Data: []byte(" two spaces")}, false},
		{"", jobs.Line{Kind: jobs.LineEmpty}, false},
		{"status 1", jobs.Line{}, true},
		{"status -1 2", jobs.Line{}, true},
		{"status 1 99999999999", jobs.Line{}, true},
		{"Status 1 2", jobs.Line{}, true},
		{" data x", jobs.Line{}, true},
		{"progress 50%", jobs.Line{}, true},
	}
	for _, tt := range tests {
		got, err := jobs.ParseLine(tt.line)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v, error %v", tt.line, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, jobs.ErrBadLine) {
			t.Errorf("ParseLine(%q) error %v is not ErrBadLine", tt.line, err)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"status 1 2", "data x", "warning y", "", "status 4294967295 1", "status 1 2 3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, err := jobs.ParseLine(line)
		if err != nil {
			return
		}
		switch l.Kind {
		case jobs.LineStatus:
			if l.Num < 0 || l.Den < 0 {
				t.Fatalf("negative status %+v from %q", l, line)
			}
			// Round trip: the canonical form parses to the same line.
			again, err := jobs.ParseLine(fmt.Sprintf("status %d %d", l.Num, l.Den))
			if err != nil || !reflect.DeepEqual(again, l) {
				t.Fatalf("round trip of %+v: %+v, %v", l, again, err)
			}
		case jobs.LineData, jobs.LineWarning:
			if len(l.Data) > len(line) {
				t.Fatalf("data longer than the line")
			}
		}
	})
}

// Example shows a registry with built-in handlers.
func Example() {
	r := jobs.NewRegistry()
	_ = r.Register("reverse", jobs.Reverse())
	_ = r.Register("echo", jobs.Echo())
	fmt.Println(r.Names())

	h, _ := r.Lookup("reverse")
	out, _ := h.Run(context.Background(), newJob("reverse", "gearman"))
	fmt.Println(string(out))
	// Output:
	// [echo reverse]
	// namraeg
}
