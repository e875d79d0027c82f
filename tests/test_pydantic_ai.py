"""Pydantic AI under our run: its run id is ours, its model requests and tool calls child runs.

The agents run Pydantic AI's own offline models (``FunctionModel``, ``TestModel``) and real
tools; a guard fails any connection to an address other than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent, ModelRetry, ToolFailed
from pydantic_ai import RunContext as AgentContext
from pydantic_ai.conversation import Conversation
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.test import TestModel

import agent_run_id.logging
import agent_run_id.pydantic_ai
from agent_run_id import RunContext, RunId, current_run_id, in_current_run
from agent_run_id.pydantic_ai import RunIdCapability, run_kwargs
from agent_run_id.registry import RunRecord, SQLiteRunRegistry
from tests._agents_helpers import (
    by_name,
    close_the_default_loop,
    in_tasks,
    in_threads,
    offline,
    registry,
)
from tests._cli_helpers import call

__all__ = ["close_the_default_loop", "offline", "registry"]

log = logging.getLogger("tests.tools")


def both_tools_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call search and book at once, then answer with what the tools returned."""
    if len(messages) == 1:
        return ModelResponse(
            parts=[
                ToolCallPart("search", {"query": "hotels"}, tool_call_id="c1"),
                ToolCallPart("book", {"hotel": "inn"}, tool_call_id="c2"),
            ]
        )
    return ModelResponse(parts=[TextPart("done")])


