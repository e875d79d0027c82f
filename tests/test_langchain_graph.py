"""A LangGraph agent under a run: its steps are the run's tree, its tools run in their steps."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

import agent_run_id.logging
from agent_run_id import RunContext, RunId
from agent_run_id.langchain import config
from agent_run_id.registry import RunRecord, SQLiteRunRegistry
from tests._cli_helpers import call
from tests._langchain_agent import build_agent

# The tree of one agent run, (step, parent step): the graph's root is the run itself ("").
SHAPE = [
    ("chain agent", ""),
    ("chain call_model", "chain agent"),
    ("chat_model GenericFakeChatModel", "chain call_model"),
    ("chain tools_condition", "chain agent"),
    ("chain tools", ""),
    ("tool search", "chain tools"),
    ("tool hotels", "chain tools"),
    ("chain agent", ""),
    ("chain call_model", "chain agent"),
    ("chat_model GenericFakeChatModel", "chain call_model"),
    ("chain tools_condition", "chain agent"),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def registry(db: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(db)
    yield registry
    registry.close()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # list.append: safe from any thread


@pytest.fixture
def tool_lines() -> Iterator[list[logging.LogRecord]]:
    """The tools' log records, stamped by agent_run_id.logging (real logging, every thread)."""
    agent_run_id.logging.install()
    logger = logging.getLogger("tests.langchain.tools")
    collect = _Collect()
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    yield collect.records
    logger.removeHandler(collect)
    logger.setLevel(logging.NOTSET)


def named(records: list[RunRecord], name: str) -> list[RunRecord]:
    return [r for r in records if r.metadata.get("name") == name]


def check_tree(registry: SQLiteRunRegistry, run: RunId, tag: str) -> list[RunRecord]:
    """Check the registry holds the agent's run as SHAPE says; return the tree's records."""
    tree = registry.tree(run)
    assert tree[0].run_id == run.value
    steps = sorted(tree[1:], key=lambda r: r.started_at)
    by_id = {r.run_id: r for r in tree}
    shape = []
    for record in steps:
        parent = by_id[record.parent_id] if record.parent_id is not None else None
        assert parent is not None
        shape.append(
            (record.metadata["name"], "" if parent is tree[0] else parent.metadata["name"])
        )
        assert record.root_id == run.value
        assert record.external_ids["langchain_run"] != run.value
    # The two tools run in parallel: either may start first.
    assert sorted(shape) == sorted(SHAPE)
    (failed,) = [r for r in steps if r.status != "ok"]
    assert failed.metadata["name"] == "tool hotels"
    assert failed.status == "error"
    assert failed.error == f"TimeoutError: hotel API timed out for {tag}"
    assert all(r.ended_at is not None and r.duration is not None for r in steps)
    return tree


def check_tool_lines(lines: list[logging.LogRecord], tree: list[RunRecord], tag: str) -> None:
    """Check each tool's log line carries the tool's own step, a child of the run's tools step."""
    (search,) = named(tree, "tool search")
    (hotels,) = named(tree, "tool hotels")
    mine = {r.getMessage(): r for r in lines if r.getMessage().endswith(f" {tag}")}
    assert mine[f"searching {tag}"].run_id == search.run_id  # type: ignore[attr-defined]
    assert mine[f"looking for hotels in {tag}"].run_id == hotels.run_id  # type: ignore[attr-defined]
    assert mine[f"searching {tag}"].root_run_id == tree[0].run_id  # type: ignore[attr-defined]


def test_an_async_langgraph_agent_is_the_runs_tree_and_each_tool_runs_in_its_step(
    registry: SQLiteRunRegistry, tool_lines: list[logging.LogRecord]
) -> None:
    collector = RunCollectorCallbackHandler()

    async def main() -> RunId:
        with RunContext(registry=registry, session_id="chat-1") as run:
            state = await build_agent("Reykjavik").ainvoke(
                {"messages": [("user", "plan a trip")]}, config(callbacks=[collector])
            )
        assert state["messages"][-1].content == "done Reykjavik"
        return run.run_id

    run = asyncio.run(main())
    (root,) = collector.traced_runs
    assert root.id == run.uuid  # LangChain's (and LangSmith's) root run is our run
    assert root.metadata["agent_run_id"] == run.value
    tree = check_tree(registry, run, "Reykjavik")
    assert tree[0].external_ids == {"langchain_run": run.value}
    assert {r.session_id for r in tree} == {"chat-1"}
    # each step's external id is LangChain's id of that step
    langchain_ids = {str(child.id): child.name for child in _all_runs(root)}
    for record in tree[1:]:
        assert langchain_ids[record.external_ids["langchain_run"]] in record.metadata["name"]
    check_tool_lines(tool_lines, tree, "Reykjavik")


