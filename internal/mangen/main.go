// Command mangen writes a man page from a command's own --help output, so
// that the page cannot drift from the program: `make deb` runs it for
// gserverd, gworkerd and gclient. The help text goes in verbatim (no-fill);
// a cobra command's subcommands ("Available Commands:") each get a
// subsection holding their own --help.
//
//	go run ./internal/mangen -bin bin/gserverd -section 8 \
//	    -summary "Gearman job server" -source "gworkerd 1.0" -sub queue -out gserverd.8
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "", "the program whose --help is documented")
	section := flag.String("section", "1", "man section: 1 for commands, 8 for daemons")
	summary := flag.String("summary", "", "one-line description for the NAME section")
	source := flag.String("source", "", "the .TH source field (package and version)")
	out := flag.String("out", "", "output file (default standard output)")
	extra := flag.String("sub", "", "subcommands to document besides those of a cobra help's \"Available Commands:\" (comma-separated)")
	flag.Parse()
	if *bin == "" || *summary == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mangen -bin PROGRAM -summary TEXT [-section N] [-source TEXT] [-out FILE]")
		os.Exit(2)
	}
	help := func(args ...string) (string, error) { return runHelp(*bin, args...) }
	var subs []string
	if *extra != "" {
		subs = strings.Split(*extra, ",")
	}
	page, err := manPage(filepath.Base(*bin), *section, *summary, *source, subs, help)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
	if *out == "" {
		os.Stdout.WriteString(page)
		return
	}
	if err := os.WriteFile(*out, []byte(page), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}

// runHelp runs `bin args... --help` and returns what it printed (a
// program may print its help on either stream).
func runHelp(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--help")...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.Env = append(os.Environ(), "COLUMNS=80")
	if err := cmd.Run(); err != nil && b.Len() == 0 {
		return "", fmt.Errorf("%s %s --help: %w", bin, strings.Join(args, " "), err)
	}
	return b.String(), nil
}
