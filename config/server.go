package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"

	"github.com/gworkerd/gworkerd/protocol"
)

// Server is gserverd's configuration. It comes from four layers, highest
// first: command-line flags (gearmand's names), GSERVERD_* environment
// variables (GSERVERD_JOB_RETRIES for --job-retries ...), then, for the
// port only, GEARMAND_PORT, then the YAML file named by --config-file (or
// GSERVERD_CONFIG_FILE), whose keys are the long flag names with '_' or
// '-' (job_retries: 3), and last the defaults documented on each field.
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
	// MaxPayload is the largest packet payload accepted. Default 64 MiB.
	MaxPayload int64
	// MaxConnections bounds the open Gearman connections; beyond it a new
	// connection is closed at once, except for a few more kept for
	// loopback peers (gearadmin). 0 is unlimited; -1 (default) derives it
	// from the open-file limit: RLIMIT_NOFILE (after FileDescriptors)
	// less ReservedFiles, and at most DefaultMaxConnections.
	MaxConnections int
	// PacketTimeout bounds how long a connection may take to complete a
	// packet (or admin line) it has begun; 0 is none. Connections idle
	// between packets are not affected. Default 30s.
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

	// QueueType is the canonical store name: builtin (in memory), embedded,
	// postgres, mysql, redis or libsqlite3. Default DefaultQueueType.
	QueueType string
	// DataDir is the embedded store's directory. Default
	// DefaultDataDir(uid, Port): /var/lib/gserverd as root, else
	// $XDG_STATE_HOME/gserverd (~/.local/state/gserverd), with a -PORT
	// suffix on any port but DefaultPort.
	DataDir string
	// Sync is the embedded store's durability: always (default),
	// interval or none; for -q libsqlite3, SQLite's synchronous pragma
	// FULL, NORMAL or OFF.
	Sync string
	// AcceptStoreDamage opens an embedded store whose write-ahead log is
	// damaged, without the jobs stored from the damage on. Default false:
	// gserverd refuses to start, naming the file.
	AcceptStoreDamage bool

	Postgres PostgresQueue
	MySQL    MySQLQueue
	Redis    RedisQueue
	SQLite   SQLiteQueue

	// Fleet makes gserverd a member of a fleet of servers sharing one
	// -q postgres table, which claim a dead member's jobs.
	Fleet FleetConfig

	// StoreTimeout bounds every call to the job store (connecting at
	// start, each write and delete, the replay between two jobs); a
	// background submit whose write misses it gets ERROR QUEUE_ERROR.
	// 0 is none. Default DefaultStoreTimeout.
	StoreTimeout time.Duration

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

	sources map[string]Source
}

func (c *Server) warn(line string) { c.Warnings = append(c.Warnings, line) }

// PostgresQueue configures -q postgres (gearmand's libpq flags).
type PostgresQueue struct {
	// Conninfo is a libpq connection string; "" uses libpq's defaults.
	Conninfo string
	// Table defaults to "queue".
	Table string
}

// FleetConfig configures fleet membership (-q postgres only).
type FleetConfig struct {
	// MemberID is this server's id in the fleet, stable across
	// restarts and distinct per server. Default DefaultMemberID: the
	// host name and the port.
	MemberID string
	// Heartbeat is how often the lease is renewed. Default
	// DefaultFleetHeartbeat.
	Heartbeat time.Duration
	// Lease is how long a lease lasts without a heartbeat before another
	// member may claim this member's jobs; at least three heartbeats.
	// Default DefaultFleetLease.
	Lease time.Duration
}

