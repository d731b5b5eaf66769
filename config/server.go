package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// Server is gserverd's configuration. It comes from four layers, highest
// first: command-line flags (gearmand's names), GSERVERD_* environment
// variables (GSERVERD_JOB_RETRIES for --job-retries ...), then, for the
// port only, GEARMAND_PORT, then the YAML file named by --config-file (or
// GSERVERD_CONFIG_FILE), whose keys are the long flag names with '_' or
// '-' (job_retries: 3), and last the defaults documented on each field.
// Paths are absolute once loaded: relative ones in the file are from the
// file's directory, the others from the working directory. Source tells
// where each value came from.
type Server struct {
	// ConfigFile is the file read, "" for none: --config-file, else
	// DefaultConfigFile when it exists. It is YAML, or gearmand's format
	// (its command-line options, and key=value lines).
	ConfigFile string

	// Port is the TCP port. Default 4730 (GEARMAND_PORT when set).
	Port int
	// Listen lists the hosts or addresses to bind; each is resolved and
	// every address it resolves to is bound ("localhost" always binds
	// 127.0.0.1 and ::1). Empty (default) binds all addresses.
	Listen []string
	// LogFile is a path, "stderr" (default) or "none".
	LogFile string
	// LogFormat is "text" (default) or "json".
	LogFormat string
	// Verbose is the log level as gearmand names it (FATAL, ALERT,
	// CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG), upper case.
	// Default ERROR.
	Verbose string
	// Syslog also sends the log to the local syslog (gearmand's --syslog).
	Syslog bool
	// SyslogSocket is the syslog socket; "" (default) is the system's.
	SyslogSocket string
	// PidFile is written and locked while gserverd runs; "" (default) for none.
	PidFile string
	// Daemon detaches from the terminal.
	Daemon bool
	// User to switch to after binding (needs root); "" stays.
	User string

	// Threads is gearmand's I/O thread count; here N > 0 sets GOMAXPROCS
	// to N, 0 (default) leaves Go's default of one per CPU.
	Threads int
	// Backlog is accepted for compatibility; Go's listen uses the system's
	// somaxconn. Default 32.
	Backlog int
	// FileDescriptors raises RLIMIT_NOFILE to N at start; 0 (default) leaves it.
	FileDescriptors int

	// JobRetries: -1 unlimited (default), 0 none, N at most N attempts.
	JobRetries int
	// WorkerWakeup is the number of sleeping workers woken per job; 0 = all.
	WorkerWakeup int
	// RoundRobin is accepted and ignored: dispatch is always round-robin
	// (gearmand HEAD).
	RoundRobin bool
	// Exceptions starts every connection with the exceptions option on.
	Exceptions bool
	// JobHandlePrefix; "" means the server's default "H:<host>".
	JobHandlePrefix string
	// AdminShutdown enables the shutdown admin commands (loopback only).
	AdminShutdown bool
	// MaxPayload is the largest packet payload accepted. Default
	// protocol.DefaultMaxPayload (64 MiB).
	MaxPayload int64
	// MaxConnections bounds the open Gearman connections; beyond it a new
	// connection is closed at once, except for a few more kept for
	// loopback peers (gearadmin). 0 is unlimited; -1 (default) derives it
	// from the open-file limit: RLIMIT_NOFILE (after FileDescriptors)
	// less ReservedFiles, and at most DefaultMaxConnections.
	MaxConnections int
	// PacketTimeout bounds how long a connection may take to complete a
	// packet (or admin line) it has begun; 0 is none. Connections idle
	// between packets are not affected. Default
	// server.DefaultPacketTimeout (30s).
	PacketTimeout time.Duration
	// MaxQueueMemory bounds the memory of the jobs the server holds
	// (payload, unique and a fixed overhead each): beyond it a submit
	// that would create a job gets ERROR QUEUE_ERROR. 0 is unlimited; -1
	// (default, "auto") derives it: a quarter of the cgroup memory limit
	// when the process has one, else of the physical memory.
	MaxQueueMemory int64

	// Keepalive enables TCP keepalive on accepted connections. With it,
	// KeepaliveIdle, KeepaliveInterval (seconds) and KeepaliveCount tune
	// the probes; -1 (default) keeps the system's value.
	Keepalive                                        bool
	KeepaliveIdle, KeepaliveInterval, KeepaliveCount int

	// Store chooses and configures the job store: -q and the options of
	// each backend, with their defaults (storeconf). Store.DataDir
	// defaults to DefaultDataDir(uid, Port): /var/lib/gserverd as root,
	// else $XDG_STATE_HOME/gserverd (~/.local/state/gserverd), with a
	// -PORT suffix on any port but DefaultPort. Store.StoreTimeout
	// (--store-timeout) bounds every call to the job store (connecting at
	// start, each write and delete, the replay between two jobs); a
	// background submit whose write misses it gets ERROR QUEUE_ERROR. 0
	// is none. Default server.DefaultStoreTimeout.
	Store storeconf.Config

	// SSL makes every connection on the Gearman port speak TLS, as
	// gearmand's --ssl. SSLCertificate and SSLKey (PEM files) are then
	// required; GEARMAND_SERVER_PEM and GEARMAND_SERVER_KEY override them.
	// SSLCAFile (GEARMAND_CA_CERTIFICATE), when set, verifies the client
	// certificates that clients present (clients without one are still
	// accepted, as gearmand does).
	SSL                               bool
	SSLCAFile, SSLCertificate, SSLKey string

	// Protocol is gearmand's -r/--protocol: "http" turns on gearmand's
	// HTTP protocol (jobs submitted as POST /<function>) on HTTPPort, on
	// the same addresses as the Gearman port (-L). Default "" (off).
	Protocol string
	// HTTPPort is the TCP port of -r http. Default DefaultHTTPPort (8080,
	// as gearmand); 0 picks a free port.
	HTTPPort int

	// HTTPListen is the host:port of the HTTP endpoint (metrics, API,
	// dashboard). Default DefaultHTTPListenFor(Port) (127.0.0.1:4731 on
	// DefaultPort); "" turns it off.
	HTTPListen string
	// HTTPToken, when set, is the bearer token the HTTP API and its
	// actions require. Default "" (no auth).
	HTTPToken string
	// HTTPTokenFile, when set, is a file whose text (without its trailing
	// newline) is HTTPToken, so that the token is not on the command
	// line. Exclusive with HTTPToken. Default "".
	HTTPTokenFile string
	// HTTPAllowedHosts are the names of the Host header the HTTP endpoint
	// serves besides IP addresses, localhost and the host of HTTPListen
	// (DNS rebinding protection). Default none.
	HTTPAllowedHosts []string
	// HTTPMaxStreams bounds the open event streams (/api/v1/events) of
	// the HTTP endpoint; one more gets 503. Default DefaultHTTPMaxStreams.
	HTTPMaxStreams int
	// HTTPMetricsFunctions is how many functions, the busiest, get their
	// own series in /metrics; the others are summed into one series with
	// function="_other". Default DefaultHTTPMetricsFunctions.
	HTTPMetricsFunctions int

	// Warnings are lines for the operator that are not errors: each
	// gearmand option given that gserverd accepts and ignores, with why.
	Warnings []string

	origins
}

