package config

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gworkerd/gworkerd/client"
	"github.com/gworkerd/gworkerd/protocol"
)

// Client is gclient's configuration: its global flags, each also read
// from GCLIENT_<KEY> and from the YAML file named by --config (or
// GCLIENT_CONFIG), whose keys are the flags' names with '_' or '-'
// (dial_timeout: 1s). There is no default file.
type Client struct {
	// ConfigFile is the file read, absolute; "" for none.
	ConfigFile string
	// Servers are the job servers, host[:port]. Default
	// ["127.0.0.1:4730"].
	Servers []string
	// Timeout bounds a whole command; 0 (default) is no limit (a
	// background submit then takes its own default).
	Timeout time.Duration
	// DialTimeout bounds each connection attempt. Default
	// client.DefaultDialTimeout.
	DialTimeout time.Duration

	origins
}

// DefaultServer is the job server gworkerd and gclient use when none is
// given: the local one, on the default port.
func DefaultServer() string { return protocol.ServerAddr("127.0.0.1") }

func clientTable() table[Client] {
	return table[Client]{envPrefix: "GCLIENT_", keys: []key[Client]{
		{name: "config", kind: kindString, noFile: true, path: pathFile,
			usage: "config `file` (YAML) with servers, timeout or dial_timeout",
			set:   stringSetter(func(c *Client) *string { return &c.ConfigFile }, nil)},
		{name: "servers", kind: kindList, def: DefaultServer(),
			usage: "job `servers`, host:port, comma-separated",
			set: func(c *Client, _ string, list []string) error {
				c.Servers = nil
				for _, s := range list {
					if s = strings.TrimSpace(s); s != "" {
						c.Servers = append(c.Servers, s)
					}
				}
				if len(c.Servers) == 0 {
					c.Servers = []string{DefaultServer()}
				}
				return nil
			}},
		{name: "timeout", kind: kindDuration, def: "0",
			usage: "give up after this `duration` (0 = no limit; background submits default to 30s)",
			set:   durationSetter(func(c *Client) *time.Duration { return &c.Timeout })},
		{name: "dial_timeout", kind: kindDuration, def: client.DefaultDialTimeout.String(),
			usage: "`duration` each connection attempt may take",
			set:   durationSetter(func(c *Client) *time.Duration { return &c.DialTimeout })},
	}}
}

// ClientFlags registers gclient's configuration flags on fs (gclient's
// global flags).
func ClientFlags(fs *pflag.FlagSet) { clientTable().register(fs) }

// LoadClient builds gclient's configuration from the flags, the
// environment and the config file, if one is named. A key the file does
// not know is an error naming its line. Errors are *Error.
func LoadClient(in Inputs) (*Client, error) {
	t := clientTable()
	l := newLoader(t, in)
	c := &Client{origins: origins{l.src}}
	path, src := l.configFile(t.keys[0])
	c.ConfigFile, l.src["config"] = path, src
	if path != "" {
		data, err := readConfig(path)
		if err != nil {
			return nil, err
		}
		if l.file, err = t.parseYAML(path, data, false); err != nil {
			return nil, err
		}
	}
	if err := l.applyAll(c, "config"); err != nil {
		return nil, err
	}
	return c, nil
}
