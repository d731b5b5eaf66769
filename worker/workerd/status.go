package workerd

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gworkerd/gworkerd/worker/supervise"
)

// PrintStatus writes the daemon's status as a table: the master's pid,
// how memory is measured, one line per child.
func PrintStatus(w io.Writer, resp supervise.Response) {
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

// CtlRequest parses the arguments of `gworkerd ctl`: status | start F |
// stop F | restart F | scale F N | reload. Its errors are usage errors.
func CtlRequest(args []string) (supervise.Request, error) {
	if len(args) == 0 {
		return supervise.Request{}, errors.New("ctl: name a command")
	}
	req := supervise.Request{Cmd: args[0]}
	switch args[0] {
	case "status", "reload":
		if len(args) != 1 {
			return req, fmt.Errorf("ctl %s takes no arguments", args[0])
		}
	case "start", "stop", "restart":
		if len(args) != 2 {
			return req, fmt.Errorf("usage: gworkerd ctl %s FUNCTION", args[0])
		}
		req.Function = args[1]
	case "scale":
		if len(args) != 3 {
			return req, errors.New("usage: gworkerd ctl scale FUNCTION N")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 0 {
			return req, fmt.Errorf("ctl scale: N must be a count, got %q", args[2])
		}
		req.Function, req.N = args[1], n
	default:
		return req, fmt.Errorf("unknown ctl command %q (want status, start, stop, restart, scale, reload)", args[0])
	}
	return req, nil
}
