# The two commands of the README: `make demo` and `make test`. Both need only Python and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# mcp 1.x in an environment of its own: agent_run_id.mcp supports both lines (tests/test_mcp1.py).
VENV_MCP1 := .venv-mcp1

.PHONY: demo test lint type pytest bench bench-count clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the project's metadata changes.
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(VENV_MCP1)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_MCP1)
	$(VENV_MCP1)/bin/pip install --quiet --upgrade pip
	$(VENV_MCP1)/bin/pip install --quiet -e . "mcp==1.27.*" pytest pytest-asyncio \
		"coverage[toml]" opentelemetry-sdk uvicorn
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

# The mcp 1.x tests first, in their environment; their coverage is combined with the main run's
# (--cov-append keeps it).
pytest: $(VENV)/.dev-installed $(VENV_MCP1)/.installed
	$(BIN)/coverage erase
	$(VENV_MCP1)/bin/coverage run -m pytest -q -p no:cacheprovider tests/test_mcp1.py
	$(BIN)/pytest --ignore=tests/test_mcp1.py --cov --cov-append --cov-branch \
		--cov-report=term-missing --cov-fail-under=95

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
	rm -rf $(VENV) $(VENV_MCP1) .coverage .coverage.* .mypy_cache .pytest_cache .ruff_cache .hypothesis