// DefaultMemberID is --member-id's default: host:port.
func DefaultMemberID(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// MySQLQueue configures -q mysql.
type MySQLQueue struct {
	Host     string // default localhost
	Port     int    // default 3306
	User     string
	Password string
	DB       string
	Table    string // default gearman_queue
}

// RedisQueue configures -q redis.
type RedisQueue struct {
	Server   string // default 127.0.0.1
	Port     int    // default 6379
	Password string
	Prefix   string // default _gear_
}

// SQLiteQueue configures -q libsqlite3 (gearmand's SQLite queue file).
type SQLiteQueue struct {
	// DB is the database file; required with -q libsqlite3. A relative
	// path is from the working directory.
	DB string
	// Table defaults to gearman_queue.
	Table string
}

// Defaults of the server configuration.
const (
	DefaultPort = protocol.DefaultPort
	// DefaultQueueType is the store used when -q is not given: the
	// embedded store in --data-dir (-q builtin keeps jobs in memory only).
	DefaultQueueType  = "embedded"
	DefaultMaxPayload = 64 << 20
	// DefaultMaxConnections caps the --max-connections derived from the
	// open-file limit.
	DefaultMaxConnections = 100000
	// ReservedFiles is what the derived --max-connections leaves of the
	// open-file limit for listeners, the store, logs and the HTTP endpoint.
	ReservedFiles = 256
	// DefaultPacketTimeout is --packet-timeout's default.
	DefaultPacketTimeout = 30 * time.Second
	// DefaultStoreTimeout is --store-timeout's default.
	DefaultStoreTimeout = 5 * time.Second
	// DefaultFleetHeartbeat and DefaultFleetLease are --fleet-heartbeat's
	// and --fleet-lease's defaults.
	DefaultFleetHeartbeat = time.Second
	DefaultFleetLease     = 10 * time.Second
	// DefaultHTTPPort is the port of -r http (gearmand's --http-port).
	DefaultHTTPPort = 8080
	// DefaultHTTPListen is where the HTTP endpoint listens by default
	// for a server on DefaultPort; see DefaultHTTPListenFor for the others.
	DefaultHTTPListen = "127.0.0.1:4731"
	// DefaultHTTPMaxStreams is --http-max-streams' default.
	DefaultHTTPMaxStreams = 64
	// DefaultHTTPMetricsFunctions is --http-metrics-functions' default.
	DefaultHTTPMetricsFunctions = 100
	// MaxJobRetries is the largest --job-retries value (gearmand HEAD).
	MaxJobRetries = 255
)

// QueueTypes are the canonical -q names.
var queueTypes = []string{"builtin", "embedded", "postgres", "mysql", "redis", "libsqlite3"}

// SourceKind tells where a configuration value came from.
type SourceKind int

// Kinds of source, highest precedence first.
const (
	SourceDefault SourceKind = iota
	SourceFlag
	SourceEnv
	SourceFile
)

// Source is where one value came from: the flag, the environment variable,
// or the file and line.
type Source struct {
	Kind SourceKind
	Name string // "--port", "GSERVERD_PORT", the file's path; "" for defaults
	Line int    // file line, 0 if unknown
}

func (s Source) String() string {
	switch s.Kind {
	case SourceFlag:
		return "flag " + s.Name
	case SourceEnv:
		return "environment variable " + s.Name
	case SourceFile:
		if s.Line > 0 {
			return s.Name + ":" + strconv.Itoa(s.Line)
		}
		return s.Name
	}
	return "default"
}

// ErrServerConfig is wrapped by every error of LoadServer.
var ErrServerConfig = errors.New("invalid gserverd config")

// ServerConfigError names the key, and the flag, variable or file (and
// line) that gave the bad value.
type ServerConfigError struct {
	Key    string // the file key, e.g. "job_retries"; "" for the file as a whole
	Source Source
	Msg    string
}

func (e *ServerConfigError) Error() string {
	switch e.Source.Kind {
	case SourceFlag:
		return e.Source.Name + ": " + e.Msg
	case SourceEnv:
		return fmt.Sprintf("%s (environment): %s: %s", e.Source.Name, e.Key, e.Msg)
	case SourceFile:
		if e.Key == "" {
			return e.Source.String() + ": " + e.Msg
		}
		return fmt.Sprintf("%s: %s: %s", e.Source, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// Unwrap makes errors.Is(err, ErrServerConfig) hold.
func (e *ServerConfigError) Unwrap() error { return ErrServerConfig }

// Source returns where the value of key (a file key such as "job_retries")
// came from.
func (c *Server) Source(key string) Source { return c.sources[key] }

type keyKind int

const (
	kindString keyKind = iota
	kindInt
	kindBool
	kindList
)

// serverKey is one setting: its flag, file key and env var, and how to
// parse it into a Server.
type serverKey struct {
	flag   string // long flag name; the file key is flag with '-' -> '_'
	short  string
	kind   keyKind
	def    string
	usage  string
	noFile bool // not accepted in the file (config_file)
	// overrideEnv, when set in the environment, wins over every other
	// source (gearmand's GEARMAND_SERVER_PEM and friends do).
	overrideEnv string
	// ignored, when set, is why gserverd accepts this gearmand option and
	// ignores it; giving it adds a line to Server.Warnings.
	ignored string
	set     func(c *Server, s string, list []string) error
}

func (k serverKey) key() string { return strings.ReplaceAll(k.flag, "-", "_") }
func (k serverKey) env() string { return "GSERVERD_" + strings.ToUpper(k.key()) }

func intSetter(dst func(*Server) *int, check func(int) error) func(*Server, string, []string) error {
	return func(c *Server, s string, _ []string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		if check != nil {
			if err := check(n); err != nil {
				return fmt.Errorf("%v, got %d", err, n)
			}
		}
		*dst(c) = n
		return nil
	}
}

func boolSetter(dst func(*Server) *bool) func(*Server, string, []string) error {
	return func(c *Server, s string, _ []string) error {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "yes", "on":
			*dst(c) = true
			return nil
		case "no", "off":
			*dst(c) = false
			return nil
		}
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		*dst(c) = b
		return nil
	}
}

func stringSetter(dst func(*Server) *string, check func(string) (string, error)) func(*Server, string, []string) error {
	return func(c *Server, s string, _ []string) error {
		if check != nil {
			v, err := check(s)
			if err != nil {
				return err
			}
			s = v
		}
		*dst(c) = s
		return nil
	}
}

// durationSetter parses a Go duration (a bare number is seconds), >= 0.
func durationSetter(dst func(*Server) *time.Duration) func(*Server, string, []string) error {
	return func(c *Server, s string, _ []string) error {
		s = strings.TrimSpace(s)
		var d time.Duration
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			if math.IsNaN(n) || n > math.MaxInt64/float64(time.Second) {
				return fmt.Errorf("want a duration such as 30s or 2m, got %q", s)
			}
			d = time.Duration(n * float64(time.Second))
		} else if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("want a duration such as 30s or 2m, got %q", s)
		}
		if d < 0 {
			return errors.New("want a duration >= 0 (0: none)")
		}
		*dst(c) = d
		return nil
	}
}

func atLeast(min int) func(int) error {
	return func(n int) error {
		if n < min {
			return fmt.Errorf("want at least %d", min)
		}
		return nil
	}
}

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

// unsupportedQueues are gearmand queue modules gserverd does not have.
var unsupportedQueues = map[string]string{
	"libmemcached":    "use -q embedded or -q redis", // not reached: queueSetter takes it as embedded
	"libtokyocabinet": "use -q embedded",             // not reached: queueSetter takes it as embedded
	"libdrizzle":      "use -q mysql",
}

func queueCheck(s string) (string, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	switch l {
	case "postgresql", "libpq", "pgsql":
		l = "postgres"
	case "mysql", "mariadb":
		l = "mysql"
	case "memory":
		l = "builtin"
	case "sqlite", "sqlite3":
		l = "libsqlite3"
	}
	for _, n := range queueTypes {
		if l == n {
			return n, nil
		}
	}
	if hint, ok := unsupportedQueues[l]; ok {
		return "", fmt.Errorf("queue type %q is not supported by gserverd; %s", s, hint)
	}
	return "", fmt.Errorf("want one of %s, got %q", strings.Join(queueTypes, ", "), s)
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
	n, err := parseServerSize(s)
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
	n, err := parseServerSize(s)
	if err != nil {
		return fmt.Errorf("want auto, 0 (unlimited) or a size like 512MiB, got %q", s)
	}
	c.MaxQueueMemory = n
	return nil
}

// parseServerSize parses 4096, 64K, 64KiB, 64MB, 1G ... (powers of 1024).
func parseServerSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want a size like 65536 or 64MiB, got %q", s)
	}
	mul := int64(1)
	switch strings.ToUpper(strings.TrimSpace(t[i:])) {
	case "", "B":
	case "K", "KB", "KIB":
		mul = 1 << 10
	case "M", "MB", "MIB":
		mul = 1 << 20
	case "G", "GB", "GIB":
		mul = 1 << 30
	default:
		return 0, fmt.Errorf("want a size like 65536 or 64MiB, got %q", s)
	}
	if n > math.MaxInt64/mul {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mul, nil
}

