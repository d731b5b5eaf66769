package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/client/cli"
)

func submitCmd(app *cli.App) *cobra.Command {
	var f cli.SubmitFlags
	cmd := &cobra.Command{
		Use:   "submit FUNCTION [FILE|-]",
		Short: "Submit a job (background by default; --wait runs it in the foreground)",
		Long: `Submit a job to FUNCTION. The payload is the content of FILE, or stdin
with -, or empty when neither is given.

By default the job runs in the background and gclient prints its handle.
With --wait it runs in the foreground: the worker's data is streamed to
stdout, its status and warnings to stderr, and gclient exits non-zero when
the job fails or raises an exception.

With --batch FILE.jsonl every line is one background job, submitted
pipelined. A line that is a JSON object with a "payload" key is a job
description
  {"payload": "...", "unique": "...", "prio": "high", "at": "...", "function": "..."}
(payload may be any JSON value; a non-string value is sent as its JSON text;
the other keys are optional and override the flags; any other key is an
error). Any other line, a JSON object without "payload" included, is the
payload itself, sent as written: a file of one resize request per line
submits each request. Handles are printed one per line, a summary at the end;
a run of lines failing with the same error is reported once.

With --wait on a terminal, a result that does not end with a newline gets one.

--at takes an RFC 3339 time, a unix time in seconds, or a delay such as +10m.`,
		Example: `  gclient submit resize photo.json --prio high
  echo hello | gclient submit reverse - --wait
  gclient submit mail --batch mails.jsonl --prio low`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return &cli.UsageError{Msg: "submit needs FUNCTION and at most one FILE"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Submit(cmd.Context(), args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Prio, "prio", "normal", "priority: high, normal or low")
	fl.StringVar(&f.Unique, "unique", "", "unique id (jobs with the same one coalesce)")
	fl.StringVar(&f.At, "at", "", "run at this time (background only)")
	fl.BoolVar(&f.Wait, "wait", false, "run in the foreground and stream the result")
	fl.StringVar(&f.Batch, "batch", "", "submit one background job per line of this JSON-lines file")
	fl.BoolVar(&f.JSON, "json", false, "print the handle and server as JSON")
	return cmd
}

func statusCmd(app *cli.App) *cobra.Command {
	var server string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [SERVER/]HANDLE",
		Short: "Show a job's status (asks every server unless the server is named)",
		Long: `Show a job's status. Handles are only unique per server (two gearmand on
one host both hand out H:host:1), so name the server that created the job
with --server or as SERVER/HANDLE (submit --json prints both); otherwise
every server is asked and the first that knows the handle answers.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &cli.UsageError{Msg: "status needs one HANDLE"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Status(cmd.Context(), args[0], server, asJSON)
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "the server that created the job")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func pingCmd(app *cli.App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ping",
		Short: "Echo to every server and show the round-trip time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.Ping(cmd.Context(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func adminCmd(app *cli.App) *cobra.Command {
	var asJSON bool
	var server string
	ops := cli.AdminCommands()
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.Name()
	}
	cmd := &cobra.Command{
		Use:   "admin COMMAND",
		Short: "Run an admin command on every server (gearadmin)",
		Long: `Run an admin command on every configured server (or only --server).
Tables for people; --json for scripts: with one server the command's result,
with several a list of {"server", "result"} (or "error") objects.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &cli.UsageError{Msg: fmt.Sprintf("unknown admin command %q", args[0])}
			}
			return &cli.UsageError{Msg: "admin needs a command: " + strings.Join(names, ", ")}
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.PersistentFlags().StringVar(&server, "server", "", "run on this server only")
	for _, op := range ops {
		cmd.AddCommand(&cobra.Command{
			Use:   op.Use,
			Short: op.Short,
			Args:  func(_ *cobra.Command, args []string) error { return op.CheckArgs(args) },
			RunE: func(cmd *cobra.Command, args []string) error {
				return app.Admin(cmd.Context(), op, server, asJSON, args)
			},
		})
	}
	return cmd
}
