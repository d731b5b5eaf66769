package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gworkerd/gworkerd/client"
)

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// Status prints the status of the job named by handle, HANDLE or
// SERVER/HANDLE. Handles are unique per server only: the server named by
// server, or in handle, is asked; without one every server is asked
// and the first that knows the handle answers.
func (a *App) Status(ctx context.Context, handle, server string, asJSON bool) error {
	id := handle
	if srv, h, ok := strings.Cut(id, "/"); ok && server == "" {
		server, id = srv, h
	}
	servers := a.Servers
	if server != "" {
		servers = []string{server}
	}
	c, err := a.dial(servers)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := a.ctx(ctx, statusTimeout)
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
	t := newTable(a.Stdout)
	fmt.Fprintln(t, "HANDLE\tKNOWN\tRUNNING\tPROGRESS\tSERVER")
	fmt.Fprintf(t, "%s\t%v\t%v\t%d/%d\t%s\n", st.Handle, st.Known, st.Running, st.Numerator, st.Denominator, st.Server)
	return t.Flush()
}

// Ping echoes to every server and prints the round-trip times; it fails
// when a server does not answer.
func (a *App) Ping(ctx context.Context, asJSON bool) error {
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
		ctx, cancel := a.ctx(ctx, pingTimeout)
		start := a.now()
		_, err := c.EchoServer(ctx, s, []byte("gclient ping"))
		cancel()
		r := result{Server: s, OK: err == nil}
		if err != nil {
			r.Error = err.Error()
			errs = append(errs, err)
		} else {
			r.RTTms = float64(a.now().Sub(start).Microseconds()) / 1000
		}
		out = append(out, r)
	}
	if asJSON {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		t := newTable(a.Stdout)
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
}

// AdminCommand is one admin command (`gclient admin status`): it runs
// against each server and prints a table, or JSON.
type AdminCommand struct {
	// Use is the name and the arguments, as cobra's Use.
	Use string
	// Short says what it shows or does.
	Short string
	args  func(name string, args []string) error
	do    func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error)
}

// Name is the command's name, the first word of Use.
func (c AdminCommand) Name() string {
	name, _, _ := strings.Cut(c.Use, " ")
	return name
}

// CheckArgs returns a *UsageError when args are not the command's.
func (c AdminCommand) CheckArgs(args []string) error { return c.args(c.Name(), args) }

func okTable(msg string) func(io.Writer) {
	return func(w io.Writer) { fmt.Fprintln(w, msg) }
}

func exactArgs(n int, what string) func(string, []string) error {
	return func(name string, args []string) error {
		if len(args) != n {
			return &UsageError{fmt.Sprintf("admin %s needs %s", name, what)}
		}
		return nil
	}
}

// AdminCommands returns the admin commands, in the order help lists them.
func AdminCommands() []AdminCommand {
	none := exactArgs(0, "no arguments")
	return []AdminCommand{
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
		{"maxqueue FUNCTION SIZE|HIGH NORMAL LOW", "Limit a function's queue (0 = no limit)", func(_ string, args []string) error {
			if len(args) != 2 && len(args) != 4 {
				return &UsageError{"admin maxqueue needs FUNCTION and one size, or three (high normal low)"}
			}
			return nil
		}, func(ctx context.Context, ad *client.Admin, args []string) (any, func(io.Writer), error) {
			sizes := make([]int, 0, 3)
			for _, s := range args[1:] {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return nil, nil, &UsageError{fmt.Sprintf("admin maxqueue: size %q is not a number >= 0", s)}
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

// Admin runs cmd with args on every server, or on server alone when it
// is not "". Tables for people, one per server under a "== SERVER"
// line when there are several; with asJSON the command's result, or with
// several servers a list of {"server", "result"} (or "error") objects.
func (a *App) Admin(ctx context.Context, cmd AdminCommand, server string, asJSON bool, args []string) error {
	servers := a.Servers
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
		ctx, cancel := a.ctx(ctx, statusTimeout)
		v, table, err := cmd.do(ctx, c.Admin(s), args)
		cancel()
		var ue *UsageError
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
			fmt.Fprintf(a.Stdout, "== %s\n", s)
		}
		if err != nil {
			if len(servers) > 1 { // a single server's error is the final message
				fmt.Fprintf(a.Stderr, "gclient: %s: %s\n", s, oneLine(err.Error()))
			}
			continue
		}
		table(a.Stdout)
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
}