func (c *Server) warn(line string) { c.Warnings = append(c.Warnings, line) }

// DefaultMemberID is --member-id's default: host:port.
func DefaultMemberID(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Defaults of the server configuration.
const (
	DefaultPort = protocol.DefaultPort
	// DefaultMaxConnections caps the --max-connections derived from the
	// open-file limit.
	DefaultMaxConnections = 100000
	// ReservedFiles is what the derived --max-connections leaves of the
	// open-file limit for listeners, the store, logs and the HTTP endpoint.
	ReservedFiles = 256
	// DefaultHTTPPort is the port of -r http (gearmand's --http-port).
	DefaultHTTPPort = 8080
	// DefaultHTTPListen is where the HTTP endpoint listens by default
	// for a server on DefaultPort; see DefaultHTTPListenFor for the others.
	DefaultHTTPListen = "127.0.0.1:4731"
	// DefaultHTTPMaxStreams is --http-max-streams' default, and
	// DefaultHTTPMetricsFunctions --http-metrics-functions': the same as
	// server/monitor's defaults (TestHTTPDefaultsAreMonitors), written
	// here because importing monitor would link Prometheus into every
	// program that reads a config, gclient too.
	DefaultHTTPMaxStreams       = 64
	DefaultHTTPMetricsFunctions = 100
	// MaxJobRetries is the largest --job-retries value (gearmand HEAD).
	MaxJobRetries = 255
)

func portCheck(allowZero bool) func(int) error {
	return func(n int) error {
		if n < 0 || n > 65535 || (n == 0 && !allowZero) {
			if allowZero {
				return errors.New("want a TCP port 0..65535 (0: any free port)")
			}
			return errors.New("want a TCP port 1..65535")
		}
		return nil
	}
}

func keepaliveCheck(n int) error {
	if n == -1 || n > 0 {
		return nil
	}
	return errors.New("want -1 (system default) or a positive number")
}

var sqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func tableCheck(s string) (string, error) {
	if !sqlIdent.MatchString(s) {
		return "", fmt.Errorf("want a table name of letters, digits and _, got %q", s)
	}
	return s, nil
}

func oneOf(names ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		l := strings.ToLower(strings.TrimSpace(s))
		for _, n := range names {
			if l == n {
				return n, nil
			}
		}
		return "", fmt.Errorf("want one of %s, got %q", strings.Join(names, ", "), s)
	}
}

