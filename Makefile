# The two commands that do everything on a fresh machine (Python 3.11, pip and make only):
#   make run    set up a virtual environment, install agentwatch, start the service
#   make test   the same set-up, then lint, type-check and the whole test suite
#   make test-fast   the inner loop: every test but the process-level ones, under a minute

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: setup run demo test test-fast lint typecheck pytest bench bench-report browser record-fixtures clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Compile the columnar decoder once (numba caches it), so the service starts fast.
	$(BIN)/agentwatch warmup
	touch $(STAMP)

run: setup
	$(BIN)/agentwatch serve $(ARGS)

demo: setup
	$(BIN)/agentwatch demo $(ARGS)

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

# Debian's chromium, for the browser tests (the dashboard, the HTML report): installed when
# missing and the machine can (root with apt-get). They fail, never skip, without it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "make browser: could not install chromium; the browser tests will fail"; \
	  else echo "make browser: no chromium and no root apt-get to install it; the browser tests will fail"; fi; }

pytest: setup browser
	$(BIN)/pytest -q $(ARGS)

test: lint typecheck pytest

# Every test not marked `process` (a real server, the CLI as a subprocess, Chromium, a killed
# process: tests/conftest.py fails an unmarked test that starts a process) or `slow` (compaction
# passes over many files), on every core, with 30 examples per property test instead of 150.
test-fast: setup
	$(BIN)/pytest -q -n auto --dist worksteal -m "not process and not slow" --hypothesis-profile fast $(ARGS)

bench: setup
	$(BIN)/python bench/ingest.py $(ARGS)

bench-report: setup
	$(BIN)/python bench/report.py $(ARGS)

# Re-record the fixtures of real instrumentation libraries (tests/fixtures/instrumentations): each
# recorder runs in its own virtual environment, .record-venvs/<recorder>, made from
# requirements/<recorder>.txt, so no library's pins touch agentwatch's. Not part of `make test`:
# the tests read the committed recordings. RECORDERS="langfuse mcp_sdk" records only those.
RECORD_DIR := tests/fixtures/instrumentations
RECORDERS  ?= $(basename $(notdir $(wildcard $(RECORD_DIR)/requirements/*.txt)))

record-fixtures:
	@set -e; for name in $(RECORDERS); do \
	  venv=.record-venvs/$$name; \
	  test -x $$venv/bin/python || $(PYTHON) -m venv $$venv; \
	  $$venv/bin/python -m pip install --quiet -r $(RECORD_DIR)/requirements/$$name.txt; \
	  echo "record-fixtures: $$name"; \
	  $$venv/bin/python $(RECORD_DIR)/$$name.py; \
	done

clean:
	rm -rf $(VENV) agentwatch-data .pytest_cache .mypy_cache .ruff_cache