func listSetter(c *Server, _ string, list []string) error {
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
func serverKeys() []serverKey {
	keys := []serverKey{
		{flag: "config-file", kind: kindString, noFile: true,
			usage: "read options from this `file`: gearmand's format (its options, --port=4730 or port=4730, several a line, # comments) or YAML (job_retries: 3). Default " + DefaultConfigFile + " when it exists",
			set:   stringSetter(func(c *Server) *string { return &c.ConfigFile }, nil)},
		{flag: "port", short: "p", kind: kindInt, def: strconv.Itoa(DefaultPort),
			usage: "TCP `port` to listen on (GEARMAND_PORT when -p is not given)",
			set:   intSetter(func(c *Server) *int { return &c.Port }, portCheck(true))},
		{flag: "listen", short: "L", kind: kindList,
			usage: "`host` or address to listen on, repeatable or comma-separated; every address it resolves to is bound (localhost: 127.0.0.1 and ::1); default all",
			set:   listSetter},
		{flag: "log-file", short: "l", kind: kindString, def: "stderr",
			usage: "log `file`; \"stderr\" or \"none\" are special (gearmand's default is /var/log/gearmand.log; ours is stderr); reopened on SIGHUP",
			set: stringSetter(func(c *Server) *string { return &c.LogFile }, func(s string) (string, error) {
				if strings.TrimSpace(s) == "" {
					return "", errors.New("want a path, stderr or none")
				}
				return s, nil
			})},
		{flag: "log-format", kind: kindString, def: "text",
			usage: "log `format`: text or json",
			set:   stringSetter(func(c *Server) *string { return &c.LogFormat }, oneOf("text", "json"))},
		{flag: "verbose", kind: kindString, def: "ERROR",
			usage: "log `level`: FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG; each -v raises it one step (-vvv: INFO)",
			set:   stringSetter(func(c *Server) *string { return &c.Verbose }, verboseCheck)},
		{flag: "pid-file", short: "P", kind: kindString,
			usage: "write and lock the process id in this `file` (default none; gearmand's is /var/gearmand.pid)",
			set:   stringSetter(func(c *Server) *string { return &c.PidFile }, nil)},
		{flag: "daemon", short: "d", kind: kindBool, def: "false",
			usage: "detach and run in the background (use with --log-file and --pid-file)",
			set:   boolSetter(func(c *Server) *bool { return &c.Daemon })},
		{flag: "user", short: "u", kind: kindString,
			usage: "switch to this `user` after binding the ports (needs root)",
			set:   stringSetter(func(c *Server) *string { return &c.User }, nil)},
		{flag: "threads", short: "t", kind: kindInt, def: "0",
			usage: "gearmand's I/O `threads`; here N > 0 sets GOMAXPROCS to N, 0 keeps Go's default (one per CPU)",
			set:   intSetter(func(c *Server) *int { return &c.Threads }, atLeast(0))},
		{flag: "backlog", short: "b", kind: kindInt, def: "32",
			usage: "listen `backlog`; accepted for compatibility: Go uses the system's net.core.somaxconn",
			set:   intSetter(func(c *Server) *int { return &c.Backlog }, atLeast(1))},
		{flag: "file-descriptors", short: "f", kind: kindInt, def: "0",
			usage: "set the open-file limit (RLIMIT_NOFILE) to `N` at start; 0 keeps it",
			set:   intSetter(func(c *Server) *int { return &c.FileDescriptors }, atLeast(0))},
		{flag: "job-retries", short: "j", kind: kindInt, def: "-1",
			usage: "`attempts` of a job whose worker died or timed out, gearmand HEAD meaning: -1 unlimited, 0 no retry (dropped at the first failure), N (1..255) at most N attempts. Note: gearmand 1.1.20 used 0 for unlimited",
			set: intSetter(func(c *Server) *int { return &c.JobRetries }, func(n int) error {
				if n < -1 || n > MaxJobRetries {
					return errors.New("want -1 (unlimited), 0 (no retry) or 1..255")
				}
				return nil
			})},
		{flag: "worker-wakeup", short: "w", kind: kindInt, def: "0",
			usage: "sleeping `workers` woken (NOOP) per new job; 0 = all",
			set:   intSetter(func(c *Server) *int { return &c.WorkerWakeup }, atLeast(0))},
		{flag: "round-robin", short: "R", kind: kindBool, def: "false",
			usage: "accepted for compatibility; dispatch is always round-robin (gearmand HEAD)",
			set:   boolSetter(func(c *Server) *bool { return &c.RoundRobin })},
		{flag: "exceptions", kind: kindBool, def: "false",
			usage: "every connection starts with the exceptions option on",
			set:   boolSetter(func(c *Server) *bool { return &c.Exceptions })},
		{flag: "job-handle-prefix", kind: kindString,
			usage: "job handle `prefix` (default H:<host name>)",
			set: stringSetter(func(c *Server) *string { return &c.JobHandlePrefix }, func(s string) (string, error) {
				if strings.ContainsAny(s, "\x00\r\n \t") {
					return "", fmt.Errorf("must not contain spaces or NUL, got %q", s)
				}
				return s, nil
			})},
		{flag: "admin-shutdown", kind: kindBool, def: "false",
			usage: "enable the shutdown and shutdown graceful admin commands (loopback connections only)",
			set:   boolSetter(func(c *Server) *bool { return &c.AdminShutdown })},
		{flag: "max-payload", kind: kindString, def: "64MiB",
			usage: "largest packet payload accepted (`size`: bytes or K/M/G); larger gets ERROR and the connection is closed",
			set:   payloadSetter},
		{flag: "max-connections", kind: kindInt, def: "-1",
			usage: "most open Gearman connections (`N`); beyond it new ones are closed at once, but 8 more are kept for loopback peers (gearadmin). 0: unlimited; -1: the open-file limit less 256, at most 100000",
			set:   intSetter(func(c *Server) *int { return &c.MaxConnections }, atLeast(-1))},
		{flag: "max-queue-memory", kind: kindString, def: "auto",
			usage: "most memory the jobs held may take (`size`: bytes or K/M/G; payload, unique and 256 bytes per job); beyond it a new job's submit gets ERROR QUEUE_ERROR. 0: unlimited; auto: 1/4 of the cgroup memory limit, else of the physical memory",
			set:   queueMemorySetter},
		{flag: "packet-timeout", kind: kindString, def: DefaultPacketTimeout.String(),
			usage: "`duration` (30s, 2m; a bare number is seconds) a connection has to complete a packet or admin line it has begun (or, with --ssl, its TLS handshake), else it is closed; 0: none. Idle connections are not affected",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.PacketTimeout })},
		{flag: "keepalive", kind: kindBool, def: "false",
			usage: "enable TCP keepalive on accepted connections",
			set:   boolSetter(func(c *Server) *bool { return &c.Keepalive })},
		{flag: "keepalive-idle", kind: kindInt, def: "-1",
			usage: "with --keepalive: idle `seconds` before the first probe; -1 = system default",
			set:   intSetter(func(c *Server) *int { return &c.KeepaliveIdle }, keepaliveCheck)},
		{flag: "keepalive-interval", kind: kindInt, def: "-1",
			usage: "with --keepalive: `seconds` between probes; -1 = system default",
			set:   intSetter(func(c *Server) *int { return &c.KeepaliveInterval }, keepaliveCheck)},
		{flag: "keepalive-count", kind: kindInt, def: "-1",
			usage: "with --keepalive: unanswered `probes` before the connection is dropped; -1 = system default",
			set:   intSetter(func(c *Server) *int { return &c.KeepaliveCount }, keepaliveCheck)},
		{flag: "queue-type", short: "q", kind: kindString, def: DefaultQueueType,
			usage: "job store `type`: builtin (in memory), embedded, postgres, mysql, redis or libsqlite3 (case-insensitive)",
			set:   queueSetter},
		{flag: "data-dir", kind: kindString,
			usage: "-q embedded: `directory` of the store (default /var/lib/gserverd as root, else ~/.local/state/gserverd; on a port other than 4730 the port is a suffix: gserverd-PORT)",
			set:   stringSetter(func(c *Server) *string { return &c.DataDir }, nil)},
		{flag: "sync", kind: kindString, def: "always",
			usage: "-q embedded: durability `mode`: always (fsync before JOB_CREATED), interval (written before JOB_CREATED, fsync every 100ms: a machine crash loses the last interval, a gserverd crash nothing) or none (written before JOB_CREATED, never fsynced: a machine crash can lose more); -q libsqlite3: SQLite's synchronous FULL, NORMAL or OFF",
			set:   stringSetter(func(c *Server) *string { return &c.Sync }, oneOf("always", "interval", "none"))},
		{flag: "store-timeout", kind: kindString, def: DefaultStoreTimeout.String(),
			usage: "`duration` (5s, 1m; a bare number is seconds) each call to the job store may take (a write, a delete, connecting, the replay between two jobs); a background submit whose write misses it gets ERROR QUEUE_ERROR, never JOB_CREATED; 0: none",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.StoreTimeout })},
		{flag: "accept-store-damage", kind: kindBool, def: "false",
			usage: "-q embedded: start even though the store's write-ahead log is damaged, losing the jobs stored from the damage on, or large jobs' payload files are missing or short, losing those jobs (without it gserverd refuses to start and names the file)",
			set:   boolSetter(func(c *Server) *bool { return &c.AcceptStoreDamage })},
		{flag: "libpq-conninfo", kind: kindString,
			usage: "-q postgres: libpq connection `string`",
			set:   stringSetter(func(c *Server) *string { return &c.Postgres.Conninfo }, nil)},
		{flag: "libpq-table", kind: kindString, def: "queue",
			usage: "-q postgres: `table`",
			set:   stringSetter(func(c *Server) *string { return &c.Postgres.Table }, tableCheck)},
		{flag: "member-id", kind: kindString,
			usage: "-q postgres: this server's `id` in the fleet of servers sharing the table (default: host name:port); each member serves its own jobs and claims those of a member whose lease expired",
			set:   stringSetter(func(c *Server) *string { return &c.Fleet.MemberID }, nil)},
		{flag: "fleet-heartbeat", kind: kindString, def: DefaultFleetHeartbeat.String(),
			usage: "-q postgres: `duration` between two renewals of this member's lease",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.Fleet.Heartbeat })},
		{flag: "fleet-lease", kind: kindString, def: DefaultFleetLease.String(),
			usage: "-q postgres: `duration` a member's lease lasts without a heartbeat; then another member claims its jobs (at least three heartbeats)",
			set:   durationSetter(func(c *Server) *time.Duration { return &c.Fleet.Lease })},
		{flag: "mysql-host", kind: kindString, def: "localhost",
			usage: "-q mysql: `host`",
			set:   stringSetter(func(c *Server) *string { return &c.MySQL.Host }, nil)},
		{flag: "mysql-port", kind: kindInt, def: "3306",
			usage: "-q mysql: `port`",
			set:   intSetter(func(c *Server) *int { return &c.MySQL.Port }, portCheck(false))},
		{flag: "mysql-user", kind: kindString,
			usage: "-q mysql: `user`",
			set:   stringSetter(func(c *Server) *string { return &c.MySQL.User }, nil)},
		{flag: "mysql-password", kind: kindString,
			usage: "-q mysql: `password`",
			set:   stringSetter(func(c *Server) *string { return &c.MySQL.Password }, nil)},
		{flag: "mysql-db", kind: kindString,
			usage: "-q mysql: `database`",
			set:   stringSetter(func(c *Server) *string { return &c.MySQL.DB }, nil)},
		{flag: "mysql-table", kind: kindString, def: "gearman_queue",
			usage: "-q mysql: `table`",
			set:   stringSetter(func(c *Server) *string { return &c.MySQL.Table }, tableCheck)},
		{flag: "redis-server", kind: kindString, def: "127.0.0.1",
			usage: "-q redis: `host`",
			set:   stringSetter(func(c *Server) *string { return &c.Redis.Server }, nil)},
		{flag: "redis-port", kind: kindInt, def: "6379",
			usage: "-q redis: `port`",
			set:   intSetter(func(c *Server) *int { return &c.Redis.Port }, portCheck(false))},
		{flag: "redis-password", kind: kindString,
			usage: "-q redis: `password`",
			set:   stringSetter(func(c *Server) *string { return &c.Redis.Password }, nil)},
		{flag: "redis-prefix", kind: kindString, def: "_gear_",
			usage: "-q redis: key `prefix`",
			set:   stringSetter(func(c *Server) *string { return &c.Redis.Prefix }, nil)},
		{flag: "libsqlite3-db", kind: kindString,
			usage: "-q libsqlite3: gearmand's SQLite queue `file`, served in place (created if missing)",
			set:   stringSetter(func(c *Server) *string { return &c.SQLite.DB }, nil)},
		{flag: "libsqlite3-table", kind: kindString, def: "gearman_queue",
			usage: "-q libsqlite3: `table`",
			set:   stringSetter(func(c *Server) *string { return &c.SQLite.Table }, tableCheck)},
		{flag: "ssl", kind: kindBool, def: "false",
			usage: "speak TLS on the Gearman port (needs --ssl-certificate and --ssl-key)",
			set:   boolSetter(func(c *Server) *bool { return &c.SSL })},
		{flag: "ssl-ca-file", kind: kindString, overrideEnv: "GEARMAND_CA_CERTIFICATE",
			usage: "PEM `file` of the CA that signs client certificates (verified when presented)",
			set:   stringSetter(func(c *Server) *string { return &c.SSLCAFile }, nil)},
		{flag: "ssl-certificate", kind: kindString, overrideEnv: "GEARMAND_SERVER_PEM",
			usage: "PEM `file` of the server certificate (with --ssl)",
			set:   stringSetter(func(c *Server) *string { return &c.SSLCertificate }, nil)},
		{flag: "ssl-key", kind: kindString, overrideEnv: "GEARMAND_SERVER_KEY",
			usage: "PEM `file` of the server certificate's key (with --ssl)",
			set:   stringSetter(func(c *Server) *string { return &c.SSLKey }, nil)},
		{flag: "protocol", short: "r", kind: kindString,
			usage: "protocol `module` to load, as gearmand: http serves gearmand's HTTP protocol (POST /<function>, the body as the workload) on --http-port; the only module",
			set:   stringSetter(func(c *Server) *string { return &c.Protocol }, protocolCheck)},
		{flag: "http-port", kind: kindInt, def: strconv.Itoa(DefaultHTTPPort),
			usage: "with -r http: TCP `port` of gearmand's HTTP protocol, on the --listen addresses (0: any free port); not the --http-listen endpoint",
			set:   intSetter(func(c *Server) *int { return &c.HTTPPort }, portCheck(true))},
		{flag: "http-listen", kind: kindString,
			usage: "`host:port` of the HTTP endpoint (metrics, API, dashboard); empty turns it off. Default 127.0.0.1 on the Gearman port + 1 (4731 for -p 4730; a free port for -p 0); when that default is in use the endpoint is off, with an error line",
			set:   stringSetter(func(c *Server) *string { return &c.HTTPListen }, nil)},
		{flag: "http-token", kind: kindString,
			usage: "bearer `token` the HTTP API and its actions require; empty (default) for none",
			set:   stringSetter(func(c *Server) *string { return &c.HTTPToken }, nil)},
		{flag: "http-token-file", kind: kindString,
			usage: "read the bearer token from this `file` (its trailing newline removed), so that it is not in ps; instead of --http-token",
			set:   stringSetter(func(c *Server) *string { return &c.HTTPTokenFile }, nil)},
		{flag: "http-allowed-hosts", kind: kindList,
			usage: "host `names` the HTTP endpoint answers besides IP addresses, localhost and the --http-listen host; other Host headers get 421 (DNS rebinding)",
			set: func(c *Server, _ string, list []string) error {
				l, err := allowedHosts(list)
				c.HTTPAllowedHosts = l
				return err
			}},
		{flag: "http-max-streams", kind: kindInt, def: strconv.Itoa(DefaultHTTPMaxStreams),
			usage: "most open event streams (/api/v1/events, one per open dashboard) of the HTTP endpoint (`N`); one more gets 503",
			set:   intSetter(func(c *Server) *int { return &c.HTTPMaxStreams }, atLeast(1))},
		{flag: "http-metrics-functions", kind: kindInt, def: strconv.Itoa(DefaultHTTPMetricsFunctions),
			usage: "how many functions, the busiest (most jobs taken and queued), get their own series in /metrics (`N`); the others are summed as function=\"_other\"",
			set:   intSetter(func(c *Server) *int { return &c.HTTPMetricsFunctions }, atLeast(1))},
	}
	return append(keys, gearmandKeys()...)
}

