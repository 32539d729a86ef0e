# capygen — the two commands a newcomer needs are `make demo` and `make test`.
# Each target installs what it needs (Debian packages via apt-get, Go modules).

SHELL      := /bin/bash
GO         ?= go
SPEC       ?= spec/capybara.yaml
OUT        ?= generated
# capygen is the generator (generate, diff, plan, vet); capyrun runs what it
# generates (testbed, serve, switch, migrate, demo).
CAPYGEN    := $(GO) run ./cmd/capygen
# Debian packages the tests and the testbed use: namespaces and veths (iproute2),
# loss injection (nftables), real peers (curl, ping), load (wrk), captures (tcpdump),
# veth offloads off (ethtool), nc for the echo service's half-close test (netcat-openbsd),
# tshark for the dissector, ab (apache2-utils) and nmap for the hostile-client tests.
APT_PKGS   := iproute2 nftables iptables curl iputils-ping wrk tcpdump ethtool netcat-openbsd tshark apache2-utils nmap
TEST_FLAGS ?= -count=1 -timeout 14m

.PHONY: all deps generate diff vet golden test bench soak demo fmt clean

all: test

# deps installs missing Debian packages (as root, or through sudo) and the Go modules.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(GO) mod download

generate:
	$(CAPYGEN) generate -spec $(SPEC) -out $(OUT)

diff:
	$(CAPYGEN) diff -spec $(SPEC) -out $(OUT)

vet:
	$(CAPYGEN) vet -spec $(SPEC)

# golden rewrites the pipeline trace that pins the model's behaviour (after you change
# the spec on purpose); review its diff before committing. generated/ itself is the
# golden copy of the emitters' output: make generate refreshes it.
golden:
	$(GO) test -count=1 ./generated/pipeline -run TraceGolden -update

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# test: gofmt and go vet clean, no drift between the spec and generated/, then every
# test, the fuzz targets' seed corpora and the netns tests (as root) included. The
# testbed's netns tests run after the rest, not beside them: they time real
# transfers and migrations, and two cores shared with the simulator's tests made
# them slow enough to change what they measure.
test: deps
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt would change: $$bad"; exit 1; fi
	$(GO) vet ./...
	$(CAPYGEN) diff -spec $(SPEC) -out $(OUT)
	$(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -v /testbed)
	$(GO) test $(TEST_FLAGS) ./testbed/...

# bench: codec encode/decode against gopacket's TCP decode, the TCP state machine's
# per-segment cost, migration host overhead (10,000 idle and 1,000 with 128 KiB queued,
# in the simulator on the real clock), and (as root) HTTP on our stack against the
# kernel's, the switch against a plain veth, migrations on the testbed, and the paper's
# Figures 4 and 5 (host overhead, bypass against kernel TCP_REPAIR, through one switch), as tables.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./generated/... | $(GO) run ./internal/benchtable -baseline BenchmarkGopacketTCPDecode
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $$($(GO) list ./runtime/... | grep -v /runtime/migrate) | $(GO) run ./internal/benchtable
	$(GO) test -run '^$$' -bench 'Migrate/idle' -benchtime 10000x -count=1 ./runtime/migrate | $(GO) run ./internal/benchtable
	$(GO) test -run '^$$' -bench 'Migrate/queued' -benchtime 1000x -count=1 ./runtime/migrate | $(GO) run ./internal/benchtable
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 45m ./testbed/... | $(GO) run ./internal/benchtable

# soak: the seeded migration simulation until 100,000 migrations moved a live
# connection under 5% loss, 2% duplication and 5% reordering on every link
# (about 10 minutes); a failing seed prints the command that replays it.
soak: deps
	set -o pipefail; $(GO) test -count=1 -timeout 80m -run 'TestMigrationsUnderFaults' ./runtime/sim -soak 100000 -v | grep -E -- '--- FAIL|seed [0-9]+:|replay|moved a connection|^(ok|FAIL)'

# demo: regenerate for the default spec and two other switch budgets and print their
# plans, run net/http on our userspace stack in the netns testbed and fetch from it
# with the Linux kernel's curl, download 256 MiB through the software switch
# while the connection hops between three servers, then run a short hot-server
# skew with and without migration, printing the p99 ratio and writing the plots
# to results/demo-skew. It is capyrun's (cmd/capyrun):
# the runtime commands live apart from the generator, capygen, so that generating
# code never builds AF_XDP, eBPF or the testbed.
demo: deps
	$(GO) build -o bin/capyrun ./cmd/capyrun
	./bin/capyrun demo

clean:
	rm -rf bin
