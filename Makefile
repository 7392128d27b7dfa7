# Build and test entry points. `make test` is what CI runs (.ci/run).
#
#   make test      install what the tests need, then go vet + go test -race
#                  in every module of MODULES
#   make interop   only the interop suite (official phoenix.js clients under Node)
#   make deps      only the install step (node/npm, then npm ci in testdata/interop)
#
# Other targets (chat, fuzz, ...) go below the marked line.

SHELL       := /bin/bash
GO          ?= go
NPM         ?= npm
INTEROP_DIR := testdata/interop
# npm ci writes node_modules/.package-lock.json: older than package-lock.json
# (or missing) means node_modules must be (re)installed.
NPM_STAMP   := $(INTEROP_DIR)/node_modules/.package-lock.json
# The interop subtests mostly wait on node processes; `make interop` runs
# more of them at once than go test's default (GOMAXPROCS).
INTEROP_PARALLEL ?= 4
# The modules make test vets and tests: the library (the root, which requires
# only github.com/coder/websocket) and the nested modules that bring NATS,
# Redis, OpenTelemetry and the Prometheus client. bench/ is a module too, but
# only vetted: its harness is never part of make test.
MODULES     := . pubsub/natspubsub pubsub/redispubsub telemetry/phxotel telemetry/phxprometheus examples/chat
VET_MODULES := $(MODULES) bench

.PHONY: all test interop deps node vet fmt

export NODE_VERSION_CHECK := const [a, b] = process.versions.node.split(".").map(Number); \
	if (a < 20 || (a === 20 && b < 10)) { \
		console.error("make: node " + process.version + " is too old for the interop suite (it needs the built-in WebSocket of Node >= 20.10)"); \
		process.exit(1) }

all: test

# in-modules runs a command in each module of a list, all of them even when
# one fails, and then fails naming every module where it failed.
#   $(call in-modules,MODULE LIST,COMMAND)
define in-modules
	@failed=""; for m in $(1); do \
		echo "== ($$m) $(2)"; \
		( cd $$m && $(2) ) || failed="$$failed $$m"; \
	done; \
	if [ -n "$$failed" ]; then echo "make: FAILED: $(2) in:$$failed" >&2; exit 1; fi
endef

test: deps vet
	$(call in-modules,$(MODULES),$(GO) test -race -count=1 ./...)

interop: deps
	$(GO) test -race -count=1 -parallel $(INTEROP_PARALLEL) -run '^TestInterop' .

vet: fmt
	$(call in-modules,$(VET_MODULES),$(GO) vet ./...)

# fmt fails when a Go file anywhere in the repository is not gofmt'ed.
fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$out" ]; then echo "make: FAILED: not gofmt'ed:" >&2; echo "$$out" >&2; exit 1; fi

deps: node $(NPM_STAMP)

# node and npm: left alone when present; otherwise Debian's packages. The
# interop suite needs Node's built-in WebSocket (Node >= 20.10, run with
# --experimental-websocket on Node 20): an older node fails here, loudly.
node:
	@if ! command -v node >/dev/null 2>&1 || ! command -v $(NPM) >/dev/null 2>&1; then \
		echo "make: node or npm missing: installing nodejs and npm with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; } \
			|| { echo "make: FAILED to install nodejs and npm with apt-get" >&2; exit 1; }; \
	fi
	@command -v node >/dev/null && command -v $(NPM) >/dev/null \
		|| { echo "make: node/npm still not on PATH" >&2; exit 1; }
	@node -e "$$NODE_VERSION_CHECK"

$(NPM_STAMP): $(INTEROP_DIR)/package-lock.json $(INTEROP_DIR)/package.json | node
	cd $(INTEROP_DIR) && $(NPM) ci --no-audit --no-fund
	@touch $@

# ---- targets added by others below this line -------------------------------

# ---- chat example (examples/chat) ----
CHAT_DIR       := examples/chat
CHAT_NPM_STAMP := $(CHAT_DIR)/node_modules/.package-lock.json
CHROMIUM       ?= /usr/bin/chromium

.PHONY: chat chromium

# make chat: install the page's phoenix client, then run the example (a
# module of its own, so it runs from its directory: a relative -assets is
# relative to examples/chat). Flags go in ARGS, e.g. make chat ARGS="-addr 127.0.0.1:4001".
chat: $(CHAT_NPM_STAMP)
	cd $(CHAT_DIR) && $(GO) run . $(ARGS)

$(CHAT_NPM_STAMP): $(CHAT_DIR)/package-lock.json $(CHAT_DIR)/package.json | node
	cd $(CHAT_DIR) && $(NPM) ci --no-audit --no-fund
	@touch $@

# Debian's chromium, for examples/chat's TestBrowser.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "make: $(CHROMIUM) missing: installing chromium with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
			|| { echo "make: FAILED to install chromium with apt-get" >&2; exit 1; }; \
	fi

