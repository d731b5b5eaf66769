package serverd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/queuefile"
)

const queueUsage = `Usage:
  gserverd queue export [--file FILE] [store options]
  gserverd queue import [--file FILE] [store options]
  gserverd queue import --from-gearmand-sqlite FILE [--table TABLE] [store options]

export writes every job of the store that the store options name (-q and the
options of that store, as for the server; default -q embedded --data-dir ...)
as JSON lines to FILE (default: standard output). import adds the jobs of a
JSON-lines FILE (default: standard input), or of the queue file that
gearmand's libsqlite3 plugin left (--libsqlite3-db FILE; its table defaults to
gearman_queue), to that store. Jobs already stored with the same function and
unique are replaced. Run them while no gserverd uses the store (the embedded
store is locked by a running gserverd).

Options:
`

// QueueOptions are what Queue reads and writes.
type QueueOptions struct {
	// LookupEnv reads the GSERVERD_* variables. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Stdin is read by import without --file. Default: empty.
	Stdin io.Reader
	// Stdout receives the help and export without --file. Default:
	// discarded.
	Stdout io.Writer
	// Stderr receives the summary line and warnings. Default os.Stderr.
	Stderr io.Writer
}

// Queue is `gserverd queue export|import`: args are its command line
// after "queue". A bad command line is a *UsageError.
func Queue(ctx context.Context, args []string, opts QueueOptions) error {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Stdin == nil {
		opts.Stdin = strings.NewReader("")
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	lookupEnv, stdin, stdout, stderr := opts.LookupEnv, opts.Stdin, opts.Stdout, opts.Stderr
	fs := pflag.NewFlagSet("gserverd queue", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	help := fs.BoolP("help", "h", false, "print this help and exit")
	file := fs.String("file", "", "JSON-lines `file` to write (export) or read (import); default standard output / input")
	fromSQLite := fs.String("from-gearmand-sqlite", "", "import: gearmand's libsqlite3 queue `file` instead of JSON lines")
	table := fs.String("table", queuefile.DefaultSQLiteTable, "with --from-gearmand-sqlite: the `table` (gearmand's --libsqlite3-table)")
	config.ServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return &UsageError{fmt.Errorf("%w (see gserverd queue --help)", err)}
	}
	if *help {
		fmt.Fprint(stdout, queueUsage)
		fmt.Fprint(stdout, fs.FlagUsagesWrapped(100))
		return nil
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "export" && fs.Arg(0) != "import") {
		return &UsageError{fmt.Errorf("want export or import, got %q (see gserverd queue --help)", fs.Args())}
	}
	action := fs.Arg(0)
	if action == "export" && fs.Changed("from-gearmand-sqlite") {
		return &UsageError{errors.New("--from-gearmand-sqlite goes with import")}
	}
	if fs.Changed("table") && !fs.Changed("from-gearmand-sqlite") {
		return &UsageError{errors.New("--table goes with --from-gearmand-sqlite")}
	}
	if *fromSQLite != "" && *file != "" {
		return &UsageError{errors.New("give --file or --from-gearmand-sqlite, not both")}
	}
	cfg, err := config.LoadServer(fs, lookupEnv, os.Getuid())
	if err != nil {
		return &UsageError{err}
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	if cfg.Store.QueueType == "builtin" {
		return &UsageError{errors.New("-q builtin keeps no jobs to export or import; name a store (-q embedded, postgres, mysql, redis or libsqlite3)")}
	}
	if *fromSQLite != "" && cfg.Store.QueueType == "libsqlite3" && sameFile(*fromSQLite, cfg.Store.SQLiteDB) {
		return &UsageError{errors.New("--from-gearmand-sqlite names the --libsqlite3-db file itself: -q libsqlite3 serves it as it is, there is nothing to import")}
	}
	st, err := openStore(ctx, cfg, "", log)
	if err != nil {
		return err
	}
	n, err := moveQueue(ctx, action, *file, *fromSQLite, *table, store.WithTimeout(st, cfg.Store.StoreTimeout), stdin, stdout)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close the store: %w", cerr)
	}
	where := cfg.Store.QueueType
	switch cfg.Store.QueueType {
	case "embedded":
		where += " " + cfg.Store.DataDir
	case "libsqlite3":
		where += " " + cfg.Store.SQLiteDB
	}
	if err != nil {
		return fmt.Errorf("%s (%d jobs done; store %s): %w", action, n, where, err)
	}
	verb := "exported from"
	if action == "import" {
		verb = "imported into"
	}
	fmt.Fprintf(stderr, "gserverd queue: %d jobs %s %s\n", n, verb, where)
	return nil
}

// moveQueue does the export or import and returns how many jobs it moved.
func moveQueue(ctx context.Context, action, file, fromSQLite, table string, st store.Store, stdin io.Reader, stdout io.Writer) (int, error) {
	switch {
	case action == "export":
		if file == "" {
			return queuefile.Export(ctx, st, stdout)
		}
		f, err := os.Create(file)
		if err != nil {
			return 0, err
		}
		n, err := queuefile.Export(ctx, st, f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		return n, err
	case fromSQLite != "":
		return queuefile.ImportGearmandSQLite(ctx, fromSQLite, table, st)
	case file == "":
		return queuefile.Import(ctx, stdin, st)
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return queuefile.Import(ctx, f, st)
}

// sameFile reports whether the paths a and b name one existing file.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
