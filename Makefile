# logrelay: build, package, install and test the Docker logging plugin.
# Targets (see README.md): deps build plugin-dir install push demo test e2e bench clean

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

SWIFT ?= swift
PYTHON ?= python3
SWIFT_RELEASE_FLAGS ?= -c release --static-swift-stdlib
RELEASE_BIN := $(CURDIR)/.build/release/logrelay
# The binary that plugin-dir packages and the integration tests run (Tests/integration reads
# LOGRELAY_BIN too). Set it to use another binary without building, e.g.
# `make plugin-dir LOGRELAY_BIN=/tmp/x`.
LOGRELAY_BIN ?= $(RELEASE_BIN)
override LOGRELAY_BIN := $(abspath $(LOGRELAY_BIN))
export LOGRELAY_BIN
# "build" when LOGRELAY_BIN is the release build, else nothing
NEEDS_BUILD = $(if $(filter $(RELEASE_BIN),$(LOGRELAY_BIN)),build)
PLUGIN_DIR ?= build/plugin
NATS_ALIAS ?= nats
# auto: the name that works on the engine's version (plugin/install.sh prints its choice):
# logentries-relay on Docker <= 24, logentries on 25+ (--log-driver=logentries:latest on 25-27)
LOGENTRIES_ALIAS ?= auto
# make push PLUGIN_REF=REGISTRY/NAME:TAG
PLUGIN_REF ?=
# make e2e: the engines of the matrix, one after another (Tests/support/e2e-matrix.sh)
E2E_ENGINES ?= 20.10 26 28
PYTEST_ARGS ?= -q -rs

APT_PACKAGES ?= libssl-dev pkg-config ca-certificates nats-server docker.io containerd runc \
                iptables tini busybox-static python3-pip docker-registry prometheus golang-go
# Debian suites whose docker.io / containerd / nats-server `make deps` extracts under
# build/engines/SUITE (Tests/support/engines.sh; never installed system-wide)
ENGINE_SUITES ?= trixie sid
PIP_PACKAGES ?= nats-py pytest nkeys
# import names checked before pip is asked for anything
PIP_IMPORTS ?= nats pytest nkeys

export DEBIAN_FRONTEND := noninteractive

.PHONY: all deps build plugin-dir install push demo test tsan e2e bench clean fuzz

all: build

