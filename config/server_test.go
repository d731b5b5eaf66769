package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/monitor"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// loadServer parses args with ServerFlags and loads with env; a non-empty
// yamlText is written to a file passed with --config-file (its path
// replaces "$FILE" in expected errors).
func loadServer(t *testing.T, args []string, env map[string]string, yamlText string) (*Server, string, error) {
	t.Helper()
	path := ""
	if yamlText != "" {
		path = filepath.Join(t.TempDir(), "gserverd.yaml")
		if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config-file", path}, args...)
	}
	fs := pflag.NewFlagSet("gserverd", pflag.ContinueOnError)
	ServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := loadServerWith(Inputs{Flags: fs, LookupEnv: lookup, WorkDir: "/wd"}, 1000, DefaultConfigFile)
	return c, path, err
}

func TestLoadServerDefaults(t *testing.T) {
	t.Parallel()
	c, _, err := loadServer(t, nil, map[string]string{"HOME": "/home/u"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := &Server{
		Port: 4730, LogFile: "stderr", LogFormat: "text", Verbose: "ERROR",
		Backlog: 32, JobRetries: -1, MaxPayload: 64 << 20,
		MaxConnections: -1, PacketTimeout: server.DefaultPacketTimeout, MaxQueueMemory: -1,
		HTTPMaxStreams: DefaultHTTPMaxStreams, HTTPMetricsFunctions: DefaultHTTPMetricsFunctions,
		KeepaliveIdle: -1, KeepaliveInterval: -1, KeepaliveCount: -1,
		Store: storeconf.Config{QueueType: "embedded", DataDir: "/home/u/.local/state/gserverd", Sync: "always", StoreTimeout: server.DefaultStoreTimeout,
			LibpqTable: "queue", FleetHeartbeat: time.Second, FleetLease: 10 * time.Second,
			MySQLHost: "localhost", MySQLPort: 3306, MySQLTable: "gearman_queue",
			RedisServer: "127.0.0.1", RedisPort: 6379, RedisPrefix: "_gear_",
			SQLiteTable: "gearman_queue"},
		HTTPListen: "127.0.0.1:4731",
		HTTPPort:   8080,
	}
	c.origins = origins{}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if got := c.LogLevel(); got != logrus.ErrorLevel {
		t.Errorf("LogLevel = %v, want error", got)
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		uid, port int
		env       map[string]string
		want      string
	}{
		{0, 4730, map[string]string{"HOME": "/root"}, "/var/lib/gserverd"},
		{0, 4740, map[string]string{"HOME": "/root"}, "/var/lib/gserverd-4740"},
		{0, 0, map[string]string{"HOME": "/root"}, "/var/lib/gserverd-0"},
		{1000, 4730, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/gserverd"},
		{1000, 4731, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/gserverd-4731"},
		{1000, 4730, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/st"}, "/st/gserverd"},
		{1000, 5000, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/st"}, "/st/gserverd-5000"},
		{1000, 4730, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "relative"}, "/home/u/.local/state/gserverd"},
		{1000, 4730, map[string]string{}, filepath.Join(os.TempDir(), "gserverd-uid1000")},
	}
	for _, tt := range tests {
		got := DefaultDataDir(tt.uid, tt.port, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
		if got != tt.want {
			t.Errorf("DefaultDataDir(%d, %d, %v) = %q, want %q", tt.uid, tt.port, tt.env, got, tt.want)
		}
	}
}

// TestLoadServerPerPort checks that the defaults of a server on another
// port than 4730 do not collide with those of one on 4730: its own data
// directory and HTTP endpoint, unless they are given.
func TestLoadServerPerPort(t *testing.T) {
	t.Parallel()
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"HOME": "/home/u"}[k]
		return v, ok
	}
	tests := []struct {
		args             []string
		dataDir, httpLst string
	}{
		{nil, "/home/u/.local/state/gserverd", "127.0.0.1:4731"},
		{[]string{"-p", "4740"}, "/home/u/.local/state/gserverd-4740", "127.0.0.1:4741"},
		{[]string{"-p", "0"}, "/home/u/.local/state/gserverd-0", "127.0.0.1:0"},
		{[]string{"-p", "65535"}, "/home/u/.local/state/gserverd-65535", "127.0.0.1:0"},
		{[]string{"-p", "4740", "--data-dir", "/d", "--http-listen", "127.0.0.1:9"}, "/d", "127.0.0.1:9"},
		{[]string{"-p", "4740", "--http-listen", ""}, "/home/u/.local/state/gserverd-4740", ""},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		ServerFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		c, err := LoadServer(fs, env, 1000)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if c.Store.DataDir != tt.dataDir || c.HTTPListen != tt.httpLst {
			t.Errorf("%v: data dir %q, http listen %q; want %q, %q", tt.args, c.Store.DataDir, c.HTTPListen, tt.dataDir, tt.httpLst)
		}
	}
}

// TestLoadServerValues checks every flag's parsing and the precedence
// flag > GSERVERD_* > GEARMAND_PORT (port) > file > default.
func TestLoadServerValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		file  string
		check func(c *Server) bool
		src   map[string]Source // optional: expected sources (file name filled in)
	}{
		{name: "short flags", args: []string{"-p", "4731", "-L", "localhost", "-l", "none", "-P", "x.pid", "-d", "-t", "2", "-j", "0", "-w", "3", "-R", "-q", "Embedded", "-u", "nobody", "-b", "64", "-f", "4096"},
			check: func(c *Server) bool {
				return c.Port == 4731 && reflect.DeepEqual(c.Listen, []string{"localhost"}) && c.LogFile == "none" &&
					c.PidFile == "/wd/x.pid" && c.Daemon && c.Threads == 2 && c.JobRetries == 0 && c.WorkerWakeup == 3 &&
					c.RoundRobin && c.Store.QueueType == "embedded" && c.User == "nobody" && c.Backlog == 64 && c.FileDescriptors == 4096
			}},
		{name: "long flags", args: []string{"--port=4732", "--listen=127.0.0.1,::1", "--listen", "[::1]", "--exceptions", "--job-handle-prefix=H:x",
			"--keepalive", "--keepalive-idle=30", "--keepalive-interval=5", "--keepalive-count=3", "--verbose=debug", "--admin-shutdown",
			"--max-payload=1MiB", "--log-format=json", "--http-listen=127.0.0.1:8080", "--http-token=t0k", "--job-retries=255"},
			check: func(c *Server) bool {
				return c.Port == 4732 && reflect.DeepEqual(c.Listen, []string{"127.0.0.1", "::1", "[::1]"}) && c.Exceptions &&
					c.JobHandlePrefix == "H:x" && c.Keepalive && c.KeepaliveIdle == 30 && c.KeepaliveInterval == 5 && c.KeepaliveCount == 3 &&
					c.Verbose == "DEBUG" && c.LogLevel() == logrus.DebugLevel && c.AdminShutdown && c.MaxPayload == 1<<20 &&
					c.LogFormat == "json" && c.HTTPListen == "127.0.0.1:8080" && c.HTTPToken == "t0k" && c.JobRetries == 255
			}},
		{name: "queue flags", args: []string{"-q", "postgres", "--libpq-conninfo", "host=127.0.0.1 dbname=test", "--libpq-table", "q2",
			"--mysql-host", "db", "--mysql-port", "3307", "--mysql-user", "u", "--mysql-password", "pw", "--mysql-db", "test", "--mysql-table", "t",
			"--redis-server", "r", "--redis-port", "6380", "--redis-password", "rp", "--redis-prefix", "p_", "--data-dir", "/d", "--sync", "none"},
			check: func(c *Server) bool {
				s := c.Store
				return s.QueueType == "postgres" && s.LibpqConninfo == "host=127.0.0.1 dbname=test" && s.LibpqTable == "q2" &&
					s.MySQLHost == "db" && s.MySQLPort == 3307 && s.MySQLUser == "u" && s.MySQLPassword == "pw" && s.MySQLDB == "test" && s.MySQLTable == "t" &&
					s.RedisServer == "r" && s.RedisPort == 6380 && s.RedisPassword == "rp" && s.RedisPrefix == "p_" &&
					s.DataDir == "/d" && s.Sync == "none"
			}},
		{name: "fleet flags", args: []string{"-q", "postgres", "--member-id", "db-a", "--fleet-heartbeat", "250ms", "--fleet-lease", "3s"},
			check: func(c *Server) bool {
				return c.Store.MemberID == "db-a" && c.Store.FleetHeartbeat == 250*time.Millisecond && c.Store.FleetLease == 3*time.Second
			}},
		{name: "sqlite queue flags", args: []string{"-q", "sqlite3", "--libsqlite3-db", "q.db", "--libsqlite3-table", "jobs"},
			check: func(c *Server) bool {
				return c.Store.QueueType == "libsqlite3" && c.Store.SQLiteDB == "/wd/q.db" && c.Store.SQLiteTable == "jobs"
			}},
		{name: "sqlite queue in the file", file: "queue_type: libsqlite3\nlibsqlite3_db: /var/lib/gearman/q.db\nlibsqlite3_table: t2\n",
			check: func(c *Server) bool {
				return c.Store.QueueType == "libsqlite3" && c.Store.SQLiteDB == "/var/lib/gearman/q.db" && c.Store.SQLiteTable == "t2"
			},
			src: map[string]Source{"libsqlite3_db": {Kind: SourceFile, Line: 2}}},
		{name: "max queue memory flag", args: []string{"--max-queue-memory", "512MiB"},
			check: func(c *Server) bool { return c.MaxQueueMemory == 512<<20 }},
		{name: "max queue memory in the file", file: "max_queue_memory: 0\n",
			check: func(c *Server) bool { return c.MaxQueueMemory == 0 },
			src:   map[string]Source{"max_queue_memory": {Kind: SourceFile, Line: 1}}},
		{name: "max queue memory auto", env: map[string]string{"GSERVERD_MAX_QUEUE_MEMORY": "Auto"},
			check: func(c *Server) bool { return c.MaxQueueMemory == -1 }},
		{name: "store timeout flag", args: []string{"--store-timeout", "1.5"},
			check: func(c *Server) bool { return c.Store.StoreTimeout == 1500*time.Millisecond }},
		{name: "store timeout in the file", file: "store_timeout: 2m\n",
			check: func(c *Server) bool { return c.Store.StoreTimeout == 2*time.Minute },
			src:   map[string]Source{"store_timeout": {Kind: SourceFile, Line: 1}}},
		{name: "store timeout off", env: map[string]string{"GSERVERD_STORE_TIMEOUT": "0"},
			check: func(c *Server) bool { return c.Store.StoreTimeout == 0 }},
		{name: "verbose names", args: []string{"--verbose", "warning"},
			check: func(c *Server) bool { return c.Verbose == "WARNING" && c.LogLevel() == logrus.WarnLevel }},
		{name: "GEARMAND_PORT when -p is not given", env: map[string]string{"GEARMAND_PORT": "4740"},
			check: func(c *Server) bool { return c.Port == 4740 },
			src:   map[string]Source{"port": {Kind: SourceEnv, Name: "GEARMAND_PORT"}}},
		{name: "-p beats GEARMAND_PORT", args: []string{"-p", "4741"}, env: map[string]string{"GEARMAND_PORT": "4740"},
			check: func(c *Server) bool { return c.Port == 4741 },
			src:   map[string]Source{"port": {Kind: SourceFlag, Name: "--port"}}},
		{name: "GSERVERD_PORT beats GEARMAND_PORT", env: map[string]string{"GEARMAND_PORT": "4740", "GSERVERD_PORT": "4742"},
			check: func(c *Server) bool { return c.Port == 4742 }},
		{name: "GEARMAND_PORT beats the file", env: map[string]string{"GEARMAND_PORT": "4740"}, file: "port: 4743\n",
			check: func(c *Server) bool { return c.Port == 4740 }},
		{name: "env values", env: map[string]string{"GSERVERD_JOB_RETRIES": "7", "GSERVERD_LISTEN": "127.0.0.1, ::1", "GSERVERD_DAEMON": "true",
			"GSERVERD_QUEUE_TYPE": "REDIS", "GSERVERD_REDIS_PORT": "6390", "GSERVERD_MAX_PAYLOAD": "4096"},
			check: func(c *Server) bool {
				return c.JobRetries == 7 && reflect.DeepEqual(c.Listen, []string{"127.0.0.1", "::1"}) && c.Daemon &&
					c.Store.QueueType == "redis" && c.Store.RedisPort == 6390 && c.MaxPayload == 4096
			},
			src: map[string]Source{"job_retries": {Kind: SourceEnv, Name: "GSERVERD_JOB_RETRIES"}, "backlog": {}}},
		{name: "file values", file: "port: 4750\nlisten: [127.0.0.1, \"::1\"]\njob-retries: 3\nEXCEPTIONS: true\nverbose: info\nmax_payload: 2M\nkeepalive: yes\n",
			check: func(c *Server) bool {
				return c.Port == 4750 && reflect.DeepEqual(c.Listen, []string{"127.0.0.1", "::1"}) && c.JobRetries == 3 &&
					c.Exceptions && c.Verbose == "INFO" && c.MaxPayload == 2<<20 && c.Keepalive
			},
			src: map[string]Source{"job_retries": {Kind: SourceFile, Line: 3}, "port": {Kind: SourceFile, Line: 1}}},
		{name: "file listen as a string", file: "listen: 127.0.0.1,::1\n",
			check: func(c *Server) bool { return reflect.DeepEqual(c.Listen, []string{"127.0.0.1", "::1"}) }},
		{name: "env beats file, flag beats env", args: []string{"-j", "1"}, env: map[string]string{"GSERVERD_JOB_RETRIES": "2", "GSERVERD_WORKER_WAKEUP": "5"},
			file:  "job_retries: 3\nworker_wakeup: 4\nthreads: 6\n",
			check: func(c *Server) bool { return c.JobRetries == 1 && c.WorkerWakeup == 5 && c.Threads == 6 }},
		{name: "empty file", file: "# nothing\n", check: func(c *Server) bool { return c.Port == 4730 }},
		{name: "ssl flags", args: []string{"--ssl", "--ssl-ca-file", "ca.pem", "--ssl-certificate", "s.pem", "--ssl-key", "s.key"},
			check: func(c *Server) bool {
				return c.SSL && c.SSLCAFile == "/wd/ca.pem" && c.SSLCertificate == "/wd/s.pem" && c.SSLKey == "/wd/s.key"
			}},
		{name: "GEARMAND_SERVER_* override the ssl flags, as in gearmand", args: []string{"--ssl", "--ssl-certificate", "s.pem", "--ssl-key", "s.key"},
			env: map[string]string{"GEARMAND_SERVER_PEM": "env.pem", "GEARMAND_SERVER_KEY": "env.key", "GEARMAND_CA_CERTIFICATE": "envca.pem"},
			check: func(c *Server) bool {
				return c.SSL && c.SSLCAFile == "/wd/envca.pem" && c.SSLCertificate == "/wd/env.pem" && c.SSLKey == "/wd/env.key"
			},
			src: map[string]Source{"ssl_certificate": {Kind: SourceEnv, Name: "GEARMAND_SERVER_PEM"}}},
		{name: "http protocol flags", args: []string{"-r", "http", "--http-port", "8090"},
			check: func(c *Server) bool { return c.Protocol == "http" && c.HTTPPort == 8090 }},
		{name: "http protocol in the file and env", file: "protocol: HTTP\nhttp_port: 8091\n", env: map[string]string{"GSERVERD_HTTP_PORT": "0"},
			check: func(c *Server) bool { return c.Protocol == "http" && c.HTTPPort == 0 },
			src:   map[string]Source{"protocol": {Kind: SourceFile, Line: 1}, "http_port": {Kind: SourceEnv, Name: "GSERVERD_HTTP_PORT"}}},
		{name: "config file from the environment", env: map[string]string{"GSERVERD_CONFIG_FILE": "$FILE"}, file: "port: 4760\n",
			check: func(c *Server) bool { return c.Port == 4760 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args, env := tt.args, tt.env
			if env["GSERVERD_CONFIG_FILE"] == "$FILE" {
				// the file goes through the env var, not --config-file
				path := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				env = map[string]string{"GSERVERD_CONFIG_FILE": path}
				tt.file = ""
			}
			c, path, err := loadServer(t, args, env, tt.file)
			if err != nil {
				t.Fatalf("LoadServer: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
			for k, want := range tt.src {
				if want.Kind == SourceFile {
					want.Name = path
				}
				if got := c.Source(k); got != want {
					t.Errorf("Source(%q) = %+v, want %+v", k, got, want)
				}
			}
		})
	}
}

func TestLoadServerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string // $FILE is the config file's path
	}{
		{"job-retries too big", []string{"-j", "256"}, nil, "", "--job-retries: want -1 (unlimited), 0 (no retry) or 1..255, got 256"},
		{"job-retries below -1", []string{"--job-retries=-2"}, nil, "", "--job-retries: want -1 (unlimited), 0 (no retry) or 1..255, got -2"},
		{"job-retries not a number", []string{"-j", "many"}, nil, "", `--job-retries: want an integer, got "many"`},
		{"port", []string{"-p", "65536"}, nil, "", "--port: want a TCP port 0..65535 (0: any free port), got 65536"},
		{"verbose", []string{"--verbose", "LOUD"}, nil, "", `--verbose: want one of FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG, got "LOUD"`},
		{"queue type", []string{"-q", "nosql"}, nil, "", `--queue-type: want one of builtin, embedded, postgres, mysql, redis, libsqlite3, got "nosql"`},
		{"sqlite table name", []string{"--libsqlite3-table", "q; drop"}, nil, "", `--libsqlite3-table: want a table name of letters, digits and _, got "q; drop"`},
		{"sync", []string{"--sync", "sometimes"}, nil, "", `--sync: want one of always, interval, none, got "sometimes"`},
		{"store timeout", []string{"--store-timeout", "-1s"}, nil, "", "--store-timeout: want a duration >= 0 (0: none)"},
		{"log format", []string{"--log-format", "xml"}, nil, "", `--log-format: want one of text, json, got "xml"`},
		{"keepalive idle 0", []string{"--keepalive-idle", "0"}, nil, "", "--keepalive-idle: want -1 (system default) or a positive number, got 0"},
		{"max payload", []string{"--max-payload", "5GiB"}, nil, "", `--max-payload: want 1 byte .. 4GiB-1, got "5GiB"`},
		{"max queue memory", []string{"--max-queue-memory", "lots"}, nil, "", `--max-queue-memory: want auto, 0 (unlimited) or a size like 512MiB, got "lots"`},
		{"max payload unit", []string{"--max-payload", "5X"}, nil, "", `--max-payload: want a size like 65536 or 64MiB, got "5X"`},
		{"table name", []string{"--mysql-table", "q; drop"}, nil, "", `--mysql-table: want a table name of letters, digits and _, got "q; drop"`},
		{"empty listen", []string{"-L", ""}, nil, "", "--listen: empty address"},
		{"handle prefix", []string{"--job-handle-prefix", "a b"}, nil, "", `--job-handle-prefix: must not contain spaces or NUL, got "a b"`},
		{"threads", []string{"-t", "-1"}, nil, "", "--threads: want at least 0, got -1"},
		{"protocol module", []string{"-r", "gear"}, nil, "", `--protocol: unknown protocol module "gear": want http (the only one)`},
		{"http port", []string{"-r", "http", "--http-port", "70000"}, nil, "", "--http-port: want a TCP port 0..65535 (0: any free port), got 70000"},
		{"http port in the file", nil, nil, "protocol: http\nhttp_port: web\n", `$FILE:2: http_port: want an integer, got "web"`},
		{"env job retries", nil, map[string]string{"GSERVERD_JOB_RETRIES": "300"}, "", "GSERVERD_JOB_RETRIES (environment): job_retries: want -1 (unlimited), 0 (no retry) or 1..255, got 300"},
		{"env bool", nil, map[string]string{"GSERVERD_DAEMON": "maybe"}, "", `GSERVERD_DAEMON (environment): daemon: want true or false, got "maybe"`},
		{"GEARMAND_PORT", nil, map[string]string{"GEARMAND_PORT": "gearman"}, "", `GEARMAND_PORT (environment): port: want an integer, got "gearman"`},
		{"file value", nil, nil, "port: 4730\njob_retries: 300\n", "$FILE:2: job_retries: want -1 (unlimited), 0 (no retry) or 1..255, got 300"},
		{"file unknown key", nil, nil, "port: 4730\n\nbogus: 1\n", "$FILE:3: bogus: unknown key"},
		{"file nested key", nil, nil, "mysql:\n  host: x\n", "$FILE:1: mysql: unknown key"},
		{"file config_file", nil, nil, "config_file: other.yaml\n", "$FILE:1: config_file: cannot be set inside the config file"},
		{"file duplicate", nil, nil, "port: 1\njob-retries: 2\njob_retries: 3\n", "$FILE:3: job_retries: duplicate key"},
		{"file list for a scalar", nil, nil, "port: [1, 2]\n", "$FILE:1: port: want a single value, got a list"},
		{"file mapping for a scalar", nil, nil, "verbose: {a: b}\n", "$FILE:1: verbose: want a single value"},
		{"file not a mapping", nil, nil, "- a\n- b\n", "$FILE:1: the top level must be a mapping of option: value"},
		{"file bad yaml", nil, nil, "port: [\n", "$FILE: not valid YAML: yaml: line 1: did not find expected node content"},
		{"file int", nil, nil, "backlog: lots\n", `$FILE:1: backlog: want an integer, got "lots"`},
		{"missing file", []string{"--config-file", "/nonexistent/gserverd.yaml"}, nil, "", "/nonexistent/gserverd.yaml: cannot read the config file: no such file or directory"},
		{"ssl without a certificate", []string{"--ssl", "--ssl-key", "k.pem"}, nil, "", "--ssl: TLS needs --ssl-certificate (ssl_certificate in the file, or GEARMAND_SERVER_PEM)"},
		{"token file missing", []string{"--http-token-file", "/nonexistent/tok"}, nil, "", "--http-token-file: cannot read the token file: open /nonexistent/tok: no such file or directory"},
		{"token file and token", []string{"--http-token", "t"}, nil, "http_token_file: /nonexistent/tok\n", "$FILE:1: http_token_file: give the token once: --http-token-file or --http-token (http_token in the file), not both"},
		{"allowed host with a port", []string{"--http-allowed-hosts", "a.example,b.example:80"}, nil, "", `--http-allowed-hosts: want a host name without port, got "b.example:80"`},
		{"allowed host url in the file", nil, nil, "http_allowed_hosts: [http://a.example]\n", `$FILE:1: http_allowed_hosts: want a host name without scheme or path, got "http://a.example"`},
		{"no event stream", []string{"--http-max-streams", "0"}, nil, "", "--http-max-streams: want at least 1, got 0"},
		{"no function in metrics", nil, nil, "http_metrics_functions: -5\n", "$FILE:1: http_metrics_functions: want at least 1, got -5"},
		{"member id with mysql", []string{"-q", "mysql", "--member-id", "a"}, nil, "", "--member-id: -q mysql keeps no leases or owners yet: a fleet needs -q postgres"},
		{"member id with redis in the file", []string{"-q", "redis"}, nil, "member_id: a\n", "$FILE:1: member_id: -q redis keeps no leases or owners yet: a fleet needs -q postgres"},
		{"fleet lease with embedded", []string{"--fleet-lease", "30s"}, nil, "", "--fleet-lease: the embedded store is this server's own directory, which no other server can take over: a fleet shares one -q postgres database"},
		{"fleet heartbeat with builtin", []string{"-q", "builtin", "--fleet-heartbeat", "2s"}, nil, "", "--fleet-heartbeat: -q builtin keeps jobs in memory only: a fleet shares one -q postgres database"},
		{"fleet lease too short", []string{"-q", "postgres", "--fleet-heartbeat", "2s", "--fleet-lease", "5s"}, nil, "", "--fleet-lease: --fleet-lease 5s is shorter than three heartbeats (--fleet-heartbeat 2s)"},
		{"fleet heartbeat too long", []string{"-q", "postgres", "--fleet-heartbeat", "4s"}, nil, "", "--fleet-heartbeat: --fleet-lease 10s is shorter than three heartbeats (--fleet-heartbeat 4s)"},
		{"fleet heartbeat 0", []string{"-q", "postgres", "--fleet-heartbeat", "0"}, nil, "", "--fleet-heartbeat: want a duration > 0"},
		{"ssl in the file without a key", nil, map[string]string{"GEARMAND_SERVER_PEM": "c.pem"}, "ssl: true\n", "$FILE:1: ssl: TLS needs --ssl-key (ssl_key in the file, or GEARMAND_SERVER_KEY)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, path, err := loadServer(t, tt.args, tt.env, tt.file)
			if err == nil {
				t.Fatalf("LoadServer(%q, %v, %q) succeeded, want error %q", tt.args, tt.env, tt.file, tt.want)
			}
			want := strings.ReplaceAll(tt.want, "$FILE", path)
			if err.Error() != want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Source.Kind == SourceDefault {
				t.Errorf("error %v does not carry its source", err)
			}
		})
	}
}

func TestParseServerSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"65536", 65536, true}, {"64K", 64 << 10, true}, {"64kib", 64 << 10, true},
		{"64MiB", 64 << 20, true}, {"1 GB", 1 << 30, true}, {"12B", 12, true},
		{"", 0, false}, {"MiB", 0, false}, {"1.5M", 0, false}, {"-1", 0, false}, {"99999999999999999999", 0, false},
		{"9999999999999G", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoadServerHTTPTokenFileAndHosts(t *testing.T) {
	t.Parallel()
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := loadServer(t, []string{"--http-token-file", tok, "--http-allowed-hosts", "a.example", "--http-allowed-hosts", "b.example,[::2]"}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPToken != "s3cret" || strings.Join(c.HTTPAllowedHosts, " ") != "a.example b.example [::2]" {
		t.Errorf("token %q hosts %q, want s3cret (newline trimmed) and [a.example b.example [::2]]", c.HTTPToken, c.HTTPAllowedHosts)
	}
	c, _, err = loadServer(t, nil, map[string]string{"GSERVERD_HTTP_ALLOWED_HOSTS": "c.example d.example"}, "http_token_file: "+tok+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPToken != "s3cret" || strings.Join(c.HTTPAllowedHosts, " ") != "c.example d.example" {
		t.Errorf("file and env: token %q hosts %q", c.HTTPToken, c.HTTPAllowedHosts)
	}
	if err := os.WriteFile(tok, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadServer(t, []string{"--http-token-file", tok}, nil, ""); err == nil || err.Error() != "--http-token-file: token file "+tok+" is empty" {
		t.Errorf("empty token file: %v", err)
	}
}

func TestServerFlagsHelp(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("gserverd", pflag.ContinueOnError)
	ServerFlags(fs)
	help := fs.FlagUsages()
	for _, want := range []string{"-p, --port", "-L, --listen", "-l, --log-file", "-P, --pid-file", "-d, --daemon", "-t, --threads",
		"-j, --job-retries", "-w, --worker-wakeup", "-R, --round-robin", "-q, --queue-type", "--exceptions", "--job-handle-prefix",
		"--keepalive-idle", "--keepalive-interval", "--keepalive-count", "--verbose", "-u, --user", "-b, --backlog",
		"-f, --file-descriptors", "--config-file", "-1 unlimited, 0 no retry", "--libpq-conninfo", "--mysql-db", "--redis-prefix", "--libsqlite3-db", "--libsqlite3-table",
		"--ssl ", "--ssl-ca-file", "--ssl-certificate", "--ssl-key"} {
		if !strings.Contains(help, want) {
			t.Errorf("flag help lacks %q", want)
		}
	}
	vars := ServerEnvVars()
	if vars[0] != "GSERVERD_CONFIG_FILE" || vars[len(vars)-4] != "GEARMAND_PORT" || vars[len(vars)-1] != "GEARMAND_SERVER_KEY" {
		t.Errorf("ServerEnvVars = %v", vars)
	}
}

func FuzzLoadServerFile(f *testing.F) {
	f.Add([]byte("port: 4730\nlisten: [127.0.0.1]\njob_retries: 3\n"))
	f.Add([]byte("max_payload: 1MiB\nverbose: info\nkeepalive: true\n"))
	f.Add([]byte("- a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fs := pflag.NewFlagSet("gserverd", pflag.ContinueOnError)
		ServerFlags(fs)
		if err := fs.Parse([]string{"--config-file", path}); err != nil {
			t.Fatal(err)
		}
		c, err := LoadServer(fs, func(string) (string, bool) { return "", false }, 0)
		if err == nil && (c.JobRetries < -1 || c.JobRetries > MaxJobRetries || c.Port < 0 || c.Port > 65535) {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v is not a config error", err)
		}
	})
}

// TestHTTPDefaultsAreMonitors: the HTTP endpoint's defaults that config
// writes down (to keep Prometheus out of its importers) are monitor's.
func TestHTTPDefaultsAreMonitors(t *testing.T) {
	t.Parallel()
	if DefaultHTTPMaxStreams != monitor.DefaultMaxEventStreams || DefaultHTTPMetricsFunctions != monitor.DefaultMetricsFunctions {
		t.Errorf("config's HTTP defaults %d, %d; monitor's %d, %d", DefaultHTTPMaxStreams, DefaultHTTPMetricsFunctions,
			monitor.DefaultMaxEventStreams, monitor.DefaultMetricsFunctions)
	}
}
