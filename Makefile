# Tokligence Gateway. `make run` sets everything up and serves the all-in-one
# gateway; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run start stop status check test lint unit integration e2e bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing tokgateway and its dependencies into $(VENV) ..."
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(VENV)/bin/gateway run

start: setup
	$(VENV)/bin/gateway start

stop:
	@if [ -x $(VENV)/bin/gateway ]; then $(VENV)/bin/gateway stop; else echo "not installed"; fi

status: setup
	$(VENV)/bin/gateway status

check: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/smoke.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHON=$(CURDIR)/$(PY) scripts/typecheck.sh

test: lint
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q tests/unit

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
