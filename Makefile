# The README's two commands are `make demo` and `make test`; both install what is
# missing first (`setup`), so a fresh clone needs nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
ANVIL_BIN := $(shell $(PYTHON) -c 'import platform as p; s={"Linux":"linux","Darwin":"darwin"}.get(p.system(),"linux"); m={"x86_64":"amd64","arm64":"arm64","aarch64":"arm64"}.get(p.machine(),"amd64"); print(f"node_modules/@foundry-rs/anvil-{s}-{m}/bin")')
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/$(ANVIL_BIN):$(PATH)
# Hypothesis budgets (tests/budgets.py): `dev` locally, `ci` under CI=true, `deep` for
# `make test-deep`.
export HYPOTHESIS_PROFILE ?= $(if $(CI),ci,dev)
PYTEST := $(BIN)/python -m pytest --durations=25

.PHONY: help setup demo app test test-deep test-contracts test-integration bench lint lock clean

help:
	@echo "make demo    install what is missing, start a local anvil, run the SPV story"
	@echo "make app     the demo's world on a local chain, the oracle and the wallet app on 127.0.0.1"
	@echo "make test    install what is missing, run every test"
	@echo "make test-deep  every test with the deep hypothesis budgets (2,000+ examples a machine)"
	@echo "make bench   gas and timing benchmark -> build/bench.json"
	@echo "make lint    ruff"

CHROMIUM := /usr/bin/chromium
setup: $(VENV)/.installed node_modules/.installed $(CHROMIUM)

# The browser tests (tests/browser) drive Debian's chromium through playwright's Python
# package; never `playwright install` (it downloads a browser build from a CDN).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "The browser tests need Debian's chromium at $@: install it as root with" \
	  "'apt-get install --no-install-recommends chromium' and run make again." >&2; exit 1; fi; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# `npm install --no-save` installs exactly what package-lock.json pins. Not `npm ci`:
# the registry reachable here serves only the linux-amd64 build of anvil, so the lock
# records only that platform package and `npm ci` rejects it as out of sync.
node_modules/.installed: package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/python -m gpushares.demo

# The wallet app (app/, docs/app.md) over a local chain in the demo's state, with the
# oracle quorum running; prints the URL and the test accounts to import. Ctrl-C stops all.
APP_PORT ?= 8000
app: setup
	$(BIN)/python -m app --port $(APP_PORT)

# Two workers (CI has 2 cores). Each integration module (its own anvil) is one xdist
# group; they and the in-process titanoboa tests spread over both workers, after one
# `ape compile` under a lock (tests/conftest.py).
test: setup
	$(PYTEST) -n 2 --dist loadgroup

# Hours, not minutes: every stateful machine runs at least 2,000 examples. CI need not
# run it; run it before a release or after touching a contract's accounting.
test-deep: setup
	HYPOTHESIS_PROFILE=deep $(PYTEST) -n $(shell nproc) --dist loadgroup

test-contracts: setup
	$(PYTEST) tests/contracts

test-integration: setup
	$(PYTEST) tests/integration

bench: setup
	$(BIN)/python -m bench.run

lint: setup
	$(BIN)/ruff check .

# Re-resolve requirements.lock from pyproject.toml (needs the package index).
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '1,3p' requirements.lock; build/lock-venv/bin/pip freeze --exclude-editable | grep -v '^gpu-shares'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf build/lock-venv

clean:
	rm -rf .build build .pytest_cache .hypothesis
