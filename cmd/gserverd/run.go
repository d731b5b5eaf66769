package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gworkerd/gworkerd/internal/sysproc"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/server/serverd"
)

// run is gserverd: it returns the exit status. Only main calls os.Exit.
func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	ctx := context.Background()
	if len(args) > 0 && args[0] == "queue" {
		return runQueue(ctx, args[1:], lookupEnv, os.Stdin, stdout, stderr)
	}
	cmd, err := parseCommandLine(args, lookupEnv, os.Getuid())
	if err != nil {
		fmt.Fprintf(stderr, "gserverd: %v\n", err)
		return 1 // gearmand's status for a bad command line
	}
	if cmd.cfg != nil && !sysproc.IsChild(lookupEnv) {
		for _, w := range cmd.cfg.Warnings {
			fmt.Fprintf(stderr, "gserverd: warning: %s\n", w)
		}
	}
	switch {
	case cmd.help:
		writeUsage(stdout, cmd.fs)
		return 0
	case cmd.version:
		fmt.Fprintf(stdout, "gserverd %s\n", version.String())
		return 0
	case cmd.checkArgs:
		return 0
	}
	cfg := cmd.cfg
	if cfg.Daemon && !sysproc.IsChild(lookupEnv) {
		if err := serverd.StartDaemon(ctx, cfg); err != nil {
			fmt.Fprintf(stderr, "gserverd: %v\n", err)
			return 1
		}
		return 0
	}

	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := serverd.Run(ctx, cfg, serverd.Options{LookupEnv: lookupEnv, Stderr: stderr, Signals: sigs}); err != nil {
		fmt.Fprintf(stderr, "gserverd: %v\n", err)
		return 1
	}
	return 0
}

// runQueue is `gserverd queue export|import`; it returns the exit status:
// 2 for a bad command line, 1 when the export or import fails.
func runQueue(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	err := serverd.Queue(ctx, args, serverd.QueueOptions{LookupEnv: lookupEnv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "gserverd queue: %v\n", err)
	var ue *serverd.UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
