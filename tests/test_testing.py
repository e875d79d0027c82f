"""agent_run_id.testing: reset() puts the library back as a fresh process has it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from celery import Celery
from opentelemetry.sdk.trace import TracerProvider

import agent_run_id.celery as run_celery
import agent_run_id.logging as run_logging
from agent_run_id import RunContext, add_run_observer, current_run_id
from agent_run_id import otel as run_otel
from agent_run_id._hooks import add_incoming_fallback, fallbacks, field_providers, observers
from agent_run_id.registry import SQLiteRunRegistry, get_default, set_default
from agent_run_id.testing import reset


def test_reset_undoes_every_install_and_leaves_no_run_current(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    app = Celery("reset", broker="memory://")
    set_default(registry)
    run_logging.install()
    # No baggage: a run left open would leave OpenTelemetry's context attached in this thread.
    run_otel.install(tracer_provider=TracerProvider(), baggage=False, log_correlation=True)
    add_incoming_fallback(lambda get_header: None)
    run_celery.install(app)
    add_run_observer(lambda run, context: None)
    context = RunContext()
    context.__enter__()
    assert observers.items
    assert fallbacks.items
    assert field_providers.items
    reset()
    assert current_run_id() is None
    assert (observers.items, fallbacks.items, field_providers.items) == ((), (), ())
    assert get_default() is None
    assert logging.getLogRecordFactory() is logging.LogRecord
    assert not run_celery._installed
    with RunContext() as run:  # recorded nowhere now
        pass
    registry.flush()
    with pytest.raises(KeyError):
        registry.get(run.run_id)
    registry.close()


def test_1_a_test_that_leaves_installs_behind(tmp_path: Path) -> None:
    """With the next test: the isolated_runs fixture (autouse in conftest.py) cleans up."""
    set_default(SQLiteRunRegistry(tmp_path / "left.db"))
    run_logging.install()
    add_run_observer(lambda run, context: None)
    RunContext().__enter__()


def test_2_the_next_test_starts_in_a_fresh_library(isolated_runs: None) -> None:
    assert current_run_id() is None
    assert observers.items == ()
    assert get_default() is None
    assert logging.getLogRecordFactory() is logging.LogRecord
