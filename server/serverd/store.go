package serverd

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
	if cfg.Store.StoreTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Store.StoreTimeout)
		defer cancel()
	}
	oc := cfg.Store
	oc.MemberID, oc.Logger = member, log
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
		return nil, fmt.Errorf("job store: --data-dir %q is in use by %s; give each gserverd its own --data-dir (or -p: the default directory is per port)", cfg.Store.DataDir, who)
	}
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("job store: --data-dir %q is in use by another gserverd (or gserverd queue): %w", cfg.Store.DataDir, err)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("job store: not open within --store-timeout %v: %w", cfg.Store.StoreTimeout, err)
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

// memberID is the server's fleet member id: --member-id, else the host
// name and the port the server listens on (the first listener's, so
// that -p 0 gives each server its own).
func memberID(cfg *config.Server, lns []net.Listener) string {
	if cfg.Store.MemberID != "" {
		return cfg.Store.MemberID
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
