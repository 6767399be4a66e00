# The README's two commands are `make run` and `make test`; everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/demo.toml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests drive for real: SIPp, PostgreSQL, Kamailio (the bench's config is checked),
# Dovecot (IMAP with IDLE, LMTP to deliver) for the mail bridge, Chromium and its driver for the web pages,
# iptables for the lossy-network test (the kernel here has no netem).
TEST_DEBS := sip-tester postgresql kamailio iproute2 iptables dnsmasq-base dovecot-imapd dovecot-lmtpd chromium chromium-driver
BENCH_DEBS := sip-tester kamailio iproute2 dovecot-imapd dovecot-lmtpd
# Packages that must pass `mypy --strict` (make lint).
TYPED_PACKAGES := gateway/sip gateway/routing gateway/crm_bridge/linking

.PHONY: install run test bench lint debs clean fuzz screenshots

# To build: a C compiler for the parser's fast path (gateway/sip/_speedups.c), the interpreter's
# headers and venv module when this Python lacks them (Debian's python3 ships both separately).
BUILD_DEBS := gcc libc6-dev $(shell $(PYTHON) -c 'import os, sysconfig; \
	print("" if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else "python3-dev")' \
	2>/dev/null) $(shell $(PYTHON) -c 'import ensurepip' 2>/dev/null || echo python3-venv)

$(VENV)/.installed: pyproject.toml setup.py gateway/sip/_speedups.c
	@$(MAKE) --no-print-directory debs DEBS="$(BUILD_DEBS)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; $(SUDO) chmod +x /usr/sbin/policy-rc.d; }; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

run: install
	$(VENV)/bin/gateway run --config $(CONFIG)

test: install
	@$(MAKE) --no-print-directory debs DEBS="$(TEST_DEBS)"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

bench: install
	@$(MAKE) --no-print-directory debs DEBS="$(BENCH_DEBS)"
	$(PY) -m bench

# Coverage-guided fuzzing (atheris) of the parser (C fast path against Python) and the stream framer,
# FUZZ_SECONDS each. New inputs go to .fuzz/ (scratch); a crash is written into tests/fuzz/corpus/<harness>/
# as crash-*, which `make test` then replays (fix the bug, keep the file). Exits non-zero on a crash.
FUZZ_SECONDS ?= 60
fuzz: install
	@$(PY) -c 'import atheris' 2>/dev/null || $(VENV)/bin/pip install -q -e '.[fuzz]'
	@status=0; for harness in parser stream; do \
	  mkdir -p .fuzz/$$harness; echo "fuzzing the $$harness for $(FUZZ_SECONDS) s"; \
	  $(PY) -m tests.fuzz.fuzz_$$harness .fuzz/$$harness tests/fuzz/corpus/$$harness \
	    -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=tests/fuzz/corpus/$$harness/ \
	    -print_final_stats=1 >.fuzz/$$harness.log 2>&1 || status=1; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss)' .fuzz/$$harness.log; \
	  grep -A20 'Uncaught Python exception' .fuzz/$$harness.log || true; \
	done; exit $$status

# PNGs of the main web pages (wide and 360 px) from a gateway with the demo seed, in headless Chromium.
SCREENSHOTS ?= screenshots
screenshots: install
	@$(MAKE) --no-print-directory debs DEBS="chromium chromium-driver"
	$(PY) -m tests.web.screenshots $(SCREENSHOTS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy --strict $(TYPED_PACKAGES)

clean:
	rm -rf $(VENV) .fuzz .pytest_cache .ruff_cache .mypy_cache gateway.db gateway.db-wal gateway.db-shm gateway.db-spool