def test_a_streamed_langgraph_agent_is_the_runs_tree_too(
    registry: SQLiteRunRegistry, tool_lines: list[logging.LogRecord]
) -> None:
    async def main() -> RunId:
        with RunContext(registry=registry) as run:
            chunks = [
                chunk
                async for chunk in build_agent("Turku").astream(
                    {"messages": [("user", "plan")]}, config(), stream_mode="updates"
                )
            ]
        assert chunks
        return run.run_id

    run = asyncio.run(main())
    tree = check_tree(registry, run, "Turku")
    check_tool_lines(tool_lines, tree, "Turku")


def _all_runs(run: Any) -> Iterator[Any]:
    for child in run.child_runs:
        yield child
        yield from _all_runs(child)


def test_a_sync_langgraph_agent_runs_its_parallel_tools_in_threads_in_their_steps(
    registry: SQLiteRunRegistry, tool_lines: list[logging.LogRecord]
) -> None:
    with RunContext(registry=registry) as run:
        state = build_agent("Oslo").invoke({"messages": [("user", "plan")]}, config())
    assert state["messages"][-1].content == "done Oslo"
    tree = check_tree(registry, run.run_id, "Oslo")
    check_tool_lines(tool_lines, tree, "Oslo")


def test_fifty_concurrent_agent_runs_and_many_threads_never_mix(
    registry: SQLiteRunRegistry, tool_lines: list[logging.LogRecord]
) -> None:
    async def agent(n: int) -> RunId:
        with RunContext(registry=registry, session_id=f"chat-{n}") as run:
            state = await build_agent(f"task{n}").ainvoke(
                {"messages": [("user", f"task{n}")]}, config()
            )
        assert state["messages"][-1].content == f"done task{n}"
        return run.run_id

    async def agents() -> list[RunId]:
        return await asyncio.gather(*(agent(n) for n in range(50)))

    ran: dict[str, RunId] = {f"task{n}": run for n, run in enumerate(asyncio.run(agents()))}
    barrier = threading.Barrier(12)
    lock = threading.Lock()

    def worker(n: int) -> None:
        barrier.wait()
        with RunContext(registry=registry) as run:
            build_agent(f"thread{n}").invoke({"messages": [("user", "go")]}, config())
        with lock:
            ran[f"thread{n}"] = run.run_id

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ran) == 62
    for tag, run in ran.items():
        tree = check_tree(registry, run, tag)
        check_tool_lines(tool_lines, tree, tag)
        if tag.startswith("task"):
            assert {r.session_id for r in tree} == {f"chat-{tag[4:]}"}
    assert len(tool_lines) == 62 * 2


def test_runs_show_finds_a_step_by_its_langchain_id_and_the_run_by_the_root_id(
    registry: SQLiteRunRegistry, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    langsmith = "https://smith.langchain.com/o/ORG/projects/p/PROJECT/r/{id}"
    monkeypatch.setenv("AGENT_RUN_ID_LINKS", json.dumps({"langchain_run": langsmith}))
    collector = RunCollectorCallbackHandler()
    with RunContext(registry=registry) as run:
        build_agent("Bergen").invoke({"messages": [("user", "go")]}, config(callbacks=[collector]))
    (root,) = collector.traced_runs
    tool = next(r for r in _all_runs(root) if r.name == "hotels")
    (step,) = named(registry.tree(run.run_id), "tool hotels")
    registry.close()

    shown = call("runs", "show", str(tool.id), "--db", str(db))
    assert shown.code == 0, shown.err
    assert shown.out.startswith(f"run_id:     {step.run_id}\n")
    assert f"parent_id:  {step.parent_id}\n" in shown.out
    assert "error:      TimeoutError: hotel API timed out for Bergen\n" in shown.out
    link = langsmith.replace("{id}", str(tool.id))
    assert f"external:   langchain_run={tool.id}  {link}\n" in shown.out

    shown = call("runs", "show", str(root.id), "--db", str(db))
    assert shown.code == 0, shown.err
    assert shown.out.startswith(f"run_id:     {run.run_id}\n")
    link = langsmith.replace("{id}", run.run_id.value)
    assert f"external:   langchain_run={run.run_id}  {link}\n" in shown.out