// verboseLevels maps gearmand's --verbose names to logrus levels. logrus
// has fewer levels: ALERT and CRITICAL log what FATAL and ERROR do, NOTICE
// what INFO does.
var verboseLevels = map[string]logrus.Level{
	"FATAL":    logrus.FatalLevel,
	"ALERT":    logrus.FatalLevel,
	"CRITICAL": logrus.ErrorLevel,
	"ERROR":    logrus.ErrorLevel,
	"WARNING":  logrus.WarnLevel,
	"NOTICE":   logrus.InfoLevel,
	"INFO":     logrus.InfoLevel,
	"DEBUG":    logrus.DebugLevel,
}

var verboseNames = []string{"FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}

// LogLevel returns the logrus level of c.Verbose.
func (c *Server) LogLevel() logrus.Level {
	if l, ok := verboseLevels[c.Verbose]; ok {
		return l
	}
	return logrus.ErrorLevel
}

func verboseCheck(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if _, ok := verboseLevels[u]; ok {
		return u, nil
	}
	return "", fmt.Errorf("want one of %s, got %q", strings.Join(verboseNames, ", "), s)
}

// queueSetter is -q: the names storeconf.ParseQueueType accepts, the
// gearmand modules the embedded store stands in for with a warning.
func queueSetter(c *Server, s string, _ []string) error {
	name, standIn, err := storeconf.ParseQueueType(s)
	if err != nil {
		return err
	}
	if standIn {
		c.warn(fmt.Sprintf("queue type %s is not available in gserverd; using the embedded store (--data-dir), which also keeps the queue across restarts", strings.ToLower(strings.TrimSpace(s))))
	}
	c.Store.QueueType = name
	return nil
}

// protocolCheck accepts gearmand's only protocol module, http ("" for
// none). gearmand's names are case-sensitive; -r HTTP is taken too.
func protocolCheck(s string) (string, error) {
	switch l := strings.ToLower(strings.TrimSpace(s)); l {
	case "", "http":
		return l, nil
	}
	return "", fmt.Errorf("unknown protocol module %q: want http (the only one)", s)
}

func payloadSetter(c *Server, s string, _ []string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n < 1 || n > math.MaxUint32 {
		return fmt.Errorf("want 1 byte .. 4GiB-1, got %q", s)
	}
	c.MaxPayload = n
	return nil
}

func queueMemorySetter(c *Server, s string, _ []string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		c.MaxQueueMemory = -1
		return nil
	}
	n, err := parseSize(s)
	if err != nil {
		return fmt.Errorf("want auto, 0 (unlimited) or a size like 512MiB, got %q", s)
	}
	c.MaxQueueMemory = n
	return nil
}

func listenSetter(c *Server, _ string, list []string) error {
	var out []string
	for _, h := range list {
		h = strings.TrimSpace(h)
		if h == "" {
			return errors.New("empty address")
		}
		out = append(out, h)
	}
	c.Listen = out
	return nil
}

