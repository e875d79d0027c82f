"""The OpenAI Agents SDK integration used as docs/frameworks.md shows; checked by mypy --strict.

Never run.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, RunConfig, Runner, RunResult
from agents.run_config import ToolErrorFormatterArgs
from agents.tracing import TracingProcessor, add_trace_processor, set_trace_processors

import agent_run_id.openai_agents
from agent_run_id import RunContext
from agent_run_id.openai_agents import RunIdTracingProcessor, install, run_config, uninstall


async def agent_run(agent: Agent[Any]) -> RunResult:
    agent_run_id.openai_agents.install()
    with RunContext(session_id="chat-7") as run:
        config: RunConfig = agent_run_id.openai_agents.run_config()
        assert config.trace_id == f"trace_{run.run_id.hex}"
        return await Runner.run(agent, "plan a trip", run_config=config)


def formatter(args: ToolErrorFormatterArgs[Any]) -> str | None:
    return None


def options() -> RunConfig:
    return run_config(
        send_user=True,
        workflow_name="trip",
        trace_metadata={"team": "travel"},
        tool_error_formatter=formatter,
    )


def processors(theirs: TracingProcessor) -> None:
    processor: RunIdTracingProcessor = install()
    set_trace_processors([processor, theirs])
    add_trace_processor(RunIdTracingProcessor())
    processor.enabled = False
    uninstall()
