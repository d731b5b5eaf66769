package serverd

import (
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/config"
	"github.com/gworkerd/gworkerd/internal/version"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/store"
)

// serverOptions maps the configuration to server.Options.
func serverOptions(cfg *config.Server, log logrus.FieldLogger, st store.Store, onShutdown func(graceful bool), mem memLimit, memOK bool) server.Options {
	o := server.DefaultOptions()
	o.Logger = log
	if cfg.JobHandlePrefix != "" {
		o.JobHandlePrefix = cfg.JobHandlePrefix
	}
	o.JobRetries = cfg.JobRetries
	o.WorkerWakeup = cfg.WorkerWakeup
	o.Exceptions = cfg.Exceptions
	o.AdminShutdown = cfg.AdminShutdown
	o.OnShutdown = onShutdown
	o.Limits = protocol.Limits{MaxPayload: uint32(cfg.MaxPayload)}
	o.Store = st
	o.StoreTimeout = cfg.Store.StoreTimeout
	if o.StoreTimeout == 0 {
		o.StoreTimeout = -1 // none
	}
	o.Version = version.String()
	o.VerboseName = cfg.Verbose
	o.MaxConnections = maxConnections(cfg.MaxConnections)
	o.MaxQueueMemory = maxQueueMemory(cfg.MaxQueueMemory, mem, memOK)
	log.WithFields(logrus.Fields{"max_queue_memory": o.MaxQueueMemory,
		"from": describeQueueMemory(cfg.MaxQueueMemory >= 0, mem, memOK)}).Info("queue memory bound")
	o.PacketTimeout = cfg.PacketTimeout
	if o.PacketTimeout == 0 {
		o.PacketTimeout = -1 // none
	}
	return o
}
