// Command gworkerd is the supervised Gearman worker daemon: a master
// process that runs one child process per worker slot of every function
// (built-in handlers, executables job_<name> found in the job
// directories, resident PHP and Python handlers, existing worker programs
// given by command), restarts them with backoff, recycles them between
// jobs, scales them by backlog and reloads them one at a time.
//
//	gworkerd start [--foreground]   start the daemon (behind a locked pid file)
//	gworkerd stop                   stop it and wait until every process is gone
//	gworkerd restart                stop, then start
//	gworkerd reload                 re-read the config, re-scan the job directories
//	gworkerd status [--json]        one line per child
//	gworkerd check                  validate the config and exit
//	gworkerd ctl CMD [FUNCTION [N]] start, stop, restart or scale one function
//	gworkerd import gearmanmanager|supervisord FILE
//	                                their configuration as gworkerd YAML
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/internal/version"
)

// envConfig names the config file when --config is not given.
const envConfig = "GWORKERD_CONFIG"

const defaultConfig = "/etc/gworkerd/gworkerd.yaml"

func main() {
	// Before anything starts a process: no program gworkerd starts
	// inherits a descriptor it was not given on purpose.
	if err := inheritNothing(); err != nil {
		fmt.Fprintln(os.Stderr, "gworkerd:", err)
		os.Exit(1)
	}
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gworkerd:", err)
		os.Exit(1)
	}
}

type globalFlags struct {
	config string
}

func (g *globalFlags) path() string {
	if g.config != "" {
		return g.config
	}
	if p := os.Getenv(envConfig); p != "" {
		return p
	}
	return defaultConfig
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "gworkerd",
		Short:         "supervised Gearman worker daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	root.SetVersionTemplate("gworkerd {{.Version}}\n")
	root.Flags().BoolP("version", "V", false, "print the version and exit")
	root.PersistentFlags().StringVarP(&g.config, "config", "c", "", "config file (default $"+envConfig+" or "+defaultConfig+")")
	root.AddCommand(
		startCmd(g), stopCmd(g), restartCmd(g), reloadCmd(g), statusCmd(g), checkCmd(g), ctlCmd(g), childCmd(g), importCmd(g),
	)
	return root
}
