"""The run registry: what any registry object is given, and a registry that fails.

What a backend records and how it is looked up is tests/test_registry_backends.py, run on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from agent_run_id import RunContext, RunId
from agent_run_id._hooks import observers
from agent_run_id.registry import SQLiteRunRegistry, set_default


def test_making_a_registry_registers_nothing_process_wide(tmp_path: Path) -> None:
    """A registry records the runs given to it; making one installs no observer."""
    made = SQLiteRunRegistry(tmp_path / "c.db")
    assert observers.items == ()
    with RunContext(registry=made) as run:
        pass
    assert made.get(run.run_id).status == "ok"
    made.close()


def test_bad_registry_arguments_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="registry must be a RunRegistry"):
        RunContext(registry=object())
    with pytest.raises(TypeError, match="registry must be a RunRegistry"):
        set_default(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be a str or a path"):
        SQLiteRunRegistry(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path must name a file"):
        SQLiteRunRegistry(":memory:")
    for timeout in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds >= 0"):
            SQLiteRunRegistry(tmp_path / "x.db", timeout=timeout)
    for close_timeout in (0, -1, float("nan"), float("inf"), True, "5"):
        with pytest.raises(
            ValueError, match="close_timeout must be a finite number of seconds > 0"
        ):
            SQLiteRunRegistry(tmp_path / "x.db", close_timeout=close_timeout)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pending must be"):
        SQLiteRunRegistry(tmp_path / "x.db", max_pending=True)


def test_set_default_takes_any_registry_that_runcontext_takes() -> None:
    """One rule for what a registry is: an object with start() and finish(), as RunContext has."""

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, RunId]] = []

        def start(self, run_id: RunId, **fields: object) -> None:
            self.calls.append(("start", run_id))

        def finish(self, run_id: RunId, *, error: BaseException | None = None) -> None:
            self.calls.append(("finish", run_id))

    recorder = Recorder()
    set_default(recorder)  # type: ignore[arg-type]
    try:
        with RunContext() as run:
            pass
    finally:
        set_default(None)
    assert recorder.calls == [("start", run.run_id), ("finish", run.run_id)]


def test_records_are_hashable_and_compare_by_value(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    with RunContext(registry=registry, metadata={"k": [1, 2]}) as run:
        pass
    first, again = registry.get(run.run_id), registry.get(run.run_id)
    assert first == again
    assert {first, again} == {first}
    registry.close()


class _Failing:
    """A registry that cannot write at all."""

    def start(self, run_id: RunId, **facts: Any) -> None:
        raise OSError("disk full")

    def finish(self, run_id: RunId, error: BaseException | None = None) -> None:
        raise OSError("disk full")


def test_a_registry_that_cannot_write_never_breaks_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = _Failing()
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
        with RunContext(registry=failing) as run:  # type: ignore[arg-type]
            inner = RunContext()
            with inner:
                assert inner.run_id.parent == run.run_id
        set_default(failing)  # type: ignore[arg-type]
        with RunContext():
            pass
    reports = [r for r in caplog.records if r.name == "agent_run_id"]
    assert [r.levelno for r in reports] == [logging.WARNING] + [logging.DEBUG] * 2
    assert "run registry" in reports[0].getMessage()
