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
	"github.com/spf13/viper"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/protocol"
)

// app holds what every command shares: configuration and streams.
type app struct {
	v      *viper.Viper
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{v: viper.New(), stdin: stdin, stdout: stdout, stderr: stderr}
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
(YAML, TOML or JSON with a "servers" list). Default: 127.0.0.1:4730.
The global flags can also be set in the environment (GCLIENT_TIMEOUT=30s,
GCLIENT_DIAL_TIMEOUT=1s) or the config file (timeout: 30s); a flag wins
over the environment, which wins over the file.

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
	pf := root.PersistentFlags()
	pf.StringSlice("servers", []string{protocol.ServerAddr("127.0.0.1")}, "job servers, host:port, comma-separated")
	pf.String("config", "", "config file (YAML, TOML or JSON) with a servers list")
	pf.Duration("timeout", 0, "give up after this long (0 = no limit; background submits default to 30s)")
	pf.Duration("dial-timeout", 2*time.Second, "connection timeout per server")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(a.submitCmd(), a.statusCmd(), a.pingCmd(), a.adminCmd())
	return root
}

func (a *app) loadConfig(cmd *cobra.Command) error {
	v := a.v
	v.SetEnvPrefix("GCLIENT")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return &usageError{err.Error()}
	}
	if f := v.GetString("config"); f != "" {
		v.SetConfigFile(f)
		if err := v.ReadInConfig(); err != nil {
			return &usageError{fmt.Sprintf("config file %s: %v", f, err)}
		}
	}
	return nil
}

// servers returns the configured servers, splitting comma lists (from
// the environment) and dropping blanks.
func (a *app) servers() []string {
	var out []string
	for _, s := range a.v.GetStringSlice("servers") {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		out = []string{protocol.ServerAddr("127.0.0.1")}
	}
	return out
}

func (a *app) client() (*client.Client, error) {
	return client.New(a.servers(), client.WithDialTimeout(a.v.GetDuration("dial-timeout")))
}

// ctx applies --timeout (or def when it is unset) to ctx.
func (a *app) ctx(ctx context.Context, def time.Duration) (context.Context, context.CancelFunc) {
	d := a.v.GetDuration("timeout")
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
