"""The API used exactly as the README shows it; checked by mypy --strict, also run by pytest."""

from __future__ import annotations

import logging
import subprocess
import sys

import structlog

import agent_run_id.logging
from agent_run_id import (
    RunContext,
    RunId,
    current_run_id,
    environ,
    headers,
    in_current_run,
    new_run,
)
from agent_run_id.structlog import add_run_id

logger = logging.getLogger(__name__)


def quick_start() -> str:
    agent_run_id.logging.install()
    run_id = RunId.generate()
    with RunContext(run_id=run_id):
        logger.info("agent_start")
        extra_headers: dict[str, str] = headers()
        assert extra_headers["X-Run-Id"] == run_id.value
        current: RunId | None = current_run_id()
        assert current is run_id
    agent_run_id.logging.uninstall()
    return run_id.short()


@new_run
def tool_step(query: str) -> str:
    return f"{query}:{current_run_id()}"


@new_run(user_id="u-1", task="plan")
async def agent_step(query: str) -> int:
    return len(query)


def child_process() -> None:
    with RunContext():
        subprocess.run([sys.executable, "-c", "pass"], env=environ(), check=True)


def lineage() -> RunId:
    root = RunId.generate()
    child: RunId = root.child()
    assert child.parent == root
    parsed: RunId | None = RunId.from_env({})
    assert parsed is None
    return child.root


def structlog_setup() -> None:
    structlog.configure(processors=[add_run_id, structlog.processors.JSONRenderer()])


def executor_call() -> str | None:
    wrapped = in_current_run(lambda: str(current_run_id()))
    return wrapped()
