// Command gclient submits, watches and administers Gearman jobs: a
// replacement for the `gearman` client mode and `gearadmin` in scripts.
//
//	gclient submit resize photo.json --prio high
//	gclient submit report - --wait < params.json
//	gclient submit thumb --batch photos.jsonl
//	gclient status H:host:42
//	gclient ping
//	gclient admin status --json
//
// Servers come from --servers, GCLIENT_SERVERS or the config file
// (--config, YAML with a `servers` list; config.Client); the default is
// 127.0.0.1:4730. Exit codes are listed by `gclient --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
