# Celeriac: `make run` starts everything, `make test` is what CI runs (.ci/run).
SHELL := /bin/bash

VENV := .venv
BIN := $(VENV)/bin
# The interpreter that builds .venv: python3.11 when installed, else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

.PHONY: run test lint bench faults clean

# `make .venv` (re)builds the virtualenv when a requirements file (or this recipe)
# changed; the stamp file records the last successful install. Browser tests drive
# Debian's chromium (Playwright may not download its own browsers here), and
# `promtool check metrics` (Debian's prometheus) lints /metrics: both installed when we can.
$(VENV): $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip || echo "warning: could not upgrade pip; continuing" >&2
	$(BIN)/python -m pip install -r requirements-dev.txt
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }; then \
	      if [ "$${CI:-}" = true ]; then echo "error: could not install chromium" >&2; exit 1; fi; \
	      echo "warning: could not install chromium; browser tests will not run" >&2; \
	    fi; \
	  else \
	    echo "note: /usr/bin/chromium is missing; install Debian's chromium package for the browser tests" >&2; \
	  fi; \
	fi
	@if [ ! -x /usr/bin/promtool ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's prometheus for promtool (lints /metrics and the Grafana queries)"; \
	    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }; then \
	      if [ "$${CI:-}" = true ]; then echo "error: could not install prometheus (promtool)" >&2; exit 1; fi; \
	      echo "warning: could not install prometheus; the promtool tests will not run" >&2; \
	    fi; \
	  else \
	    echo "note: /usr/bin/promtool is missing; install Debian's prometheus package for the promtool tests" >&2; \
	  fi; \
	fi
	touch $@

run: $(VENV)
	$(BIN)/python scripts/run.py

# Unit and integration suites (an embedded Redis is started when none is reachable), then
# the same suites on PostgreSQL when one answers on 127.0.0.1:5432; under CI=true a
# missing PostgreSQL fails that second run instead of skipping it.
test: $(VENV)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest
	@if [ "$${CI:-}" = true ] || $(BIN)/python scripts/pg_available.py; then \
	  echo "+ CELERIAC_TEST_DB=postgresql $(BIN)/python -m pytest -p no:cacheprovider --no-cov -m \"not browser\""; \
	  CELERIAC_TEST_DB=postgresql $(BIN)/python -m pytest -p no:cacheprovider --no-cov -m "not browser"; \
	else \
	  echo "Skipping the PostgreSQL run: nothing answers on 127.0.0.1:5432"; \
	fi

# The static gates of `make test`, without the test suites.
lint: $(VENV)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)
	$(BIN)/python -m bench

# The fault suite (docs/reliability.md): minutes, not part of `make test`. Options go in
# FAULTS_ARGS, e.g. make faults FAULTS_ARGS="--only child-kills --jobs 500".
faults: $(VENV)
	$(BIN)/python -m faults $(FAULTS_ARGS)

# Also deletes var/: the SQLite database and the embedded Redis data of `make run`.
clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis htmlcov .coverage .coverage.*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
