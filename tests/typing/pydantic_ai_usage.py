"""The Pydantic AI integration used as docs/frameworks.md shows; checked by mypy --strict.

Never run.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability

import agent_run_id.pydantic_ai
from agent_run_id import RunContext
from agent_run_id.pydantic_ai import RunIdCapability, RunKwargs, run_kwargs


async def agent_run(agent: Agent[None, str]) -> str:
    with RunContext(session_id="chat-7") as run:
        result = await agent.run("plan a trip", **agent_run_id.pydantic_ai.run_kwargs())
        assert result.run_id == run.run_id.value
        return result.output


async def keywords(agent: Agent[int, str], theirs: AbstractCapability[Any]) -> str:
    kwargs: RunKwargs = run_kwargs(conversation_id="c-1", capabilities=[theirs])
    result = await agent.run("plan", deps=1, **kwargs)
    return result.output


def on_the_agent() -> Agent[None, str]:
    return Agent("test", capabilities=[RunIdCapability()])
