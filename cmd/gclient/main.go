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
//
// This package is the command line: commands, flags and configuration.
// What the commands do is package client/cli.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/client/cli"
	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	app := &cli.App{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := rootCmd(app, lookupEnv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error, with its suggestions on lines of their own.
		err = &cli.UsageError{Msg: strings.TrimRight(err.Error(), "\n")}
	}
	return cli.Report(stderr, err)
}

// rootCmd builds the command line; before a command runs, it loads the
// configuration into app.
func rootCmd(app *cli.App, lookupEnv func(string) (string, bool)) *cobra.Command {
	root := &cobra.Command{
		Use:   "gclient",
		Short: "Submit, watch and administer Gearman jobs",
		Long: `gclient submits jobs to Gearman job servers (gserverd or gearmand), follows
them and runs the servers' admin commands.

Servers come from --servers, the GCLIENT_SERVERS environment variable
(comma-separated) or the config file given with --config or GCLIENT_CONFIG
(YAML, with a "servers" list). Default: 127.0.0.1:4730.
The global flags can also be set in the environment (GCLIENT_TIMEOUT=30s,
GCLIENT_DIAL_TIMEOUT=1s) or the config file (timeout: 30s); a flag wins
over the environment, which wins over the file. A key the file does not
know is an error naming its line.

` + cli.ExitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadClient(config.Inputs{Flags: cmd.Flags(), LookupEnv: lookupEnv})
			if err != nil {
				return &cli.UsageError{Msg: err.Error()}
			}
			app.Servers, app.Timeout, app.DialTimeout = cfg.Servers, cfg.Timeout, cfg.DialTimeout
			return nil
		},
	}
	root.Version = version.String()
	root.SetVersionTemplate("gclient {{.Version}}\n")
	root.Flags().BoolP("version", "V", false, "print the version and exit")
	config.ClientFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cli.UsageError{Msg: err.Error()} })
	root.AddCommand(submitCmd(app), statusCmd(app), pingCmd(app), adminCmd(app))
	return root
}