// rawFlag holds a flag's text until LoadServer parses it, so every value,
// whatever its source, goes through the same checks and error messages.
type rawFlag struct {
	kind keyKind
	s    string
	list []string
}

func (r *rawFlag) String() string {
	if r.kind == kindList {
		return strings.Join(r.list, ",")
	}
	return r.s
}

func (r *rawFlag) Set(s string) error {
	if r.kind == kindList {
		r.list = append(r.list, strings.Split(s, ",")...)
		return nil
	}
	r.s = s
	return nil
}

func (r *rawFlag) Type() string {
	switch r.kind {
	case kindInt:
		return "int"
	case kindBool:
		return "bool"
	case kindList:
		return "strings"
	}
	return "string"
}

// ServerFlags registers gserverd's configuration flags (gearmand's names)
// on fs. Parse fs, then call LoadServer.
func ServerFlags(fs *pflag.FlagSet) {
	for _, k := range serverKeys() {
		r := &rawFlag{kind: k.kind, s: k.def}
		f := fs.VarPF(r, k.flag, k.short, k.usage)
		if k.kind == kindBool {
			f.NoOptDefVal = "true"
		}
	}
	fs.CountP(VerboseUp, "v", "raise the log level one step (-vvv: INFO)")
	_ = fs.MarkHidden(VerboseUp)
}

