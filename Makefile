# The two commands of the README: `make demo` and `make test`. Both need only Python and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: demo test lint type pytest bench bench-count clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the project's metadata changes.
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) examples/demo/run.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	$(BIN)/coverage erase
	$(BIN)/pytest --cov --cov-branch --cov-report=term-missing --cov-fail-under=95

test: lint type pytest

bench: $(VENV)/.dev-installed
	$(PY) -m benchmarks

# Costs too small for a wall clock on a noisy machine, in instructions (valgrind's callgrind):
# the ASGI middleware per request, a stamped log record, RunIdTransport per request.
bench-count: $(VENV)/.dev-installed
	$(PY) -m benchmarks.count_asgi
	$(PY) -m benchmarks.count_logging
	$(PY) -m benchmarks.count_httpx
	$(PY) -m benchmarks.count_core

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .pytest_cache .ruff_cache .hypothesis