async def both_tools_then_answer_streamed(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """What both_tools_then_answer says, streamed."""
    if len(messages) == 1:
        yield {
            0: DeltaToolCall("search", '{"query": "hotels"}', tool_call_id="c1"),
            1: DeltaToolCall("book", '{"hotel": "inn"}', tool_call_id="c2"),
        }
    else:
        yield "done"


def planner(**options: Any) -> Agent[str, str]:
    """An agent whose tools log and name the run's deps; book always fails."""
    model = FunctionModel(
        both_tools_then_answer,
        stream_function=both_tools_then_answer_streamed,
        model_name="planner-model",
    )
    agent: Agent[str, str] = Agent(
        model,
        deps_type=str,
        **options,
    )

    @agent.tool
    def search(ctx: AgentContext[str], query: str) -> str:
        log.info("searching %s for %s", query, ctx.deps)
        return f"found {query}"

    @agent.tool
    async def book(ctx: AgentContext[str], hotel: str) -> str:
        log.info("booking %s for %s", hotel, ctx.deps)
        raise ModelRetry(f"booking backend down for {ctx.deps}")

    return agent


def assert_tree_of_one_agent_run(
    registry: SQLiteRunRegistry, run: RunId, deps: str
) -> dict[str, list[RunRecord]]:
    """Check the run's tree: two model requests and the two tools, each a child of the run."""
    tree = registry.tree(run)
    assert tree[0].run_id == run.value
    nodes = by_name(tree[1:])
    assert sorted((name, len(found)) for name, found in nodes.items()) == [
        ("model planner-model", 2),
        ("tool book", 1),
        ("tool search", 1),
    ]
    for record in tree[1:]:
        assert record.parent_id == run.value
    (searched,) = nodes["tool search"]
    (booked,) = nodes["tool book"]
    assert (searched.status, searched.error) == ("ok", None)
    assert (booked.status, booked.error) == (
        "error",
        f"ModelRetry: booking backend down for {deps}",
    )
    assert (searched.metadata["tool_call_id"], booked.metadata["tool_call_id"]) == ("c1", "c2")
    assert all(m.status == "ok" for m in nodes["model planner-model"])
    return nodes


def test_an_agent_run_inside_run_a_is_run_a_with_a_child_run_per_step(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()
    with caplog.at_level(logging.INFO), RunContext(registry=registry, session_id="chat-1") as a:
        result = planner().run_sync("plan a trip", deps="alice", **run_kwargs())
    assert result.output == "done"
    assert result.run_id == a.run_id.value
    assert {m.run_id for m in result.all_messages()} == {a.run_id.value}
    assert {m.conversation_id for m in result.all_messages()} == {"chat-1"}
    assert registry.get(a.run_id).external_ids == {
        "pydantic_ai_run": a.run_id.value,
        "pydantic_ai_conversation": "chat-1",
    }
    nodes = assert_tree_of_one_agent_run(registry, a.run_id, "alice")
    assert nodes["tool book"][0].session_id == "chat-1"
    (searching,) = [r for r in caplog.records if r.getMessage() == "searching hotels for alice"]
    (booking,) = [r for r in caplog.records if r.getMessage() == "booking inn for alice"]
    assert searching.run_id == nodes["tool search"][0].run_id  # type: ignore[attr-defined]
    assert booking.run_id == nodes["tool book"][0].run_id  # type: ignore[attr-defined]


def test_the_capability_on_the_agent_works_without_run_kwargs(
    registry: SQLiteRunRegistry,
) -> None:
    """Pydantic AI's own ids are recorded on the run: `runs show` finds it by them."""
    agent = planner(capabilities=[RunIdCapability()])
    with RunContext(registry=registry) as a:
        result = agent.run_sync("plan a trip", deps="bob")
    assert result.run_id != a.run_id.value
    conversation = result.all_messages()[0].conversation_id
    assert registry.get(a.run_id).external_ids == {
        "pydantic_ai_run": result.run_id,
        "pydantic_ai_conversation": conversation,
    }
    assert_tree_of_one_agent_run(registry, a.run_id, "bob")


def test_the_capability_given_twice_records_each_step_once(registry: SQLiteRunRegistry) -> None:
    agent = planner(capabilities=[RunIdCapability()])
    with RunContext(registry=registry) as a:
        agent.run_sync("plan a trip", deps="carol", **run_kwargs())
    assert_tree_of_one_agent_run(registry, a.run_id, "carol")


def test_runs_show_finds_run_a_by_the_agent_runs_ids(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(registry=registry) as a:
        mine = planner().run_sync("plan", deps="dan", **run_kwargs())
    with RunContext(registry=registry) as b:
        theirs = planner(capabilities=[RunIdCapability()]).run_sync("plan", deps="eve")
    registry.close()
    for framework_id, run in ((mine.run_id, a), (theirs.run_id, b)):
        shown = call("runs", "show", framework_id, "--db", str(path))
        assert shown.code == 0, shown.err
        assert shown.out.startswith(f"run_id:     {run.run_id}\n")
        assert f"pydantic_ai_run={framework_id}" in shown.out


def test_a_tool_that_raises_fails_its_run_and_the_agent_run(registry: SQLiteRunRegistry) -> None:
    agent: Agent[None, str] = Agent(TestModel())

    @agent.tool_plain
    def explode(city: str) -> str:
        raise LookupError(f"no such city: {city}")

    with pytest.raises(LookupError), RunContext(registry=registry) as a:
        agent.run_sync("go", **run_kwargs())
    nodes = by_name(registry.tree(a.run_id)[1:])
    (exploded,) = nodes["tool explode"]
    assert (exploded.status, exploded.error) == ("error", "LookupError: no such city: a")
    assert registry.get(a.run_id).status == "error"
    (model,) = nodes["model test"]
    assert model.status == "ok"


def test_a_tool_failed_and_test_model_calls(registry: SQLiteRunRegistry) -> None:
    agent: Agent[None, str] = Agent(TestModel())

    @agent.tool_plain
    def weather(city: str) -> str:
        raise ToolFailed(f"no forecast for {city}")

    @agent.tool_plain
    def clock(city: str) -> str:
        return "noon"

    with RunContext(registry=registry) as a:
        result = agent.run_sync("go", **run_kwargs())
    assert "noon" in result.output
    nodes = by_name(registry.tree(a.run_id)[1:])
    assert (nodes["tool weather"][0].status, nodes["tool weather"][0].error) == (
        "error",
        "ToolFailed: no forecast for a",
    )
    assert nodes["tool clock"][0].status == "ok"
    assert len(nodes["model test"]) == 2


def test_a_failing_model_request_fails_its_run(registry: SQLiteRunRegistry) -> None:
    def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ConnectionError("model unreachable")

    with pytest.raises(ConnectionError), RunContext(registry=registry) as a:
        Agent(FunctionModel(broken, model_name="m")).run_sync("go", **run_kwargs())
    (model,) = registry.tree(a.run_id)[1:]
    assert (model.status, model.error) == ("error", "ConnectionError: model unreachable")


def test_run_kwargs_keeps_what_the_caller_gives() -> None:
    mine = RunIdCapability()
    history: list[ModelMessage] = []
    with RunContext(session_id="chat-1") as a:
        given = run_kwargs(
            run_id="r-1", conversation_id="c-1", message_history=history, capabilities=[mine]
        )
        conversation = Conversation()
        with_conversation = run_kwargs(conversation=conversation)
        later = run_kwargs()  # the run's id went to the first agent run
    with RunContext(session_id="chat-1") as b:
        ours = run_kwargs(capabilities=None)
    assert given == {
        "run_id": "r-1",
        "conversation_id": "c-1",
        "message_history": history,
        "capabilities": [mine],
    }
    assert with_conversation["conversation"] is conversation
    assert "conversation_id" not in with_conversation
    assert with_conversation["run_id"] == a.run_id.value
    assert set(later) == {"conversation_id", "capabilities"}
    assert ours["run_id"] == b.run_id.value
    assert ours["conversation_id"] == "chat-1"
    (capability,) = ours["capabilities"]
    assert repr(capability) == "RunIdCapability()"


def test_run_kwargs_outside_any_run_adds_only_the_capability() -> None:
    given = run_kwargs()
    assert set(given) == {"capabilities"}
    with RunContext():  # a run without a session: no conversation id
        assert "conversation_id" not in run_kwargs()


def test_run_kwargs_says_when_the_history_holds_this_run_already(
    registry: SQLiteRunRegistry,
) -> None:
    """A run entered again (a chat server continuing the client's run id): its id is taken."""
    agent = planner()
    with RunContext(registry=registry) as a:
        first = agent.run_sync("plan", deps="fay", **run_kwargs())
    with RunContext(a.run_id, registry=registry):  # the same run, in the next request
        with pytest.raises(ValueError, match="message_history already holds an agent run of run"):
            run_kwargs(message_history=first.all_messages())
        with RunContext() as second:  # the fix the error names
            again = agent.run_sync(
                "again", deps="fay", **run_kwargs(message_history=first.all_messages())
            )
    assert again.run_id == second.run_id.value


def test_a_later_agent_run_in_the_same_run_is_a_child_run_with_its_own_id(
    registry: SQLiteRunRegistry,
) -> None:
    """A conversation's second turn in one run: Pydantic AI's own id, on a child run of ours."""
    agent = planner(name="planner")
    with RunContext(registry=registry, session_id="chat-2") as a:
        first = agent.run_sync("plan", deps="gus", **run_kwargs())
        kwargs = run_kwargs(message_history=first.all_messages())
        assert "run_id" not in kwargs  # the run's id named the first agent run
        second = agent.run_sync("and book it", deps="gus", **kwargs)
    assert first.run_id == a.run_id.value
    assert second.run_id != a.run_id.value
    assert {m.run_id for m in second.new_messages()} == {second.run_id}
    (child,) = registry.by_external_id(second.run_id)
    assert (child.parent_id, child.metadata["name"], child.status) == (
        a.run_id.value,
        "agent planner",
        "ok",
    )
    assert child.external_ids == {"pydantic_ai_run": second.run_id}  # its own id alone
    assert registry.get(a.run_id).external_ids == {  # the run keeps its ids and the conversation
        "pydantic_ai_run": a.run_id.value,
        "pydantic_ai_conversation": "chat-2",
    }
    assert [r.run_id for r in registry.by_external_id("chat-2")] == [a.run_id.value]
    steps = registry.tree(a.run_id)[1:]
    under_run = by_name([r for r in steps if r.parent_id == a.run_id.value])
    under_child = by_name([r for r in steps if r.parent_id == child.run_id])
    assert {name: len(found) for name, found in under_run.items()} == {
        "model planner-model": 2,
        "tool search": 1,
        "tool book": 1,
        "agent planner": 1,
    }
    # With the history, the model answers at once: one request, no tool.
    assert {name: len(found) for name, found in under_child.items()} == {"model planner-model": 1}


def test_ids_ours_refuse_are_left_out_and_every_step_still_ends(
    registry: SQLiteRunRegistry,
) -> None:
    """Pydantic AI takes a conversation id with a space; an external id may not have one."""
    agent = planner(name="planner", capabilities=[RunIdCapability()])  # given twice, too
    with RunContext(registry=registry) as a:
        first = agent.run_sync("plan", deps="ida", **run_kwargs(conversation_id="chat 7"))
        second = agent.run_sync(
            "again", deps="ida", **run_kwargs(conversation_id="chat 7"), message_history=[]
        )
    assert registry.get(a.run_id).external_ids == {"pydantic_ai_run": first.run_id}
    (child,) = registry.by_external_id(second.run_id)
    assert (child.parent_id, child.status) == (a.run_id.value, "ok")
    # Not ok: the two failing "tool book" steps alone, nothing left "running".
    assert [r.status for r in registry.tree(a.run_id) if r.status != "ok"] == ["error"] * 2


def test_a_second_capability_inside_a_later_agent_runs_child_run_passes_through(
    registry: SQLiteRunRegistry,
) -> None:
    """Given twice, a later agent run whose id ours refuse: the child takes no ids of the run."""
    agent = planner(name="planner", capabilities=[RunIdCapability()])
    with RunContext(registry=registry, session_id="chat-2") as a:
        agent.run_sync("plan", deps="jo", **run_kwargs())
        refused = "bad id " + "x" * 300  # Pydantic AI takes it; an external id may not
        kwargs = run_kwargs(run_id=refused, conversation_id="chat-9")
        agent.run_sync("again", deps="jo", **kwargs, message_history=[])
    (child,) = [r for r in registry.children(a.run_id) if r.metadata["name"] == "agent planner"]
    assert child.external_ids == {}  # the conversation stays off it
    assert registry.by_external_id("chat-9") == []


def test_agent_runs_started_at_once_in_one_run_are_the_run_and_children(
    registry: SQLiteRunRegistry,
) -> None:
    """Five agent runs gathered in one run, the capability on the agent: one is the run."""
    agent = planner(capabilities=[RunIdCapability()])

    async def five() -> tuple[RunId, list[str]]:
        async with RunContext(registry=registry) as a:
            results = await asyncio.gather(*(agent.run("plan", deps=f"h{n}") for n in range(5)))
        return a.run_id, [result.run_id for result in results]

    run, ids = asyncio.run(five())
    assert len(set(ids)) == 5
    (mine,) = [i for i in ids if i == registry.get(run).external_ids["pydantic_ai_run"]]
    children = {record.external_ids.get("pydantic_ai_run") for record in registry.children(run)}
    assert children >= set(ids) - {mine}
    assert mine not in children


def test_threads_of_one_run_asking_at_once_hand_out_its_id_once(
    registry: SQLiteRunRegistry,
) -> None:
    """Ten threads of one run (in_current_run), released together: one agent run is the run."""
    agent = planner()
    barrier = threading.Barrier(10)
    ids: list[str] = []

    def one(n: int) -> None:
        barrier.wait()
        ids.append(agent.run_sync("plan", deps=f"i{n}", **run_kwargs()).run_id)

    with RunContext(registry=registry) as a:
        in_threads(in_current_run(one), count=10)  # each thread's loop closed as it ends
    assert len(set(ids)) == 10
    assert ids.count(a.run_id.value) == 1
    children = {
        record.external_ids.get("pydantic_ai_run") for record in registry.children(a.run_id)
    }
    assert children >= set(ids) - {a.run_id.value}


def test_run_kwargs_rejects_capabilities_that_are_not_a_sequence() -> None:
    for bad in (RunIdCapability(), "RunIdCapability"):
        with pytest.raises(TypeError, match="capabilities must be a sequence of capabilities"):
            run_kwargs(capabilities=bad)  # type: ignore[arg-type]


def test_concurrent_agent_runs_in_tasks_never_mix(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()
    agent = planner()
    runs: dict[str, RunId] = {}

    async def one(n: int) -> None:
        async with RunContext(registry=registry) as run:
            runs[f"a{n}"] = run.run_id
            result = await agent.run("plan", deps=f"a{n}", **run_kwargs())
            assert result.run_id == run.run_id.value
            assert current_run_id() == run.run_id

    with caplog.at_level(logging.INFO, logger="tests.tools"):
        in_tasks(one)
    assert_no_cross_talk(registry, runs, caplog.records)


def test_concurrent_agent_runs_in_threads_never_mix(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()
    agent = planner()
    runs: dict[str, RunId] = {}
    barrier = threading.Barrier(50)

    def one(n: int) -> None:
        with RunContext(registry=registry) as run:
            runs[f"t{n}"] = run.run_id
            barrier.wait()
            result = agent.run_sync("plan", deps=f"t{n}", **run_kwargs())
            assert result.run_id == run.run_id.value

    with caplog.at_level(logging.INFO, logger="tests.tools"):
        in_threads(one)
    assert_no_cross_talk(registry, runs, caplog.records)


def assert_no_cross_talk(
    registry: SQLiteRunRegistry, runs: dict[str, RunId], records: list[logging.LogRecord]
) -> None:
    assert len(runs) == 50
    lines = {r.getMessage(): r for r in records}
    for deps, run in runs.items():
        nodes = assert_tree_of_one_agent_run(registry, run, deps)
        external_ids = registry.get(run).external_ids
        assert set(external_ids) == {"pydantic_ai_run", "pydantic_ai_conversation"}
        assert external_ids["pydantic_ai_run"] == run.value
        searching = lines[f"searching hotels for {deps}"]
        booking = lines[f"booking inn for {deps}"]
        assert searching.run_id == nodes["tool search"][0].run_id  # type: ignore[attr-defined]
        assert booking.run_id == nodes["tool book"][0].run_id  # type: ignore[attr-defined]


def test_a_failing_capability_never_breaks_the_agent(
    registry: SQLiteRunRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("registry on fire")

    monkeypatch.setattr(agent_run_id.pydantic_ai, "Step", broken)
    monkeypatch.setattr(agent_run_id.pydantic_ai, "annotate", broken)
    # the first failure is a warning, the capability's later ones debug lines
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"), RunContext(registry=registry):
        result = planner().run_sync("plan", deps="gus", **run_kwargs())
    assert result.output == "done"
    messages = [r.getMessage() for r in caplog.records if r.name == "agent_run_id"]
    assert any("failed when an agent run started" in m for m in messages)
    assert any("failed when a step started" in m for m in messages)


def test_a_step_that_fails_to_end_is_reported(
    registry: SQLiteRunRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agent_run_id._steps import Step

    def broken(self: Step, error: BaseException | str | None = None) -> None:
        raise RuntimeError("cannot end")

    monkeypatch.setattr(Step, "finish", broken)
    with caplog.at_level(logging.WARNING, logger="agent_run_id"), RunContext(registry=registry):
        result = planner().run_sync("plan", deps="hal", **run_kwargs())
    assert result.output == "done"
    assert any("failed when a step ended" in r.getMessage() for r in caplog.records)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pydantic_ai" or m.startswith("pydantic_ai.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes "import pydantic_ai..." fail
    monkeypatch.delitem(sys.modules, "agent_run_id.pydantic_ai")
    with pytest.raises(ImportError) as raised:
        importlib.import_module("agent_run_id.pydantic_ai")
    assert str(raised.value).startswith("agent_run_id.pydantic_ai needs the pydantic-ai-slim")
    assert "agent-run-id[pydantic-ai]" in str(raised.value)


def test_a_model_request_runs_inside_its_own_run(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """What the model client does (its log lines, its HTTP calls) carries the request's run."""
    agent_run_id.logging.install()

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        logging.getLogger("tests.model").info("model called")
        return ModelResponse(parts=[TextPart("hello")])

    agent: Agent[None, str] = Agent(FunctionModel(answer, model_name="m"))
    with caplog.at_level(logging.INFO, logger="tests.model"), RunContext(registry=registry) as a:
        agent.run_sync("hi", **run_kwargs())
    (model,) = registry.tree(a.run_id)[1:]
    (called,) = [r for r in caplog.records if r.getMessage() == "model called"]
    assert called.run_id == model.run_id  # type: ignore[attr-defined]
    assert model.metadata == {"name": "model m", "pydantic_ai_step": "model"}


def test_a_streamed_agent_run_records_the_same_tree(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()

    async def streamed() -> str:
        async with planner().run_stream("plan", deps="ivy", **run_kwargs()) as result:
            output: str = await result.get_output()
            return output

    with caplog.at_level(logging.INFO, logger="tests.tools"), RunContext(registry=registry) as a:
        assert asyncio.run(streamed()) == "done"
    nodes = assert_tree_of_one_agent_run(registry, a.run_id, "ivy")
    (booking,) = [r for r in caplog.records if r.getMessage() == "booking inn for ivy"]
    assert booking.run_id == nodes["tool book"][0].run_id  # type: ignore[attr-defined]
