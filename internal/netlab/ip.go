//go:build linux

package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// run runs the ip program with args, stdin (ip -batch - reads its
// commands there) and returns an error quoting what it printed.
func run(ctx context.Context, ip, stdin string, args ...string) error {
	_, err := ipCmd(ctx, ip, stdin, args...)
	return err
}

// output runs the ip program with args and returns its standard output.
func output(ctx context.Context, ip string, args ...string) (string, error) {
	return ipCmd(ctx, ip, "", args...)
}

func ipCmd(ctx context.Context, ip, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, ip, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		what := strings.Join(args, " ")
		if stdin != "" {
			what += " <<" + strings.ReplaceAll(strings.TrimSpace(stdin), "\n", "; ")
		}
		return "", fmt.Errorf("netlab: ip %s: %w: %s", what, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