# Idempotent: apt only when a package is missing (apt-get update then, once), pip only when
# an import fails. Services are not started by the packages (policy-rc.d), the tests start
# their own engine and servers.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  own_policy=0; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; \
	  fi; \
	  rc=0; \
	  { apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; } || rc=$$?; \
	  [ $$own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; \
	  exit $$rc; \
	else \
	  echo "deps: system packages present"; \
	fi
	@if $(PYTHON) -c 'import $(subst $() ,$(comma),$(PIP_IMPORTS))' 2>/dev/null; then \
	  echo "deps: python packages present"; \
	else \
	  echo "deps: pip install $(PIP_PACKAGES)"; \
	  $(PYTHON) -m pip install -q $(PIP_PACKAGES) 2>/dev/null || \
	  $(PYTHON) -m pip install -q --break-system-packages $(PIP_PACKAGES); \
	fi
	Tests/support/engines.sh fetch $(ENGINE_SUITES)

comma := ,

build:
	$(SWIFT) build $(SWIFT_RELEASE_FLAGS)

# build/plugin: config.json + rootfs/ (binary, its shared libraries and loader, CA bundle).
plugin-dir: $(NEEDS_BUILD)
	plugin/build-rootfs.sh $(LOGRELAY_BIN) $(PLUGIN_DIR)/rootfs
	cp config.json $(PLUGIN_DIR)/config.json

# Into the engine the docker client reaches (DOCKER_HOST honoured). Re-runnable.
install: plugin-dir
	plugin/install.sh $(PLUGIN_DIR) $(NATS_ALIAS) DRIVER=nats
	plugin/install.sh $(PLUGIN_DIR) $(LOGENTRIES_ALIAS) DRIVER=logentries

# docker plugin create + push of PLUGIN_REF (a tag, e.g. 127.0.0.1:5000/logrelay:v1) from the
# engine the docker client reaches; then `docker plugin install --alias ... PLUGIN_REF`.
push: plugin-dir
	@[ -n "$(PLUGIN_REF)" ] || { echo "usage: make push PLUGIN_REF=REGISTRY/NAME:TAG" >&2; exit 2; }
	plugin/push.sh $(PLUGIN_DIR) $(PLUGIN_REF)

demo: deps plugin-dir
	NATS_ALIAS=$(NATS_ALIAS) LOGENTRIES_ALIAS=$(LOGENTRIES_ALIAS) PLUGIN_DIR=$(PLUGIN_DIR) plugin/demo.sh

# Everything that needs no Docker engine: unit tests, then the integration tests against the
# release binary (real nats-server, local TLS endpoints).
test:
	$(SWIFT) build --build-tests -Xswiftc -warnings-as-errors
	$(SWIFT) test --skip-build
	Tests/regex-oracle/check.sh
	$(if $(NEEDS_BUILD),$(SWIFT) build $(SWIFT_RELEASE_FLAGS))
	$(PYTHON) -m pytest $(PYTEST_ARGS) Tests/integration
	$(MAKE) --no-print-directory tsan

# ThreadSanitizer (part of make test): the unit tests and the integration files below, run
# against a TSAN build of the plugin (-DTSAN tells our Mutex to annotate itself); any report
# fails the target, with the reports printed.
TSAN_TESTS ?= Tests/integration/test_delivery.py Tests/integration/test_sharing.py \
              Tests/integration/test_lifecycle.py Tests/integration/test_logentries.py \
              Tests/integration/test_failover.py
TSAN_DIR := $(CURDIR)/build/tsan
tsan:
	$(SWIFT) build --build-tests --sanitize=thread -Xswiftc -DTSAN --scratch-path .build-tsan
	rm -rf $(TSAN_DIR) && mkdir -p $(TSAN_DIR)
	TSAN_OPTIONS="log_path=$(TSAN_DIR)/report" $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="log_path=$(TSAN_DIR)/report" LOGRELAY_BIN=$(CURDIR)/.build-tsan/debug/logrelay \
	  $(PYTHON) -m pytest $(PYTEST_ARGS) $(TSAN_TESTS)
	@if ls $(TSAN_DIR)/report* >/dev/null 2>&1; then cat $(TSAN_DIR)/report*; \
	  echo "tsan: ThreadSanitizer reported $$(cat $(TSAN_DIR)/report* | grep -c '^WARNING: ThreadSanitizer') race(s)"; exit 1; \
	else echo "tsan: no ThreadSanitizer report"; fi

# libFuzzer targets (Tests/Fuzz/run.sh lists them: the frame decoder, HTTP request and response
# parsers, NATS server lines, tag templates, regex, options, StartLogging bodies, the event
# encoder, the Logentries wire format, NKeys), FUZZ_SECONDS each (11 × 15 s ≈ 3 minutes plus
# the builds), built into build/fuzz/; fails on any crash and prints the input.
FUZZ_SECONDS ?= 15
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) Tests/Fuzz/run.sh

# The real-Docker suite on each engine of E2E_ENGINES (default 20.10 26 28: Debian 12's
# docker.io and the trixie / sid engines that make deps extracts), one private dockerd at a
# time; per-engine counts at the end. E2E_ENGINES=external uses the reachable engine instead.
e2e: plugin-dir
	E2E_ENGINES="$(E2E_ENGINES)" PLUGIN_DIR=$(abspath $(PLUGIN_DIR)) PYTHON=$(PYTHON) \
	  Tests/support/e2e-matrix.sh $(PYTEST_ARGS)

# The benchmark report (bench/README.md): the release binary (or LOGRELAY_BIN) against a real
# nats-server and a local TLS endpoint, next to the machine's own limits measured in the same
# run. Informational, never a test. BENCH_* variables scale and filter it (bench/README.md).
bench: $(NEEDS_BUILD)
	BENCH_INVOKED_AS="make bench" $(PYTHON) bench/bench.py

clean:
	rm -rf build
	$(SWIFT) package clean
