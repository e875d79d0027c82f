"""A LangGraph agent under our run ids: one id in the logs, the registry and LangChain's tracing.

Three users ask a LangGraph agent at once. The agent's model (LangChain's fake chat model, so
this runs offline) calls two tools in parallel, ``search`` and ``hotels``; the hotel API times
out for Reykjavik. Each agent run is a run of ours (a UUIDv7, as LangSmith wants), handed to
LangGraph with ``agent_run_id.langchain.config()``: LangChain's root run has the run's id, each
model, node and tool call is a child run in the registry, and each tool's log lines carry the
tool's own run. LangChain's in-memory tracer stands in for LangSmith: the on-call engineer
holding the failing tool's LangSmith id finds it, its run and its log lines.

Run: ``python examples/langgraph_agent.py [FOLDER]`` (a temporary folder by default). It needs
LangGraph beside the ``langchain`` extra (which installs ``langchain-core`` alone):
``pip install langgraph``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

import agent_run_id.langchain
import agent_run_id.logging
from agent_run_id import RunContext, RunId
from agent_run_id.registry import SQLiteRunRegistry

logger = logging.getLogger("agent")


class JsonLines(logging.Formatter):
    """One JSON object per record, with the run fields that agent_run_id.logging stamps."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "message": record.getMessage(),
                "run_id": getattr(record, "run_id", None),
                "parent_run_id": getattr(record, "parent_run_id", None),
                "root_run_id": getattr(record, "root_run_id", None),
                "session_id": getattr(record, "session_id", None),
            }
        )


@tool
async def search(query: str) -> str:
    """Search the web for ``query``."""
    logger.info("searching the web for %r", query)
    return f"3 results for {query}"


@tool
async def hotels(city: str) -> str:
    """Find hotels in ``city``."""
    logger.info("asking the hotel API about %s", city)
    if city == "Reykjavik":
        logger.error("hotel API timed out")
        raise TimeoutError(f"hotel API timed out for {city}")
    return f"2 hotels in {city}"


def build_agent(city: str) -> Any:
    """Return the agent: a model that calls both tools for ``city``, then answers."""
    calls = [
        {"name": "search", "args": {"query": f"weather in {city}"}, "id": "call-1"},
        {"name": "hotels", "args": {"city": city}, "id": "call-2"},
    ]
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content="", tool_calls=calls), AIMessage(f"Plan for {city}")])
    )

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    # A failing tool becomes an error message for the model, as agents do.
    graph.add_node("tools", ToolNode([search, hotels], handle_tool_errors=True))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


async def agent(user: str, city: str, registry: SQLiteRunRegistry, tracer: Any) -> RunId:
    run_id = RunId.generate(version=7)  # LangSmith wants UUIDv7 for the ids it is given
    async with RunContext(run_id, registry=registry, session_id=f"chat-{user}", task=city):
        logger.info("agent started for %s: a trip to %s", user, city)
        state = await build_agent(city).ainvoke(
            {"messages": [("user", f"plan a trip to {city}")]},
            agent_run_id.langchain.config(callbacks=[tracer]),
        )
        logger.info("agent answered: %s", state["messages"][-1].content)
    return run_id


def descendants(run: Any) -> list[Any]:
    """Return the LangChain runs below ``run``, as a tracer such as LangSmith's holds them."""
    return [d for child in run.child_runs for d in (child, *descendants(child))]


def shell(folder: Path, *argv: str) -> None:
    """Show ``agent-run-id ARGV``, run it in ``folder`` as a user would, print its output."""
    print(f"$ agent-run-id {' '.join(argv)}")
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    print(done.stdout, end="")


async def main(folder: Path) -> None:
    db, log = folder / "runs.db", folder / "agent.jsonl"
    handler = logging.FileHandler(log)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    agent_run_id.logging.install()
    registry = SQLiteRunRegistry(db)
    tracer = RunCollectorCallbackHandler()  # LangChain's own tracer: what LangSmith would get
    trips = {"alice": "Lisbon", "bob": "Reykjavik", "carol": "Kyoto"}
    runs = await asyncio.gather(*(agent(u, c, registry, tracer) for u, c in trips.items()))
    registry.close()
    handler.close()

    roots = {root.id: root for root in tracer.traced_runs}
    same = set(roots) == {run.uuid for run in runs}
    print(f"{len(runs)} agent runs; LangChain's root run ids are our run ids: {same}")
    failed = next(r for r in descendants(roots[runs[1].uuid]) if r.run_type == "tool" and r.error)
    print(f"The tool call that failed has the LangChain (LangSmith) run id {failed.id}\n")
    shell(folder, "runs", "show", str(failed.id), "--db", db.name)
    print()
    shell(folder, "runs", "tree", runs[1].value, "--db", db.name)
    print()
    shell(folder, "logs", runs[1].value, "--tree", log.name)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp)))
