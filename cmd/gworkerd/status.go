package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/worker/supervise"
)

// exitNotRunning is the exit status of `gworkerd status` when the daemon
// does not run (LSB's "program is not running").
const exitNotRunning = 3

// ctlCall sends req to the running daemon. With nothing running it
// says so, as stop does, in an error of code notRunningCode.
func ctlCall(cmd *cobra.Command, g *globalFlags, req supervise.Request, notRunningCode int) (supervise.Response, error) {
	c, err := loadControl(cmd, g)
	if err != nil {
		return supervise.Response{}, err
	}
	pid, err := masterPid(c.PidFile, c.ControlSocket)
	if err != nil {
		return supervise.Response{}, err
	}
	if pid == 0 {
		return supervise.Response{}, &cliError{msg: notRunning(c.PidFile), code: notRunningCode}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := supervise.Call(ctx, c.ControlSocket, req)
	var re *supervise.RemoteError
	if errors.As(err, &re) {
		return resp, fmt.Errorf("%s: %s", re.Cmd, re.Msg)
	}
	return resp, err
}

func statusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show every child: function, pid, state, uptime, jobs, current job, RSS, restarts, last exit",
		Long: "Show every child: function, pid, state, uptime, jobs, current job, RSS, restarts, last exit.\n" +
			"The memory line says how RSS is measured: a cgroup's working set, or the process tree's RSS.\n" +
			"When gworkerd is not running it says so and exits with status 3.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := ctlCall(cmd, g, supervise.Request{Cmd: "status"}, exitNotRunning)
			var ce *cliError
			if errors.As(err, &ce) && ce.code == exitNotRunning {
				fmt.Fprintln(cmd.OutOrStdout(), ce.msg) // on stdout, as stop says it
				return &cliError{code: exitNotRunning}
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(resp)
			}
			printStatus(cmd.OutOrStdout(), resp)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w io.Writer, resp supervise.Response) {
	fmt.Fprintf(w, "gworkerd pid %d\n", resp.Pid)
	if resp.Status != nil && resp.Status.Memory != "" {
		fmt.Fprintf(w, "memory: %s\n", resp.Status.Memory)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tPID\tSTATE\tUPTIME\tJOBS\tCURRENT JOB\tAGE\tRSS\tRESTARTS\tLAST EXIT")
	if resp.Status != nil {
		for _, c := range resp.Status.Children {
			pid, up, age, job := "-", "-", "-", "-"
			if c.Pid != 0 {
				pid, up = strconv.Itoa(c.Pid), c.Uptime.Round(time.Second).String()
			}
			if c.CurrentJob != "" {
				job, age = c.CurrentJob, c.JobAge.Round(100*time.Millisecond).String()
			}
			last := c.LastExit
			if last == "" {
				last = "-"
			}
			jobs := strconv.Itoa(c.JobsDone)
			if c.Command { // a plain program: its jobs are not seen
				jobs = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
				c.Function, pid, c.State, up, jobs, job, age, humanBytes(c.RSS), c.Restarts, last)
		}
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dK", n>>10)
}

func ctlCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ctl status | start F | stop F | restart F | scale F N | reload",
		Short: "send a command to the running daemon's control socket",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := supervise.Request{Cmd: args[0]}
			switch args[0] {
			case "status", "reload":
				if len(args) != 1 {
					return &usageError{err: fmt.Errorf("ctl %s takes no arguments", args[0])}
				}
			case "start", "stop", "restart":
				if len(args) != 2 {
					return &usageError{err: fmt.Errorf("usage: gworkerd ctl %s FUNCTION", args[0])}
				}
				req.Function = args[1]
			case "scale":
				if len(args) != 3 {
					return &usageError{err: errors.New("usage: gworkerd ctl scale FUNCTION N")}
				}
				n, err := strconv.Atoi(args[2])
				if err != nil || n < 0 {
					return &usageError{err: fmt.Errorf("ctl scale: N must be a count, got %q", args[2])}
				}
				req.Function, req.N = args[1], n
			default:
				return &usageError{err: fmt.Errorf("unknown ctl command %q (want status, start, stop, restart, scale, reload)", args[0])}
			}
			resp, err := ctlCall(cmd, g, req, 1)
			if err != nil {
				return err
			}
			if req.Cmd == "status" {
				printStatus(cmd.OutOrStdout(), resp)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	return cmd
}
