package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/version"
)

// app holds what every command shares: configuration and streams.
type app struct {
	lookupEnv func(string) (string, bool)
	cfg       *config.Client // set before a command runs
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{lookupEnv: lookupEnv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error, with its suggestions on lines of their own.
		err = &usageError{strings.TrimRight(err.Error(), "\n")}
	}
	code, hint := classify(err)
	if _, ok := err.(*jobError); !ok {
		msg := "gclient: " + oneLine(err.Error())
		if _, ok := err.(*usageError); ok {
			msg = "gclient: " + strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n\n", "\n")
		}
		switch {
		case hint != "" && strings.Contains(msg, "\n"):
			msg += "\n" + hint
		case hint != "":
			msg += "; " + hint
		}
		fmt.Fprintln(stderr, msg)
	}
	return code
}

// oneLine joins the lines of a multi-line error (errors.Join).
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func (a *app) rootCmd() *cobra.Command {
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

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.loadConfig(cmd)
		},
	}
	root.Version = version.String()
	root.SetVersionTemplate("gclient {{.Version}}\n")
	root.Flags().BoolP("version", "V", false, "print the version and exit")
	config.ClientFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(a.submitCmd(), a.statusCmd(), a.pingCmd(), a.adminCmd())
	return root
}

func (a *app) loadConfig(cmd *cobra.Command) error {
	cfg, err := config.LoadClient(config.Inputs{Flags: cmd.Flags(), LookupEnv: a.lookupEnv})
	if err != nil {
		return &usageError{err.Error()}
	}
	a.cfg = cfg
	return nil
}

// servers returns the configured servers.
func (a *app) servers() []string { return a.cfg.Servers }

// dial connects to servers with the configured dial timeout.
func (a *app) dial(servers []string) (*client.Client, error) {
	return client.New(servers, client.WithDialTimeout(a.cfg.DialTimeout))
}

func (a *app) client() (*client.Client, error) { return a.dial(a.servers()) }

// ctx applies --timeout (or def when it is unset) to ctx.
func (a *app) ctx(ctx context.Context, def time.Duration) (context.Context, context.CancelFunc) {
	d := a.cfg.Timeout
	if d <= 0 {
		d = def
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
