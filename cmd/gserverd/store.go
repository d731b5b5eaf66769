package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/embedded"
	"github.com/gworkerd/gworkerd/server/store/open"
)

// openStore opens the job store that -q/--queue-type names; nil means the
// in-memory queue (builtin). The embedded store locks its --data-dir, so a
// second gserverd on the same directory fails here, naming it and the pid
// of the process that has it.
//
// member is the -q postgres fleet member id (--member-id, or its
// default); "" opens the store as a non-member (gserverd queue).
func openStore(ctx context.Context, cfg *config.Server, member string, log logrus.FieldLogger) (store.Store, error) {
	if cfg.StoreTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.StoreTimeout)
		defer cancel()
	}
	oc := storeConfig(cfg, log)
	oc.MemberID = member
	st, err := open.Store(ctx, oc)
	var le *embedded.LockedError
	if errors.As(err, &le) {
		who := "another process"
		if le.PID > 0 {
			who = fmt.Sprintf("process %d", le.PID)
			if le.Comm != "" {
				who += " (" + le.Comm + ")"
			}
		}
		return nil, fmt.Errorf("job store: --data-dir %q is in use by %s; give each gserverd its own --data-dir (or -p: the default directory is per port)", cfg.DataDir, who)
	}
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("job store: --data-dir %q is in use by another gserverd (or gserverd queue): %w", cfg.DataDir, err)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("job store: not open within --store-timeout %v: %w", cfg.StoreTimeout, err)
	}
	var de *embedded.DamageError
	if errors.As(err, &de) {
		return nil, fmt.Errorf("job store: %w; to start without those jobs, run with --accept-store-damage", err)
	}
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	return st, nil
}

// storeConfig maps gserverd's parsed queue settings onto open.Config.
func storeConfig(cfg *config.Server, log logrus.FieldLogger) open.Config {
	return open.Config{
		QueueType:      cfg.QueueType,
		DataDir:        cfg.DataDir,
		Sync:           cfg.Sync,
		AcceptDamage:   cfg.AcceptStoreDamage,
		LibpqConninfo:  cfg.Postgres.Conninfo,
		LibpqTable:     cfg.Postgres.Table,
		MySQLHost:      cfg.MySQL.Host,
		MySQLPort:      cfg.MySQL.Port,
		MySQLUser:      cfg.MySQL.User,
		MySQLPassword:  cfg.MySQL.Password,
		MySQLDB:        cfg.MySQL.DB,
		MySQLTable:     cfg.MySQL.Table,
		RedisServer:    cfg.Redis.Server,
		RedisPort:      cfg.Redis.Port,
		RedisPassword:  cfg.Redis.Password,
		RedisPrefix:    cfg.Redis.Prefix,
		SQLiteDB:       cfg.SQLite.DB,
		SQLiteTable:    cfg.SQLite.Table,
		FleetHeartbeat: cfg.Fleet.Heartbeat,
		FleetLease:     cfg.Fleet.Lease,
		StoreTimeout:   cfg.StoreTimeout,
		Logger:         log,
	}
}

// memberID is the server's fleet member id: --member-id, else the host
// name and the port the server listens on (the first listener's, so
// that -p 0 gives each server its own).
func memberID(cfg *config.Server, lns []net.Listener) string {
	if cfg.Fleet.MemberID != "" {
		return cfg.Fleet.MemberID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	port := cfg.Port
	if len(lns) > 0 {
		if a, ok := lns[0].Addr().(*net.TCPAddr); ok {
			port = a.Port
		}
	}
	return config.DefaultMemberID(host, port)
}