// ServerEnvVars returns the environment variables LoadServer reads, in
// --help order.
func ServerEnvVars() []string {
	var out []string
	for _, k := range serverKeys() {
		out = append(out, k.env())
	}
	return append(out, "GEARMAND_PORT", "GEARMAND_CA_CERTIFICATE", "GEARMAND_SERVER_PEM", "GEARMAND_SERVER_KEY")
}

type fileValue struct {
	s    string
	list []string
	line int
	err  string // the value has the wrong shape
}

// LoadServer builds the configuration from the parsed flags fs (registered
// with ServerFlags), the environment (lookupEnv, os.LookupEnv in main) and
// the config file, and validates it. uid and lookupEnv also pick the
// default data directory. Errors are *ServerConfigError.
func LoadServer(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), uid int) (*Server, error) {
	return loadServerWith(fs, lookupEnv, uid, DefaultConfigFile)
}

// loadServerWith is LoadServer with the default config file's path.
func loadServerWith(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), uid int, defaultFile string) (*Server, error) {
	keys := serverKeys()
	c := &Server{sources: map[string]Source{}}

	type pick struct {
		s    string
		list []string
		src  Source
	}
	choose := func(k serverKey, file map[string]fileValue) (pick, error) {
		if k.overrideEnv != "" {
			if v, ok := lookupEnv(k.overrideEnv); ok && v != "" {
				return pick{s: v, src: Source{Kind: SourceEnv, Name: k.overrideEnv}}, nil
			}
		}
		if f := fs.Lookup(k.flag); f != nil && f.Changed {
			r := f.Value.(*rawFlag)
			return pick{s: r.s, list: r.list, src: Source{Kind: SourceFlag, Name: "--" + k.flag}}, nil
		}
		if v, ok := lookupEnv(k.env()); ok {
			return pick{s: v, list: splitList(v), src: Source{Kind: SourceEnv, Name: k.env()}}, nil
		}
		if k.flag == "port" {
			if v, ok := lookupEnv("GEARMAND_PORT"); ok && v != "" {
				return pick{s: v, src: Source{Kind: SourceEnv, Name: "GEARMAND_PORT"}}, nil
			}
		}
		if fv, ok := file[k.key()]; ok {
			src := Source{Kind: SourceFile, Name: c.ConfigFile, Line: fv.line}
			if fv.err != "" {
				return pick{}, &ServerConfigError{Key: k.key(), Source: src, Msg: fv.err}
			}
			return pick{s: fv.s, list: fv.list, src: src}, nil
		}
		var list []string
		if k.def != "" {
			list = []string{k.def}
		}
		return pick{s: k.def, list: list}, nil
	}
	apply := func(k serverKey, file map[string]fileValue) error {
		p, err := choose(k, file)
		if err != nil {
			return err
		}
		if err := k.set(c, p.s, p.list); err != nil {
			return &ServerConfigError{Key: k.key(), Source: p.src, Msg: err.Error()}
		}
		c.sources[k.key()] = p.src
		if k.ignored != "" && p.src.Kind != SourceDefault {
			c.warn((&ServerConfigError{Key: k.key(), Source: p.src, Msg: "accepted and ignored: " + k.ignored}).Error())
		}
		return nil
	}

	// The config file's name first: it comes from the flag or the env only.
	if err := apply(keys[0], nil); err != nil {
		return nil, err
	}
	if c.ConfigFile == "" || c.ConfigFile == defaultFile {
		// gearmand reads its default file when it exists, silently
		// skips it when not, even when named.
		c.ConfigFile = ""
		if _, err := os.Stat(defaultFile); err == nil {
			c.ConfigFile = defaultFile
		}
	}
	var file map[string]fileValue
	fileVerbose := 0
	if c.ConfigFile != "" {
		var err error
		file, fileVerbose, err = readConfigFile(c.ConfigFile, keys)
		if err != nil {
			return nil, err
		}
	}
	for _, k := range keys[1:] {
		if err := apply(k, file); err != nil {
			return nil, err
		}
	}
	if n, _ := fs.GetCount(VerboseUp); n > 0 {
		c.Verbose = raiseVerbose(c.Verbose, n)
		c.sources["verbose"] = Source{Kind: SourceFlag, Name: "-v"}
	} else if fileVerbose > 0 {
		c.Verbose = raiseVerbose(c.Verbose, fileVerbose)
		c.sources["verbose"] = Source{Kind: SourceFile, Name: c.ConfigFile}
	}
	if c.SSL {
		for _, m := range []struct{ key, val, flag, env string }{
			{"ssl_certificate", c.SSLCertificate, "--ssl-certificate", "GEARMAND_SERVER_PEM"},
			{"ssl_key", c.SSLKey, "--ssl-key", "GEARMAND_SERVER_KEY"},
		} {
			if m.val == "" {
				return nil, &ServerConfigError{Key: "ssl", Source: c.sources["ssl"],
					Msg: "TLS needs " + m.flag + " (" + m.key + " in the file, or " + m.env + ")"}
			}
		}
	}
	if c.HTTPTokenFile != "" {
		src := c.sources["http_token_file"]
		if c.HTTPToken != "" {
			return nil, &ServerConfigError{Key: "http_token_file", Source: src,
				Msg: "give the token once: --http-token-file or --http-token (http_token in the file), not both"}
		}
		tok, err := readTokenFile(c.HTTPTokenFile)
		if err != nil {
			return nil, &ServerConfigError{Key: "http_token_file", Source: src, Msg: err.Error()}
		}
		c.HTTPToken = tok
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir(uid, c.Port, lookupEnv)
	}
	if err := c.checkFleet(); err != nil {
		return nil, err
	}
	if c.sources["http_listen"].Kind == SourceDefault {
		c.HTTPListen = DefaultHTTPListenFor(c.Port)
	}
	return c, nil
}

