# gworkerd: a Gearman job server, worker daemon and client in Go.
GO       ?= go
BIN      ?= $(CURDIR)/bin
FUZZTIME ?= 60s
FLEETCHAOS ?= 2m
# The version stamped into every binary: git describe, else 0.0.0-dev.
# Evaluated once, so that make test checks the version make build stamped.
ifeq ($(origin VERSION),undefined)
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
endif
LDFLAGS  := -X github.com/gworkerd/gworkerd/internal/version.stamp=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help build man install deb run test bench chaos fuzz lint

# Where make install puts the files (README.md, Install). DESTDIR stages the
# whole tree under a directory (a package build, a test). The configs always
# go to /etc, where the programs look for them.
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
# The .TH source field of the man pages.
MANSOURCE   ?= gworkerd $(VERSION)

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  make %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build gserverd, gworkerd, gclient, gbench and gchaos into ./bin, stamped with VERSION (git describe)
	@mkdir -p $(BIN)
	@echo "building gserverd, gworkerd, gclient, gbench and gchaos into $(BIN) ..."
	@echo "building: the first build compiles every dependency (minutes on a small machine); later ones take seconds"
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	@$(MAKE) -s man BIN=$(BIN) VERSION=$(VERSION)
	@echo "built: $$(cd $(BIN) && ls | tr '\n' ' ')"

man: ## man pages of gserverd, gworkerd and gclient from their --help, into ./bin/man (make build does it)
	@mkdir -p $(BIN)/man
	$(GO) run ./internal/mangen -bin $(BIN)/gserverd -section 8 -summary "Gearman job server, a drop-in for gearmand" -sub queue -source "$(MANSOURCE)" -out $(BIN)/man/gserverd.8
	$(GO) run ./internal/mangen -bin $(BIN)/gworkerd -section 8 -summary "supervised Gearman worker daemon" -source "$(MANSOURCE)" -out $(BIN)/man/gworkerd.8
	$(GO) run ./internal/mangen -bin $(BIN)/gclient -section 1 -summary "submit Gearman jobs and run the job servers' admin commands" -source "$(MANSOURCE)" -out $(BIN)/man/gclient.1

# install runs no Go (sudo's PATH rarely has it): it copies what make build
# made. A config, or the logrotate file, that is already there is kept.
install: ## after make build: programs, man pages, systemd units, sysusers.d and tmpfiles.d files, configs in /etc (PREFIX=/usr/local, DESTDIR)
	@for f in gserverd gworkerd gclient man/gserverd.8 man/gworkerd.8 man/gclient.1; do \
	  [ -f "$(BIN)/$$f" ] || { echo "make install: $(BIN)/$$f is missing: run make build first" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)/etc/gserverd $(DESTDIR)/etc/gworkerd/jobs $(DESTDIR)/etc/logrotate.d
	install -m 0755 $(BIN)/gserverd $(BIN)/gworkerd $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(BIN)/gclient $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BIN)/man/gserverd.8 $(BIN)/man/gworkerd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(BIN)/man/gclient.1 $(DESTDIR)$(MANDIR)/man1/
	@for u in gserverd gworkerd; do \
	  dst=$(DESTDIR)$(UNITDIR)/$$u.service; \
	  echo "sed deploy/$$u.service >$$dst"; \
	  sed -e 's#/usr/local/sbin/#$(SBINDIR)/#g' -e 's#^\# Install: .*#\# Installed by make install; the config is /etc/'$$u'/'$$u'.yaml.#' \
	    -e '/^\# then: systemctl/d' deploy/$$u.service >"$$dst" && chmod 0644 "$$dst" || exit 1; \
	done
	install -m 0644 deploy/gworkerd.sysusers $(DESTDIR)$(SYSUSERSDIR)/gworkerd.conf
	install -m 0644 deploy/gworkerd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/gworkerd.conf
	@for c in deploy/gserverd.yaml:/etc/gserverd/gserverd.yaml deploy/gworkerd.yaml:/etc/gworkerd/gworkerd.yaml \
	  deploy/logrotate:/etc/logrotate.d/gworkerd; do \
	  src=$${c%%:*} dst=$(DESTDIR)$${c#*:}; \
	  if [ -e "$$dst" ]; then echo "kept $$dst (the new sample is $$src)"; \
	  else echo "install -m 0644 $$src $$dst"; install -m 0644 "$$src" "$$dst" || exit 1; fi; \
	done

deb: ## build bin/gworkerd.deb (nfpm): the three programs, units, configs, man pages
	@GO=$(GO) VERSION=$(VERSION) sh deploy/debian/build.sh $(BIN)

run: build ## start gserverd (embedded store) and gworkerd with the sample jobs; prints what to try
	@sh deploy/run.sh $(BIN)

test: build deb ## run the whole suite with -race (interop peers: see .ci/run)
	GWORKERD_BIN=$(BIN) GWORKERD_VERSION=$(VERSION) GWORKERD_DEB=$(BIN)/gworkerd.deb $(GO) test -race -count=1 -timeout 18m ./...

bench: build ## measure gserverd against gearmand (rates, closed- and open-loop latency, CPU and system calls per job), and gworkerd's worker hosting, in the same run (BENCHFLAGS=-quick for a smoke test)
	$(BIN)/gbench -gserverd $(BIN)/gserverd -gworkerd $(BIN)/gworkerd $(BENCHFLAGS)

chaos: build ## fault scenarios (crash, disk-full, store-stall, flood, and a fleet's cuts and kills for FLEETCHAOS) at scale, one line each, with gearmand where it applies; not in make test (CHAOSFLAGS=-quick)
	$(BIN)/gchaos -gserverd $(BIN)/gserverd $(CHAOSFLAGS)
	@echo "fleet: three gserverd on one PostgreSQL in network namespaces (root), cuts and kills at random for $(FLEETCHAOS); log in $(BIN)/fleet-chaos.log"
	@GWORKERD_BIN=$(BIN) GWORKERD_FLEET_CHAOS=$(FLEETCHAOS) $(GO) test -count=1 -timeout 30m -run TestFleetChaos -v ./interop/fleet > $(BIN)/fleet-chaos.log 2>&1; \
	  status=$$?; grep -E '^(fleet chaos|--- |FAIL|ok)|SKIP' $(BIN)/fleet-chaos.log; exit $$status

fuzz: ## run every fuzz target of the module for $(FUZZTIME) each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

lint: ## gofmt, go vet, go mod tidy and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
