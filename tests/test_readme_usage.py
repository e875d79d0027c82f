"""Run the typed README usage module, so what mypy checks also works."""

from __future__ import annotations

import asyncio

import structlog

from agent_run_id import RunId, current_run_id
from tests.typing import readme_usage


def test_readme_usage_runs() -> None:
    assert len(readme_usage.quick_start()) == 8
    assert readme_usage.tool_step("q").startswith("q:")
    assert asyncio.run(readme_usage.agent_step("four")) == 4
    readme_usage.child_process()
    assert isinstance(readme_usage.lineage(), RunId)
    readme_usage.structlog_setup()
    structlog.reset_defaults()
    assert readme_usage.executor_call() == "None"
    assert current_run_id() is None
