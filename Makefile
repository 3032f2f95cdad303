# Tokligence Gateway. `make run` sets everything up and serves the all-in-one
# gateway; `make test` runs the whole suite; `make help` lists every target.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
IMAGE ?= tokgateway
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: help setup run start stop status check test test-fast lint unit integration e2e bench bench-instructions clean d-build d-test ui console

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## create .venv and install the gateway with the mesh drivers and dev tools

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing tokgateway and its dependencies into $(VENV) (first time: a minute or two) ..."
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install --progress-bar on -e '.[dev,mesh]'
	@touch $(STAMP)

run: setup console ## serve the all-in-one gateway in the foreground (the console at /ui)
	$(VENV)/bin/gateway run

start: setup ## start the gateway in the background (pid, port and log in the data dir)
	$(VENV)/bin/gateway start

stop: ## stop the background gateway
	@if [ -x $(VENV)/bin/gateway ]; then $(VENV)/bin/gateway stop; else echo "not installed"; fi

status: setup ## is the gateway running, and where
	$(VENV)/bin/gateway status

check: setup ## smoke test: the configured provider answers through the gateway
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/smoke.sh

lint: setup ## ruff (lint + format) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHON=$(CURDIR)/$(PY) scripts/typecheck.sh

test: lint ## lint, types and every test (what CI runs)
	$(PY) -m pytest -q

test-fast: lint ## lint, types and every test but the local-model ones (no llama.cpp builds)
	$(PY) -m pytest -q --deselect tests/integration/test_local_model.py

unit: setup ## the unit tests only
	$(PY) -m pytest -q tests/unit

e2e: setup ## the end-to-end tests (the gateway as a process, official SDKs)
	$(PY) -m pytest -q tests/e2e

integration: setup ## the integration tests (real PostgreSQL, NATS, Redis)
	$(PY) -m pytest -q tests/integration

bench: setup ## the benchmark harness in bench/ (see bench/README.md; ~15 min)
	$(PY) bench/run.py

bench-instructions: setup ## instructions per request under callgrind, plain and limited key (~2 min; BASELINE_BIN=other/.venv/bin adds that gateway)
	$(PY) bench/instructions.py $(if $(BASELINE_BIN),--baseline-bin $(BASELINE_BIN))

d-build: ## build the image the compose file and deploy/k8s use (tokgateway:<version>); it builds the console itself
	docker build -t $(IMAGE):$(VERSION) .

d-test: ## the unit and end-to-end suite inside the project's Docker image
	docker build --target test -t $(IMAGE):$(VERSION)-test .
	docker run --rm $(IMAGE):$(VERSION)-test

# The web console: npm ci when the lock file changed, the Vite build when a source changed.
FE_SOURCES := $(shell find fe/src -type f 2>/dev/null) fe/index.html fe/vite.config.ts fe/tsconfig.json fe/package.json

ui: fe/dist/.built ## build the web console (fe/dist/web and the phone layout fe/dist/h5), served at /ui
	@:

fe/node_modules/.package-lock.json: fe/package-lock.json
	@echo "installing the console's npm packages (fe/node_modules) ..."
	cd fe && npm ci --no-audit --no-fund
	@touch $@

fe/dist/.built: fe/node_modules/.package-lock.json $(FE_SOURCES)
	@echo "console missing or stale: building fe/dist/web and fe/dist/h5 ..."
	cd fe && npm run -s build
	@touch $@

console: ## build the console when it is missing or stale (what `make run` does), or say why not
	@if command -v npm >/dev/null; then $(MAKE) -s --no-print-directory ui && echo "console: http://$${GATEWAY_HOST:-127.0.0.1}:$${GATEWAY_PORT:-8081}/ui"; \
	else echo "console: npm not found, so no /ui (install Node.js and npm, then make ui)"; fi

clean: ## remove build and tool caches
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
