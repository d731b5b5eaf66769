# gworkerd: a Gearman job server, worker daemon and client in Go.
GO       ?= go
BIN      := $(CURDIR)/bin
FUZZTIME ?= 60s
FLEETCHAOS ?= 2m
# The version stamped into every binary: git describe, else 0.0.0-dev.
# Evaluated once, so that make test checks the version make build stamped.
ifeq ($(origin VERSION),undefined)
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
endif
LDFLAGS  := -X github.com/gworkerd/gworkerd/internal/version.stamp=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help build deb run test bench chaos fuzz lint

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  make %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build gserverd, gworkerd, gclient, gbench and gchaos into ./bin, stamped with VERSION (git describe)
	@mkdir -p $(BIN)
	@echo "building gserverd, gworkerd, gclient, gbench and gchaos into $(BIN) ..."
	@echo "building: the first build compiles every dependency (minutes on a small machine); later ones take seconds"
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	@echo "built: $$(cd $(BIN) && ls | tr '\n' ' ')"

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
