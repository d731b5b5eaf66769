package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/client"
)

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func (a *app) statusCmd() *cobra.Command {
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
				return &usageError{"status needs one HANDLE"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if srv, h, ok := strings.Cut(id, "/"); ok && server == "" {
				server, id = srv, h
			}
			servers := a.servers()
			if server != "" {
				servers = []string{server}
			}
			c, err := a.dial(servers)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := a.ctx(cmd.Context(), 10*time.Second)
			defer cancel()
			h := client.Handle{ID: id}
			if server != "" {
				h.Server = c.Servers()[0]
			}
			st, err := c.Status(ctx, h)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(st)
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "HANDLE\tKNOWN\tRUNNING\tPROGRESS\tSERVER")
			fmt.Fprintf(t, "%s\t%v\t%v\t%d/%d\t%s\n", st.Handle, st.Known, st.Running, st.Numerator, st.Denominator, st.Server)
			return t.Flush()
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "the server that created the job")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) pingCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ping",
		Short: "Echo to every server and show the round-trip time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			defer c.Close()
			type result struct {
				Server string  `json:"server"`
				OK     bool    `json:"ok"`
				RTTms  float64 `json:"rtt_ms"`
				Error  string  `json:"error,omitempty"`
			}
			var out []result
			var errs []error
			for _, s := range c.Servers() {
				ctx, cancel := a.ctx(cmd.Context(), 5*time.Second)
				start := time.Now()
				_, err := c.EchoServer(ctx, s, []byte("gclient ping"))
				cancel()
				r := result{Server: s, OK: err == nil}
				if err != nil {
					r.Error = err.Error()
					errs = append(errs, err)
				} else {
					r.RTTms = float64(time.Since(start).Microseconds()) / 1000
				}
				out = append(out, r)
			}
			if asJSON {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				t := newTable(a.stdout)
				fmt.Fprintln(t, "SERVER\tSTATUS\tRTT")
				for _, r := range out {
					if r.OK {
						fmt.Fprintf(t, "%s\tok\t%.3fms\n", r.Server, r.RTTms)
					} else {
						fmt.Fprintf(t, "%s\tunreachable\t-\n", r.Server)
					}
				}
				if err := t.Flush(); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// adminOp is one admin subcommand: it runs against one server and returns
// a value for --json and a function drawing it as a table.
type adminOp struct {
	use, short string
	args       cobra.PositionalArgs
	do         func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error)
}

func okTable(msg string) func(io.Writer) {
	return func(w io.Writer) { fmt.Fprintln(w, msg) }
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{fmt.Sprintf("admin %s needs %s", cmd.Name(), what)}
		}
		return nil
	}
}