// serverKeys is the table of every setting, in --help order.
func serverKeys() []key[Server] {
	keys := []key[Server]{
		{name: "config_file", kind: kindString, path: pathFile, noFile: true,
			usage: "read options from this `file`: gearmand's format (its options, --port=4730 or port=4730, several a line, # comments) or YAML (job_retries: 3). Default " + DefaultConfigFile + " when it exists",
			set:   stringSetter(func(c *Server) *string { return &c.ConfigFile }, nil)},
		{name: "port", short: "p", kind: kindInt, fallbackEnv: "GEARMAND_PORT", def: strconv.Itoa(DefaultPort),
			usage: "TCP `port` to listen on (GEARMAND_PORT when -p is not given)",
			set:   intSetter(func(c *Server) *int { return &c.Port }, portCheck(true))},
		{name: "listen", short: "L", kind: kindList,
			usage: "`host` or address to listen on, repeatable or comma-separated; every address it resolves to is bound (localhost: 127.0.0.1 and ::1); default all",
			set:   listenSetter},
		{name: "log_file", short: "l", kind: kindString, path: pathFile, keep: []string{"stderr", "none"}, def: "stderr",
			usage: "log `file`; \"stderr\" or \"none\" are special (gearmand's default is /var/log/gearmand.log; ours is stderr); reopened on SIGHUP",
			set: stringSetter(func(c *Server) *string { return &c.LogFile }, func(s string) (string, error) {
				if strings.TrimSpace(s) == "" {
					return "", errors.New("want a path, stderr or none")
				}
				return s, nil
			})},
		{name: "log_format", kind: kindString, def: "text",
			usage: "log `format`: text or json",
			set:   stringSetter(func(c *Server) *string { return &c.LogFormat }, oneOf("text", "json"))},
		{name: "verbose", kind: kindString, def: server.DefaultVerboseName,
			usage: "log `level`: FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG; each -v raises it one step (-vvv: INFO)",
			set:   stringSetter(func(c *Server) *string { return &c.Verbose }, verboseCheck)},
		{name: "pid_file", short: "P", kind: kindString, path: pathFile,
			usage: "write and lock the process id in this `file` (default none; gearmand's is /var/gearmand.pid)",
			set:   stringSetter(func(c *Server) *string { return &c.PidFile }, nil)},
		{name: "daemon", short: "d", kind: kindBool, def: "false",
			usage: "detach and run in the background (use with --log-file and --pid-file)",
			set:   boolSetter(func(c *Server) *bool { return &c.Daemon })},
		{name: "user", short: "u", kind: kindString,
			usage: "switch to this `user` after binding the ports (needs root)",
			set:   stringSetter(func(c *Server) *string { return &c.User }, nil)},
		{name: "threads", short: "t", kind: kindInt, def: "0",
			usage: "gearmand's I/O `threads`; here N > 0 sets GOMAXPROCS to N, 0 keeps Go's default (one per CPU)",
			set:   intSetter(func(c *Server) *int { return &c.Threads }, atLeast(0))},
		{name: "backlog", short: "b", kind: kindInt, def: "32",
			usage: "listen `backlog`; accepted for compatibility: Go uses the system's net.core.somaxconn",
			set:   intSetter(func(c *Server) *int { return &c.Backlog }, atLeast(1))},
		{name: "file_descriptors", short: "f", kind: kindInt, def: "0",
			usage: "set the open-file limit (RLIMIT_NOFILE) to `N` at start; 0 keeps it",
			set:   intSetter(func(c *Server) *int { return &c.FileDescriptors }, atLeast(0))},
		{name: "job_retries", short: "j", kind: kindInt, def: "-1",
			usage: "`attempts` of a job whose worker died or timed out, gearmand HEAD meaning: -1 unlimited, 0 no retry (dropped at the first failure), N (1..255) at most N attempts. Note: gearmand 1.1.20 used 0 for unlimited",
			set: intSetter(func(c *Server) *int { return &c.JobRetries }, func(n int) error {
				if n < -1 || n > MaxJobRetries {
					return errors.New("want -1 (unlimited), 0 (no retry) or 1..255")
				}
				return nil
			})},
		{name: "worker_wakeup", short: "w", kind: kindInt, def: "0",
			usage: "sleeping `workers` woken (NOOP) per new job; 0 = all",
			set:   intSetter(func(c *Server) *int { return &c.WorkerWakeup }, atLeast(0))},
		{name: "round_robin", short: "R", kind: kindBool, def: "false",
			usage: "accepted for compatibility; dispatch is always round-robin (gearmand HEAD)",
			set:   boolSetter(func(c *Server) *bool { return &c.RoundRobin })},
		{name: "exceptions", kind: kindBool, def: "false",
			usage: "every connection starts with the exceptions option on",
			set:   boolSetter(func(c *Server) *bool { return &c.Exceptions })},
		{name: "job_handle_prefix", kind: kindString,
			usage: "job handle `prefix` (default H:<host name>)",
			set: stringSetter(func(c *Server) *string { return &c.JobHandlePrefix }, func(s string) (string, error) {
				if strings.ContainsAny(s, "\x00\r\n \t") {
					return "", fmt.Errorf("must not contain spaces or NUL, got %q", s)
				}
				return s, nil
			})},
		{name: "admin_shutdown", kind: kindBool, def: "false",
			usage: "enable the shutdown and shutdown graceful admin commands (loopback connections only)",
			set:   boolSetter(func(c *Server) *bool { return &c.AdminShutdown })},
		{name: "max_payload", kind: kindString, def: strconv.Itoa(protocol.DefaultMaxPayload>>20) + "MiB",
			usage: "largest packet payload accepted (`size`: bytes or K/M/G); larger gets ERROR and the connection is closed",
			set:   payloadSetter},
		{name: "max_connections", kind: kindInt, def: "-1",
			usage: "most open Gearman connections (`N`); beyond it new ones are closed at once, but 8 more are kept for loopback peers (gearadmin). 0: unlimited; -1: the open-file limit less 256, at most 100000",
			set:   intSetter(func(c *Server) *int { return &c.MaxConnections }, atLeast(-1))},
		{name: "max_queue_memory", kind: kindString, def: "auto",
			usage: "most memory the jobs held may take (`size`: bytes or K/M/G; payload, unique and 256 bytes per job); beyond it a new job's submit gets ERROR QUEUE_ERROR. 0: unlimited; auto: 1/4 of the cgroup memory limit, else of the physical memory",
			set:   queueMemorySetter},
		{name: "packet_timeout", kind: kindString, def: server.DefaultPacketTimeout.String(),
			usage: "`duration` (30s, 2m; a bare number is seconds) a connection has to complete a packet or admin line it has begun (or, with --ssl, its TLS handshake), else it is closed; 0: none. Idle connections are not affected",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.PacketTimeout })},
		{name: "keepalive", kind: kindBool, def: "false",
			usage: "enable TCP keepalive on accepted connections",
			set:   boolSetter(func(c *Server) *bool { return &c.Keepalive })},
		{name: "keepalive_idle", kind: kindInt, def: "-1",
			usage: "with --keepalive: idle `seconds` before the first probe; -1 = system default",
			set:   intSetter(func(c *Server) *int { return &c.KeepaliveIdle }, keepaliveCheck)},
		{name: "keepalive_interval", kind: kindInt, def: "-1",
			usage: "with --keepalive: `seconds` between probes; -1 = system default",
			set:   intSetter(func(c *Server) *int { return &c.KeepaliveInterval }, keepaliveCheck)},
		{name: "keepalive_count", kind: kindInt, def: "-1",
			usage: "with --keepalive: unanswered `probes` before the connection is dropped; -1 = system default",
			set:   intSetter(func(c *Server) *int { return &c.KeepaliveCount }, keepaliveCheck)},
		{name: "queue_type", short: "q", kind: kindString, def: storeconf.DefaultQueueType,
			usage: "job store `type`: builtin (in memory), embedded, postgres, mysql, redis or libsqlite3 (case-insensitive)",
			set:   queueSetter},
		{name: "data_dir", kind: kindString, path: pathFile,
			usage: "-q embedded: `directory` of the store (default /var/lib/gserverd as root, else ~/.local/state/gserverd; on a port other than 4730 the port is a suffix: gserverd-PORT)",
			set:   stringSetter(func(c *Server) *string { return &c.Store.DataDir }, nil)},
		{name: "sync", kind: kindString, def: storeconf.DefaultSync,
			usage: "-q embedded: durability `mode`: always (fsync before JOB_CREATED), interval (written before JOB_CREATED, fsync every 100ms: a machine crash loses the last interval, a gserverd crash nothing) or none (written before JOB_CREATED, never fsynced: a machine crash can lose more); -q libsqlite3: SQLite's synchronous FULL, NORMAL or OFF",
			set:   stringSetter(func(c *Server) *string { return &c.Store.Sync }, oneOf("always", "interval", "none"))},
		{name: "store_timeout", kind: kindString, def: server.DefaultStoreTimeout.String(),
			usage: "`duration` (5s, 1m; a bare number is seconds) each call to the job store may take (a write, a delete, connecting, the replay between two jobs); a background submit whose write misses it gets ERROR QUEUE_ERROR, never JOB_CREATED; 0: none",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.Store.StoreTimeout })},
		{name: "accept_store_damage", kind: kindBool, def: "false",
			usage: "-q embedded: start even though the store's write-ahead log is damaged, losing the jobs stored from the damage on, or large jobs' payload files are missing or short, losing those jobs (without it gserverd refuses to start and names the file)",
			set:   boolSetter(func(c *Server) *bool { return &c.Store.AcceptDamage })},
		{name: "libpq_conninfo", kind: kindString,
			usage: "-q postgres: libpq connection `string`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.LibpqConninfo }, nil)},
		{name: "libpq_table", kind: kindString, def: storeconf.DefaultLibpqTable,
			usage: "-q postgres: `table`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.LibpqTable }, tableCheck)},
		{name: "member_id", kind: kindString,
			usage: "-q postgres: this server's `id` in the fleet of servers sharing the table (default: host name:port); each member serves its own jobs and claims those of a member whose lease expired",
			set:   stringSetter(func(c *Server) *string { return &c.Store.MemberID }, nil)},
		{name: "fleet_heartbeat", kind: kindString, def: storeconf.DefaultFleetHeartbeat.String(),
			usage: "-q postgres: `duration` between two renewals of this member's lease",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.Store.FleetHeartbeat })},
		{name: "fleet_lease", kind: kindString, def: storeconf.DefaultFleetLease.String(),
			usage: "-q postgres: `duration` a member's lease lasts without a heartbeat; then another member claims its jobs (at least three heartbeats)",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.Store.FleetLease })},
		{name: "mysql_host", kind: kindString, def: storeconf.DefaultMySQLHost,
			usage: "-q mysql: `host`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.MySQLHost }, nil)},
		{name: "mysql_port", kind: kindInt, def: strconv.Itoa(storeconf.DefaultMySQLPort),
			usage: "-q mysql: `port`",
			set:   intSetter(func(c *Server) *int { return &c.Store.MySQLPort }, portCheck(false))},
		{name: "mysql_user", kind: kindString,
			usage: "-q mysql: `user`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.MySQLUser }, nil)},
		{name: "mysql_password", kind: kindString,
			usage: "-q mysql: `password`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.MySQLPassword }, nil)},
		{name: "mysql_db", kind: kindString,
			usage: "-q mysql: `database`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.MySQLDB }, nil)},
		{name: "mysql_table", kind: kindString, def: storeconf.DefaultMySQLTable,
			usage: "-q mysql: `table`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.MySQLTable }, tableCheck)},
		{name: "redis_server", kind: kindString, def: storeconf.DefaultRedisServer,
			usage: "-q redis: `host`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.RedisServer }, nil)},
		{name: "redis_port", kind: kindInt, def: strconv.Itoa(storeconf.DefaultRedisPort),
			usage: "-q redis: `port`",
			set:   intSetter(func(c *Server) *int { return &c.Store.RedisPort }, portCheck(false))},
		{name: "redis_password", kind: kindString,
			usage: "-q redis: `password`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.RedisPassword }, nil)},
		{name: "redis_prefix", kind: kindString, def: storeconf.DefaultRedisPrefix,
			usage: "-q redis: key `prefix`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.RedisPrefix }, nil)},
		{name: "libsqlite3_db", kind: kindString, path: pathFile,
			usage: "-q libsqlite3: gearmand's SQLite queue `file`, served in place (created if missing)",
			set:   stringSetter(func(c *Server) *string { return &c.Store.SQLiteDB }, nil)},
		{name: "libsqlite3_table", kind: kindString, def: storeconf.DefaultSQLiteTable,
			usage: "-q libsqlite3: `table`",
			set:   stringSetter(func(c *Server) *string { return &c.Store.SQLiteTable }, tableCheck)},
		{name: "ssl", kind: kindBool, def: "false",
			usage: "speak TLS on the Gearman port (needs --ssl-certificate and --ssl-key)",
			set:   boolSetter(func(c *Server) *bool { return &c.SSL })},
		{name: "ssl_ca_file", kind: kindString, path: pathFile, overrideEnv: "GEARMAND_CA_CERTIFICATE",
			usage: "PEM `file` of the CA that signs client certificates (verified when presented)",
			set:   stringSetter(func(c *Server) *string { return &c.SSLCAFile }, nil)},
		{name: "ssl_certificate", kind: kindString, path: pathFile, overrideEnv: "GEARMAND_SERVER_PEM",
			usage: "PEM `file` of the server certificate (with --ssl)",
			set:   stringSetter(func(c *Server) *string { return &c.SSLCertificate }, nil)},
		{name: "ssl_key", kind: kindString, path: pathFile, overrideEnv: "GEARMAND_SERVER_KEY",
			usage: "PEM `file` of the server certificate's key (with --ssl)",
			set:   stringSetter(func(c *Server) *string { return &c.SSLKey }, nil)},
		{name: "protocol", short: "r", kind: kindString,
			usage: "protocol `module` to load, as gearmand: http serves gearmand's HTTP protocol (POST /<function>, the body as the workload) on --http-port; the only module",
			set:   stringSetter(func(c *Server) *string { return &c.Protocol }, protocolCheck)},
		{name: "http_port", kind: kindInt, def: strconv.Itoa(DefaultHTTPPort),
			usage: "with -r http: TCP `port` of gearmand's HTTP protocol, on the --listen addresses (0: any free port); not the --http-listen endpoint",
			set:   intSetter(func(c *Server) *int { return &c.HTTPPort }, portCheck(true))},
		{name: "http_listen", kind: kindString,
			usage: "`host:port` of the HTTP endpoint (metrics, API, dashboard); empty turns it off. Default 127.0.0.1 on the Gearman port + 1 (4731 for -p 4730; a free port for -p 0); when that default is in use the endpoint is off, with an error line",
			set:   stringSetter(func(c *Server) *string { return &c.HTTPListen }, nil)},
		{name: "http_token", kind: kindString,
			usage: "bearer `token` the HTTP API and its actions require; empty (default) for none",
			set:   stringSetter(func(c *Server) *string { return &c.HTTPToken }, nil)},
		{name: "http_token_file", kind: kindString, path: pathFile,
			usage: "read the bearer token from this `file` (its trailing newline removed), so that it is not in ps; instead of --http-token",
			set:   stringSetter(func(c *Server) *string { return &c.HTTPTokenFile }, nil)},
		{name: "http_allowed_hosts", kind: kindList,
			usage: "host `names` the HTTP endpoint answers besides IP addresses, localhost and the --http-listen host; other Host headers get 421 (DNS rebinding)",
			set: func(c *Server, _ string, list []string) error {
				l, err := allowedHosts(list)
				c.HTTPAllowedHosts = l
				return err
			}},
		{name: "http_max_streams", kind: kindInt, def: strconv.Itoa(DefaultHTTPMaxStreams),
			usage: "most open event streams (/api/v1/events, one per open dashboard) of the HTTP endpoint (`N`); one more gets 503",
			set:   intSetter(func(c *Server) *int { return &c.HTTPMaxStreams }, atLeast(1))},
		{name: "http_metrics_functions", kind: kindInt, def: strconv.Itoa(DefaultHTTPMetricsFunctions),
			usage: "how many functions, the busiest (most jobs taken and queued), get their own series in /metrics (`N`); the others are summed as function=\"_other\"",
			set:   intSetter(func(c *Server) *int { return &c.HTTPMetricsFunctions }, atLeast(1))},
	}
	return append(keys, gearmandKeys()...)
}

// serverTable is gserverd's keys: flags with gearmand's names, variables
// GSERVERD_<KEY>.
func serverTable() table[Server] {
	return table[Server]{envPrefix: "GSERVERD_", keys: serverKeys()}
}

// ServerFlags registers gserverd's configuration flags (gearmand's names)
// on fs. Parse fs, then call LoadServer.
func ServerFlags(fs *pflag.FlagSet) {
	serverTable().register(fs)
	fs.CountP(VerboseUp, "v", "raise the log level one step (-vvv: INFO)")
	_ = fs.MarkHidden(VerboseUp)
}

// ServerEnvVars returns the environment variables LoadServer reads, in
// --help order.
func ServerEnvVars() []string {
	return append(serverTable().envVars(), "GEARMAND_PORT", "GEARMAND_CA_CERTIFICATE", "GEARMAND_SERVER_PEM", "GEARMAND_SERVER_KEY")
}

// LoadServer builds the configuration from the parsed flags fs (registered
// with ServerFlags), the environment (lookupEnv, os.LookupEnv in main) and
// the config file, and validates it. uid and lookupEnv also pick the
// default data directory. Relative paths are made absolute: those of the
// file against its directory, the others against the working directory.
// Errors are *Error.
func LoadServer(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), uid int) (*Server, error) {
	return loadServerWith(Inputs{Flags: fs, LookupEnv: lookupEnv}, uid, DefaultConfigFile)
}

// loadServerWith is LoadServer with the default config file's path.
func loadServerWith(in Inputs, uid int, defaultFile string) (*Server, error) {
	t := serverTable()
	l := newLoader(t, in)
	c := &Server{origins: origins{l.src}}

	// The config file's name first: it comes from the flag or the env only.
	path, src := l.configFile(t.keys[0])
	c.ConfigFile = path
	l.src["config_file"] = src
	if path == "" || path == defaultFile {
		// gearmand reads its default file when it exists, silently
		// skips it when not, even when named.
		c.ConfigFile = ""
		if _, err := os.Stat(defaultFile); err == nil {
			c.ConfigFile = defaultFile
		}
	}
	if c.ConfigFile != "" {
		data, err := readConfig(c.ConfigFile)
		if err != nil {
			return nil, err
		}
		if isGearmandFormat(data) {
			l.file, err = readGearmandFile(c.ConfigFile, data, t.keys)
		} else {
			l.file, err = t.parseYAML(c.ConfigFile, data, false)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, k := range t.keys[1:] {
		src, err := l.apply(c, k)
		if err != nil {
			return nil, err
		}
		if k.ignored != "" && src.Kind != SourceDefault {
			c.warn((&Error{Key: k.name, Source: src, Msg: "accepted and ignored: " + k.ignored}).Error())
		}
	}
	vUp := 0
	if in.Flags != nil {
		vUp, _ = in.Flags.GetCount(VerboseUp)
	}
	if n := vUp; n > 0 {
		c.Verbose = raiseVerbose(c.Verbose, n)
		l.src["verbose"] = Source{Kind: SourceFlag, Name: "-v"}
	} else if l.file != nil && l.file.verbose > 0 {
		c.Verbose = raiseVerbose(c.Verbose, l.file.verbose)
		l.src["verbose"] = fileSource(c.ConfigFile, 0)
	}
	if c.SSL {
		for _, m := range []struct{ key, val, flag, env string }{
			{"ssl_certificate", c.SSLCertificate, "--ssl-certificate", "GEARMAND_SERVER_PEM"},
			{"ssl_key", c.SSLKey, "--ssl-key", "GEARMAND_SERVER_KEY"},
		} {
			if m.val == "" {
				return nil, &Error{Key: "ssl", Source: c.Source("ssl"),
					Msg: "TLS needs " + m.flag + " (" + m.key + " in the file, or " + m.env + ")"}
			}
		}
	}
	if c.HTTPTokenFile != "" {
		src := c.Source("http_token_file")
		if c.HTTPToken != "" {
			return nil, &Error{Key: "http_token_file", Source: src,
				Msg: "give the token once: --http-token-file or --http-token (http_token in the file), not both"}
		}
		tok, err := readTokenFile(c.HTTPTokenFile)
		if err != nil {
			return nil, &Error{Key: "http_token_file", Source: src, Msg: err.Error()}
		}
		c.HTTPToken = tok
	}
	if c.Store.DataDir == "" {
		c.Store.DataDir = DefaultDataDir(uid, c.Port, in.LookupEnv)
	}
	if err := c.checkFleet(); err != nil {
		return nil, err
	}
	if c.Source("http_listen").Kind == SourceDefault {
		c.HTTPListen = DefaultHTTPListenFor(c.Port)
	}
	return c, nil
}

// checkFleet refuses fleet settings with a store that cannot carry a
// fleet, and a lease shorter than three heartbeats.
func (c *Server) checkFleet() error {
	for _, key := range []string{"member_id", "fleet_heartbeat", "fleet_lease"} {
		src := c.Source(key)
		if src.Kind == SourceDefault || c.Store.QueueType == storeconf.Postgres {
			continue
		}
		why := map[string]string{
			"mysql":      "-q mysql keeps no leases or owners yet: a fleet needs -q postgres",
			"redis":      "-q redis keeps no leases or owners yet: a fleet needs -q postgres",
			"embedded":   "the embedded store is this server's own directory, which no other server can take over: a fleet shares one -q postgres database",
			"builtin":    "-q builtin keeps jobs in memory only: a fleet shares one -q postgres database",
			"libsqlite3": "a SQLite file is one host's: a fleet shares one -q postgres database",
		}[c.Store.QueueType]
		return &Error{Key: key, Source: src, Msg: why}
	}
	if c.Store.FleetHeartbeat <= 0 {
		return &Error{Key: "fleet_heartbeat", Source: c.Source("fleet_heartbeat"), Msg: "want a duration > 0"}
	}
	if c.Store.FleetLease < 3*c.Store.FleetHeartbeat {
		key := "fleet_lease"
		if c.Source(key).Kind == SourceDefault {
			key = "fleet_heartbeat"
		}
		return &Error{Key: key, Source: c.Source(key),
			Msg: fmt.Sprintf("--fleet-lease %v is shorter than three heartbeats (--fleet-heartbeat %v)", c.Store.FleetLease, c.Store.FleetHeartbeat)}
	}
	return nil
}

// DefaultDataDir is the embedded store's default directory for a server
// on port: /var/lib/gserverd for root, else $XDG_STATE_HOME/gserverd or
// $HOME/.local/state/gserverd; on any port but DefaultPort the name takes
// the port as a suffix (/var/lib/gserverd-4740), so that several servers
// on one host, differing only in -p, each have their own store, and a
// server on 4730 keeps the directory it always had.
func DefaultDataDir(uid, port int, lookupEnv func(string) (string, bool)) string {
	name := "gserverd"
	if port != DefaultPort {
		name += "-" + strconv.Itoa(port)
	}
	if uid == 0 {
		return filepath.Join("/var/lib", name)
	}
	if d, ok := lookupEnv("XDG_STATE_HOME"); ok && filepath.IsAbs(d) {
		return filepath.Join(d, name)
	}
	if h, ok := lookupEnv("HOME"); ok && h != "" {
		return filepath.Join(h, ".local", "state", name)
	}
	return filepath.Join(os.TempDir(), name+"-uid"+strconv.Itoa(uid))
}

// DefaultHTTPListenFor is the HTTP endpoint's default address for a
// server on port: 127.0.0.1 and the next port (DefaultHTTPListen,
// 127.0.0.1:4731, for DefaultPort), so that servers differing only in -p
// each have theirs. For port 0 (any free port) and 65535 (no next port)
// it is 127.0.0.1:0, a free port the log names.
func DefaultHTTPListenFor(port int) string {
	if port <= 0 || port >= 65535 {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1))
}
