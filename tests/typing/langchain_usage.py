"""The LangChain integration used exactly as docs/frameworks.md shows; checked by mypy --strict.

Never run.
"""

from __future__ import annotations

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

import agent_run_id.langchain
from agent_run_id import RunContext, RunId
from agent_run_id.langchain import RunIdCallbackHandler, config
from agent_run_id.registry import SQLiteRunRegistry


def chain_run(chain: Runnable[str, str], registry: SQLiteRunRegistry) -> str:
    with RunContext(RunId.generate(version=7), registry=registry, session_id="chat-7") as run:
        made: RunnableConfig = agent_run_id.langchain.config()
        assert made.get("run_id") == run.run_id.uuid
        return chain.invoke("weather in Oslo", made)


def options(handler: BaseCallbackHandler) -> RunnableConfig:
    return config(
        send_user=True,
        tags=["trip"],
        metadata={"team": "travel"},
        configurable={"thread_id": "t-1"},
        callbacks=[handler, RunIdCallbackHandler()],
        recursion_limit=10,
    )


def lambda_chain() -> Runnable[str, str]:
    return RunnableLambda(lambda question: question.upper())