// checkFleet refuses fleet settings with a store that cannot carry a
// fleet, and a lease shorter than three heartbeats.
func (c *Server) checkFleet() error {
	for _, key := range []string{"member_id", "fleet_heartbeat", "fleet_lease"} {
		src := c.sources[key]
		if src.Kind == SourceDefault || c.QueueType == "postgres" {
			continue
		}
		why := map[string]string{
			"mysql":      "-q mysql keeps no leases or owners yet: a fleet needs -q postgres",
			"redis":      "-q redis keeps no leases or owners yet: a fleet needs -q postgres",
			"embedded":   "the embedded store is this server's own directory, which no other server can take over: a fleet shares one -q postgres database",
			"builtin":    "-q builtin keeps jobs in memory only: a fleet shares one -q postgres database",
			"libsqlite3": "a SQLite file is one host's: a fleet shares one -q postgres database",
		}[c.QueueType]
		return &ServerConfigError{Key: key, Source: src, Msg: why}
	}
	if c.Fleet.Heartbeat <= 0 {
		return &ServerConfigError{Key: "fleet_heartbeat", Source: c.sources["fleet_heartbeat"], Msg: "want a duration > 0"}
	}
	if c.Fleet.Lease < 3*c.Fleet.Heartbeat {
		key := "fleet_lease"
		if c.sources[key].Kind == SourceDefault {
			key = "fleet_heartbeat"
		}
		return &ServerConfigError{Key: key, Source: c.sources[key],
			Msg: fmt.Sprintf("--fleet-lease %v is shorter than three heartbeats (--fleet-heartbeat %v)", c.Fleet.Lease, c.Fleet.Heartbeat)}
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

// readServerFile reads the YAML file's data with viper; a yaml.v3 pass
// finds the line of every top-level key for error messages.
func readServerFile(path string, data []byte, keys []serverKey) (map[string]fileValue, error) {
	fileErr := func(line int, key, msg string) error {
		return &ServerConfigError{Key: key, Source: Source{Kind: SourceFile, Name: path, Line: line}, Msg: msg}
	}
	lines := map[string]int{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fileErr(0, "", "not valid YAML: "+err.Error())
	}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return map[string]fileValue{}, nil
		}
		if root.Kind != yaml.MappingNode {
			return nil, fileErr(root.Line, "", "the top level must be a mapping of option: value")
		}
		for i := 0; i+1 < len(root.Content); i += 2 {
			k := root.Content[i]
			norm := strings.ToLower(strings.ReplaceAll(k.Value, "-", "_"))
			if _, dup := lines[norm]; dup {
				return nil, fileErr(k.Line, norm, "duplicate key")
			}
			lines[norm] = k.Line
		}
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fileErr(0, "", "not valid YAML: "+err.Error())
	}
	known := map[string]serverKey{}
	for _, k := range keys {
		if !k.noFile {
			known[k.key()] = k
		}
	}
	out := map[string]fileValue{}
	topKeys := map[string]bool{}
	for _, full := range v.AllKeys() {
		top, _, _ := strings.Cut(full, ".")
		topKeys[top] = true
	}
	names := make([]string, 0, len(topKeys))
	for t := range topKeys {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, raw := range names {
		norm := strings.ReplaceAll(raw, "-", "_")
		line := lines[norm]
		k, ok := known[norm]
		if !ok {
			if norm == "config_file" {
				return nil, fileErr(line, norm, "cannot be set inside the config file")
			}
			return nil, fileErr(line, norm, "unknown key")
		}
		out[norm] = fileScalar(k, v.Get(raw), line)
	}
	return out, nil
}

func fileScalar(k serverKey, val any, line int) fileValue {
	fv := fileValue{line: line}
	str := func(x any) (string, bool) {
		switch t := x.(type) {
		case nil:
			return "", true
		case string:
			return t, true
		case bool:
			return strconv.FormatBool(t), true
		case int:
			return strconv.Itoa(t), true
		case int64:
			return strconv.FormatInt(t, 10), true
		case uint64:
			return strconv.FormatUint(t, 10), true
		case float64:
			return strconv.FormatFloat(t, 'f', -1, 64), true
		}
		return "", false
	}
	if l, ok := val.([]any); ok {
		if k.kind != kindList {
			fv.err = "want a single value, got a list"
			return fv
		}
		for _, e := range l {
			s, ok := str(e)
			if !ok {
				fv.err = "want a list of strings"
				return fv
			}
			fv.list = append(fv.list, s)
		}
		return fv
	}
	s, ok := str(val)
	if !ok {
		fv.err = "want a single value"
		return fv
	}
	fv.s = s
	if k.kind == kindList {
		fv.list = splitList(s)
	}
	return fv
}