# make deps / make test also install the chat example's npm packages and chromium.
deps: $(CHAT_NPM_STAMP) chromium

# ---- fuzzing ----
# make fuzz runs every native fuzz target for FUZZTIME each (seeds always
# run as part of make test). Crashers land in <package>/testdata/fuzz/<Target>/:
# commit them, they become regression tests.
FUZZTIME ?= 30s
FUZZ_ROOT := FuzzTopicRouter FuzzOriginCheck FuzzSession FuzzLongPollBody FuzzPresenceDiff FuzzDecodeMeta FuzzLPFwdMsg
FUZZ_WIRE := FuzzDecodeV2Text FuzzDecodeV2Binary FuzzDecodeV1JSON FuzzAuthTokenSubprotocol
FUZZ_TOKEN := FuzzVerifyToken FuzzVerifyPhoenixToken

.PHONY: fuzz
fuzz:
	@set -e; for f in $(FUZZ_ROOT); do \
		echo "== $$f ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) . ; \
	done
	@set -e; for f in $(FUZZ_WIRE); do \
		echo "== $$f ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./internal/wire ; \
	done
	@set -e; for f in $(FUZZ_TOKEN); do \
		echo "== $$f ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./token ; \
	done
	@echo "== FuzzETFDecode ($(FUZZTIME))"; $(GO) test -run '^$$' -fuzz '^FuzzETFDecode$$' -fuzztime $(FUZZTIME) ./internal/etf

# ---- PubSub adapters (pubsub/natspubsub, pubsub/redispubsub) ----
# Each adapter is a module of its own; their shared relay and test cluster
# (pubsub/internal) stay in the root module.
PUBSUB_MODULES := pubsub/natspubsub pubsub/redispubsub
# The NATS tests embed nats-server (nothing to install). The Redis tests
# start Debian's redis-server on a random loopback port (REDIS_SERVER in the
# environment overrides the binary); without it they fail under CI=true and
# skip otherwise.
REDIS_SERVER ?= redis-server

.PHONY: redis pubsub bench-pubsub fuzz-envelope

redis:
	@if ! command -v $(REDIS_SERVER) >/dev/null 2>&1; then \
		echo "make: $(REDIS_SERVER) missing: installing redis-server with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; } \
			|| { echo "make: FAILED to install redis-server with apt-get" >&2; exit 1; }; \
	fi
	@command -v $(REDIS_SERVER) >/dev/null 2>&1 \
		|| { echo "make: $(REDIS_SERVER) still not on PATH" >&2; exit 1; }

# make deps / make test also install redis-server.
deps: redis

# make pubsub: only the adapters' tests and the presence replication test.
pubsub: redis
	$(call in-modules,$(PUBSUB_MODULES),$(GO) test -race -count=1 ./...)
	$(GO) test -race -count=1 ./pubsub/...
	$(GO) test -race -count=1 -run '^TestPresenceReplicat' .

# make bench-pubsub: the cross-node fan-out figures of BENCHMARKS.md.
bench-pubsub: redis
	$(call in-modules,$(PUBSUB_MODULES),$(GO) test -run '^$$' -bench CrossNodeFanout -benchtime 20000x .)

fuzz-envelope:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./pubsub/internal/relay

# ---- benchmarks: bench/ is its own module, never part of go test ./... ----
# CENTRIFUGE_DRIVER (a driver binary, see bench/README.md) adds the centrifuge column.
BENCH_ARGS ?= -idle 2000 -fanout 1000 -rate 2,20 -messages 40 -quiet
.PHONY: bench bench-smoke
bench:
	cd bench && $(GO) run . $(BENCH_ARGS)
bench-smoke:
	cd bench && $(GO) run . -targets chat,phxmin,floor -idle 200 -fanout 200 -rate 50 -messages 20 -settle 500ms -drain 5s -quiet

# ---- Prometheus collectors (telemetry/phxprometheus) ----
# The collectors are a module of their own (they bring client_golang).
# examples/chat's TestPrometheusScrape runs Debian's prometheus server
# (PROMETHEUS in the environment overrides the binary) scraping the chat
# example; without it the test fails under CI=true and skips otherwise.
PROMETHEUS ?= prometheus

.PHONY: prometheus

prometheus:
	@if ! command -v $(PROMETHEUS) >/dev/null 2>&1; then \
		echo "make: $(PROMETHEUS) missing: installing prometheus with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; } \
			|| { echo "make: FAILED to install prometheus with apt-get" >&2; exit 1; }; \
	fi
	@command -v $(PROMETHEUS) >/dev/null 2>&1 \
		|| { echo "make: $(PROMETHEUS) still not on PATH" >&2; exit 1; }

# make deps / make test also install prometheus.
deps: prometheus