func adminOps() []adminOp {
	none := exactArgs(0, "no arguments")
	return []adminOp{
		{"status", "Jobs and workers per function", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			st, err := ad.Status(ctx)
			return st, func(w io.Writer) {
				t := newTable(w)
				fmt.Fprintln(t, "FUNCTION\tTOTAL\tRUNNING\tWORKERS")
				for _, s := range st {
					fmt.Fprintf(t, "%s\t%d\t%d\t%d\n", s.Function, s.Total, s.Running, s.Workers)
				}
				t.Flush()
			}, err
		}},
		{"workers", "Connections and the functions they can do", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			ws, err := ad.Workers(ctx)
			return ws, func(w io.Writer) {
				t := newTable(w)
				fmt.Fprintln(t, "FD\tADDRESS\tCLIENT ID\tFUNCTIONS")
				for _, x := range ws {
					fmt.Fprintf(t, "%d\t%s\t%s\t%s\n", x.FD, x.Addr, x.ClientID, strings.Join(x.Functions, " "))
				}
				t.Flush()
			}, err
		}},
		{"priority", "Queued jobs per function and priority", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			ps, err := ad.PriorityStatus(ctx)
			return ps, func(w io.Writer) {
				t := newTable(w)
				fmt.Fprintln(t, "FUNCTION\tHIGH\tNORMAL\tLOW\tWORKERS")
				for _, p := range ps {
					fmt.Fprintf(t, "%s\t%d\t%d\t%d\t%d\n", p.Function, p.High, p.Normal, p.Low, p.Workers)
				}
				t.Flush()
			}, err
		}},
		{"jobs", "Every job: handle, retries, ignored, persisted", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			js, err := ad.Jobs(ctx)
			return js, func(w io.Writer) {
				t := newTable(w)
				fmt.Fprintln(t, "HANDLE\tRETRIES\tIGNORED\tPERSISTED")
				for _, j := range js {
					fmt.Fprintf(t, "%s\t%d\t%v\t%v\n", j.Handle, j.Retries, j.Ignore, j.Queued)
				}
				t.Flush()
			}, err
		}},
		{"uniques", "The unique id of every job", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			us, err := ad.UniqueJobs(ctx)
			if us == nil {
				us = []string{}
			}
			return us, func(w io.Writer) {
				fmt.Fprintln(w, "UNIQUE")
				for _, u := range us {
					fmt.Fprintln(w, u)
				}
			}, err
		}},
		{"cancel HANDLE", "Cancel a queued job", exactArgs(1, "a HANDLE"), func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error) {
			err := ad.CancelJob(ctx, args[0])
			return map[string]string{"cancelled": args[0]}, okTable("OK"), err
		}},
		{"create FUNCTION", "Create a function", exactArgs(1, "a FUNCTION"), func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error) {
			err := ad.CreateFunction(ctx, args[0])
			return map[string]string{"created": args[0]}, okTable("OK"), err
		}},
		{"drop FUNCTION", "Drop a function without workers or jobs", exactArgs(1, "a FUNCTION"), func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error) {
			err := ad.DropFunction(ctx, args[0])
			return map[string]string{"dropped": args[0]}, okTable("OK"), err
		}},
		{"maxqueue FUNCTION SIZE|HIGH NORMAL LOW", "Limit a function's queue (0 = no limit)", func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 && len(args) != 4 {
				return &usageError{"admin maxqueue needs FUNCTION and one size, or three (high normal low)"}
			}
			return nil
		}, func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error) {
			sizes := make([]int, 0, 3)
			for _, s := range args[1:] {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return nil, nil, &usageError{fmt.Sprintf("admin maxqueue: size %q is not a number >= 0", s)}
				}
				sizes = append(sizes, n)
			}
			err := ad.MaxQueue(ctx, args[0], sizes...)
			return map[string]any{"function": args[0], "sizes": sizes}, okTable("OK"), err
		}},
		{"version", "The server's version", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			v, err := ad.Version(ctx)
			return map[string]string{"version": v}, okTable(v), err
		}},
		{"pid", "The server's process id", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			p, err := ad.PID(ctx)
			return map[string]int{"pid": p}, okTable(strconv.Itoa(p)), err
		}},
		{"verbose", "The server's log level", none, func(ctx context.Context, ad *client.Admin, _ []string) (any, func(io.Writer), error) {
			v, err := ad.Verbose(ctx)
			return map[string]string{"verbose": v}, okTable(v), err
		}},
	}
}

func (a *app) adminCmd() *cobra.Command {
	var asJSON bool
	var server string
	cmd := &cobra.Command{
		Use:   "admin COMMAND",
		Short: "Run an admin command on every server (gearadmin)",
		Long: `Run an admin command on every configured server (or only --server).
Tables for people; --json for scripts: with one server the command's result,
with several a list of {"server", "result"} (or "error") objects.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Sprintf("unknown admin command %q", args[0])}
			}
			return &usageError{"admin needs a command: status, workers, priority, jobs, uniques, cancel, create, drop, maxqueue, version, pid, verbose"}
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.PersistentFlags().StringVar(&server, "server", "", "run on this server only")
	for _, op := range adminOps() {
		cmd.AddCommand(&cobra.Command{
			Use:   op.use,
			Short: op.short,
			Args:  op.args,
			RunE: func(cmd *cobra.Command, args []string) error {
				servers := a.servers()
				if server != "" {
					servers = []string{server}
				}
				c, err := a.dial(servers)
				if err != nil {
					return err
				}
				defer c.Close()
				type entry struct {
					Server string `json:"server"`
					Result any    `json:"result,omitempty"`
					Error  string `json:"error,omitempty"`
				}
				var entries []entry
				var errs []error
				for _, s := range c.Servers() {
					ctx, cancel := a.ctx(cmd.Context(), 10*time.Second)
					v, table, err := op.do(ctx, c.Admin(s), args)
					cancel()
					var ue *usageError
					if errors.As(err, &ue) {
						return err
					}
					e := entry{Server: s, Result: v}
					if err != nil {
						e.Result, e.Error = nil, err.Error()
						errs = append(errs, err)
					}
					entries = append(entries, e)
					if asJSON {
						continue
					}
					if len(servers) > 1 {
						fmt.Fprintf(a.stdout, "== %s\n", s)
					}
					if err != nil {
						if len(servers) > 1 { // a single server's error is the final message
							fmt.Fprintf(a.stderr, "gclient: %s: %s\n", s, oneLine(err.Error()))
						}
						continue
					}
					table(a.stdout)
				}
				if asJSON {
					var err error
					if len(entries) == 1 {
						if entries[0].Error == "" {
							err = a.printJSON(entries[0].Result)
						}
					} else {
						err = a.printJSON(entries)
					}
					if err != nil {
						return err
					}
				}
				return errors.Join(errs...)
			},
		})
	}
	return cmd
}
