// Command gserverd is a Gearman job server, a drop-in for gearmand: the
// same protocol, admin commands and command line (see gserverd --help).
//
// Configuration comes from gearmand's flags, then GSERVERD_* environment
// variables, then (for the port) GEARMAND_PORT, then the --config-file
// (gearmand's format or YAML; /etc/gearmand.conf when it exists), then the
// defaults; a bad value is reported with its key and its source (flag,
// variable, or file and line). The README has the table of every gearmand
// option and what gserverd does with it.
//
// Where the command line differs from gearmand 1.1.20:
//   - -l/--log-file defaults to stderr (gearmand: /var/log/gearmand.log),
//     since gserverd runs in the foreground by default; use -l FILE with -d.
//   - -P/--pid-file defaults to none (gearmand: /var/gearmand.pid). The pid
//     file is locked while gserverd runs, in the foreground too; a second
//     start on it fails naming the running pid.
//   - -j/--job-retries has gearmand HEAD's meaning: -1 unlimited (default),
//     0 no retry, N at most N attempts (1.1.20 used 0 for unlimited).
//   - -t/--threads N > 0 sets GOMAXPROCS; -b/--backlog is accepted but Go
//     listens with the system's somaxconn; -R/--round-robin is a no-op
//     (always on, as in HEAD).
//   - -L localhost binds 127.0.0.1 and ::1 even when the hosts file maps
//     localhost to 127.0.0.1 only; other names bind every address they
//     resolve to. Without -L, one dual-stack listener takes all addresses.
//   - --keepalive* apply to accepted connections (HEAD #386); without
//     --keepalive, accepted connections have no TCP keepalive.
//   - -v raises the level one step each (-vvv: INFO); gearmand 1.1.20
//     refuses -v. --verbose takes gearmand's level names.
//   - --syslog also logs to the local syslog; --coredump,
//     --hashtable-buckets and the options of the memcached, sqlite,
//     tokyocabinet and drizzle queues are accepted and ignored, with one
//     warning line each on stderr.
//   - -d reports the daemon's start-up error (bind, pid file, store) and
//     exits non-zero instead of detaching blindly.
//   - -q/--queue-type defaults to embedded: background jobs are kept in a
//     store in --data-dir (default /var/lib/gserverd as root, else
//     ~/.local/state/gserverd; gserverd-PORT on any port but 4730, so that
//     servers differing only in -p do not share it), written before
//     JOB_CREATED (fsynced with --sync always, handed to the kernel with
//     interval and none) and replayed at start. -q builtin is gearmand's
//     in-memory default. The embedded store locks its directory: a second
//     gserverd on the same --data-dir fails at start, naming it and the
//     pid of the process that has it.
//   - -q libsqlite3 --libsqlite3-db FILE [--libsqlite3-table T] serves
//     gearmand's SQLite queue file in place, on gearmand's table, so a
//     queue gearmand left is served and gearmand can read back what
//     gserverd leaves; --sync sets SQLite's synchronous pragma (always
//     FULL, interval NORMAL, none OFF). Concurrent submits share commits.
//   - The HTTP endpoint (--http-listen) defaults to 127.0.0.1 on the
//     Gearman port + 1 (4731 for 4730); when that default is taken the
//     server runs without it and logs one line at error level, the
//     default level.
//
// Queue tools: `gserverd queue export [--file F]` writes the store's jobs
// as JSON lines, `gserverd queue import [--file F]` adds them to a store,
// and `gserverd queue import --from-gearmand-sqlite FILE [--table T]` reads
// the queue file gearmand's libsqlite3 plugin left; the store is chosen
// with the same -q and store flags as the server (see gserverd queue -h).
//
// Signals: TERM and INT stop (2 s for running jobs, then close), USR1 stops
// gracefully (stop accepting, wait for the running jobs, exit), HUP reopens
// the log file. SIGPIPE is ignored.
//
// Exit status: 0 after a clean stop (or -h, -V, --check-args), 1 when the
// server fails or for a bad command line or configuration (as gearmand).
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}
