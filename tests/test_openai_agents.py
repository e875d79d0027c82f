"""The OpenAI Agents SDK under our run: its trace is the run, its spans child runs, offline.

The agents run the SDK's own scripted model (``agents.testing.ScriptedModel``, which opens a
generation span per call as the OpenAI models do) and real function tools. The only tracing
processors are ours and a recorder: nothing is exported, and a guard fails any connection to
an address other than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrail,
    RunContextWrapper,
    Runner,
    function_tool,
    handoff,
)
from agents.run_config import ToolErrorFormatterArgs
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.tracing import Span, Trace, TracingProcessor, set_trace_processors, trace

import agent_run_id.logging
import agent_run_id.openai_agents
from agent_run_id import RunContext, RunId, current_run_id, in_current_run
from agent_run_id.openai_agents import RunIdTracingProcessor, install, run_config, uninstall
from agent_run_id.registry import RunRecord, SQLiteRunRegistry, set_default
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


class Recorder(TracingProcessor):
    """Keeps every trace the SDK started, to check what it was given."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []

    def on_trace_start(self, trace: Trace) -> None:
        self.traces.append(trace)

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Our processor and a recorder, alone: the SDK's exporter to OpenAI is dropped."""
    recorder = Recorder()
    set_trace_processors([install(), recorder])
    yield recorder
    set_trace_processors([])


@function_tool
def search(query: str) -> str:
    """Search the web."""
    log.info("searching %s", query)
    return f"found {query}"


@function_tool
async def book(hotel: str) -> str:
    """Book a hotel."""
    log.info("booking %s", hotel)
    raise RuntimeError(f"booking backend down for {hotel}")


def planner(name: str = "planner") -> Agent[Any]:
    """An agent whose model calls both tools at once, then answers."""
    model = ScriptedModel(
        [
            [
                function_call("search", {"query": f"{name} hotels"}, call_id="c1"),
                function_call("book", {"hotel": f"{name} inn"}, call_id="c2"),
            ],
            [assistant_message(f"done {name}")],
        ],
        emit_traces=True,
    )
    return Agent(name=name, model=model, tools=[search, book])


def assert_tree_of_one_agent_run(
    registry: SQLiteRunRegistry, run: RunId, name: str = "planner"
) -> dict[str, list[RunRecord]]:
    """Check the run's tree: agent, two turns, a model call in each, the two tools in the first."""
    tree = registry.tree(run)
    assert tree[0].run_id == run.value
    nodes = by_name(tree[1:])
    assert sorted(nodes) == sorted(
        [f"agent {name}", f"turn 1 {name}", f"turn 2 {name}", "model", "tool search", "tool book"]
    )
    (agent,) = nodes[f"agent {name}"]
    (turn1,) = nodes[f"turn 1 {name}"]
    (turn2,) = nodes[f"turn 2 {name}"]
    (searched,) = nodes["tool search"]
    (booked,) = nodes["tool book"]
    models = nodes["model"]
    assert agent.parent_id == run.value
    assert turn1.parent_id == turn2.parent_id == agent.run_id
    assert searched.parent_id == booked.parent_id == turn1.run_id
    assert sorted(m.parent_id or "" for m in models) == sorted([turn1.run_id, turn2.run_id])
    for record in tree[1:]:
        assert record.root_id == run.value
        assert set(record.external_ids) == {"openai_span"}
        assert record.external_ids["openai_span"].startswith("span_")
    assert (searched.status, searched.error) == ("ok", None)
    assert booked.status == "error"
    assert all(r.status == "ok" for r in tree[1:] if r is not booked)
    return nodes


def test_an_agent_run_inside_run_a_is_traced_as_a_with_a_child_run_per_step(
    recorder: Recorder, registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()
    caplog.set_level(logging.DEBUG)  # with the SDK's debug line on a tool failure
    with RunContext(registry=registry, session_id="chat-1") as a:
        result = Runner.run_sync(planner(), "plan a trip", run_config=run_config())
    assert result.final_output == "done planner"
    (started,) = recorder.traces
    assert started.trace_id == f"trace_{a.run_id.hex}"
    record = registry.get(a.run_id)
    assert record.external_ids == {"openai_trace": started.trace_id}
    nodes = assert_tree_of_one_agent_run(registry, a.run_id)
    (booked,) = nodes["tool book"]
    assert booked.error == "RuntimeError: booking backend down for planner inn"
    assert booked.session_id == "chat-1"
    # each tool's log lines carry its own run
    (searching,) = [r for r in caplog.records if r.getMessage() == "searching planner hotels"]
    (booking,) = [r for r in caplog.records if r.getMessage() == "booking planner inn"]
    assert searching.run_id == nodes["tool search"][0].run_id  # type: ignore[attr-defined]
    assert booking.run_id == booked.run_id  # type: ignore[attr-defined]
    # the SDK's own error line about the tool is the tool's too
    (failed,) = [r for r in caplog.records if r.getMessage().startswith("Tool book failed")]
    assert failed.run_id == booked.run_id  # type: ignore[attr-defined]


def test_run_config_puts_our_ids_in_the_trace(recorder: Recorder) -> None:
    with RunContext(session_id="chat-1", user_id="u-1") as a, RunContext() as child:
        config = run_config(workflow_name="trip")
        Runner.run_sync(planner(), "plan a trip", run_config=config)
    (started,) = recorder.traces
    assert started.name == "trip"
    assert started.trace_id == f"trace_{child.run_id.hex}"
    exported = started.export()
    assert exported is not None
    assert exported["group_id"] == "chat-1"
    assert exported["metadata"] == {
        "agent_run_id": child.run_id.value,
        "agent_parent_run_id": a.run_id.value,
        "agent_root_run_id": a.run_id.value,
        "agent_session_id": "chat-1",
    }


def test_run_config_sends_the_user_only_when_asked() -> None:
    with RunContext(user_id="u-1") as a:
        config = run_config(send_user=True)
    assert config.trace_metadata == {"agent_run_id": a.run_id.value, "agent_user_id": "u-1"}
    assert config.group_id is None  # no session


def test_what_the_caller_gives_run_config_wins() -> None:
    with RunContext(session_id="chat-1") as a:
        config = run_config(
            trace_id="trace_" + "ab" * 16,
            group_id="group-9",
            trace_metadata={"agent_run_id": "mine", "team": "travel"},
            workflow_name="trip",
        )
        defaults = run_config(trace_id=None, group_id=None, trace_metadata=None)
    assert (config.trace_id, config.group_id, config.workflow_name) == (
        "trace_" + "ab" * 16,
        "group-9",
        "trip",
    )
    assert config.trace_metadata == {
        "agent_run_id": "mine",
        "agent_session_id": "chat-1",
        "team": "travel",
    }
    assert defaults.trace_metadata == {
        "agent_run_id": a.run_id.value,
        "agent_session_id": "chat-1",
    }
    assert defaults.trace_id == f"trace_{a.run_id.hex}"
    assert defaults.group_id == "chat-1"


def test_run_config_outside_any_run_sets_nothing_of_ours() -> None:
    config = run_config(workflow_name="trip", trace_metadata={"team": "travel"})
    assert (config.trace_id, config.group_id) == (None, None)
    assert config.trace_metadata == {"team": "travel"}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"send_user": "yes"}, TypeError, "run_config: send_user must be True or False, got 'yes'"),
        ({"trace_metadata": ["run"]}, TypeError, "trace_metadata must be a mapping or None"),
        ({"no_such_field": 1}, TypeError, "no_such_field"),
    ],
)
def test_run_config_rejects_bad_options_naming_them(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with RunContext(), pytest.raises(error) as raised:
        run_config(**kwargs)
    assert message in str(raised.value)


def test_the_callers_tool_error_formatter_is_kept(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    seen: list[tuple[str, str]] = []

    async def formatter(args: ToolErrorFormatterArgs[Any]) -> str:
        seen.append((args.tool_name, str(args.error)))
        return "the booking service is down: do not retry"

    with RunContext(registry=registry) as a:
        result = Runner.run_sync(
            planner(), "plan", run_config=run_config(tool_error_formatter=formatter)
        )
    assert seen == [("book", "booking backend down for planner inn")]
    outputs = [i.output for i in result.new_items if type(i).__name__ == "ToolCallOutputItem"]
    assert "the booking service is down: do not retry" in outputs
    nodes = assert_tree_of_one_agent_run(registry, a.run_id)
    assert nodes["tool book"][0].error == "RuntimeError: booking backend down for planner inn"
    assert repr(run_config().tool_error_formatter) == "_ToolErrorNote(None)"


def test_without_run_config_the_trace_still_belongs_to_the_current_run(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    """The SDK's own trace id is recorded on the run; a tool's error is what the SDK says."""
    with RunContext(registry=registry) as a:
        Runner.run_sync(planner(), "plan a trip")
    (started,) = recorder.traces
    assert started.trace_id != f"trace_{a.run_id.hex}"
    assert registry.get(a.run_id).external_ids == {"openai_trace": started.trace_id}
    nodes = assert_tree_of_one_agent_run(registry, a.run_id)
    assert nodes["tool book"][0].error == (
        "ReportedError: Error running tool (non-fatal): "
        "Tool execution failed. Error details are redacted."
    )


def test_runs_show_finds_run_a_by_its_trace_id(recorder: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(registry=registry) as a:
        Runner.run_sync(planner(), "plan a trip", run_config=run_config())
    registry.close()
    trace_id = f"trace_{a.run_id.hex}"
    shown = call("runs", "show", trace_id, "--db", str(path))
    assert shown.code == 0, shown.err
    assert shown.out.startswith(f"run_id:     {a.run_id}\n")
    assert f"openai_trace={trace_id}" in shown.out
    tree = call("runs", "tree", trace_id, "--db", str(path))
    assert tree.code == 0, tree.err
    (booked,) = by_name(registry_records(path, a.run_id))["tool book"]
    (line,) = [x for x in tree.out.splitlines() if booked.run_id in x]
    assert "  error  " in line
    assert "tool book" in line


def test_an_agent_run_outside_any_run_is_a_root_run_of_its_own(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    set_default(registry)  # outside any run, steps are recorded in the default registry
    try:
        Runner.run_sync(planner(), "plan a trip", run_config=run_config(workflow_name="trip"))
    finally:
        set_default(None)
    (started,) = recorder.traces
    (root,) = registry.by_external_id(started.trace_id)
    assert root.parent_id is None
    assert (root.metadata["name"], root.status) == ("trace trip", "ok")
    assert_tree_of_one_agent_run(registry, RunId(root.run_id))


def test_handoff_guardrail_and_custom_spans_are_child_runs(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    from agents.tracing import custom_span

    booker = Agent(
        name="booker",
        model=ScriptedModel([[assistant_message("booked")]], emit_traces=True),
    )

    def polite(
        ctx: RunContextWrapper[Any], agent: Agent[Any], text: Any
    ) -> GuardrailFunctionOutput:
        with custom_span("politeness check", {"text": str(text)}):
            return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    front = Agent(
        name="front",
        model=ScriptedModel(
            [[function_call("transfer_to_booker", {}, call_id="h1")]], emit_traces=True
        ),
        handoffs=[handoff(booker)],
        input_guardrails=[InputGuardrail(guardrail_function=polite, name="polite")],
    )
    with RunContext(registry=registry) as a:
        result = Runner.run_sync(front, "book a room", run_config=run_config())
    assert result.final_output == "booked"
    nodes = by_name(registry.tree(a.run_id)[1:])
    (guarded,) = nodes["guardrail polite"]
    assert (guarded.status, guarded.metadata["triggered"]) == ("ok", False)
    (checked,) = nodes["politeness check"]
    assert checked.parent_id == guarded.run_id
    (handed,) = nodes["handoff front"]
    assert handed.metadata["openai_span_type"] == "handoff"
    assert handed.metadata["to_agent"] == "booker"
    (front_agent,) = nodes["agent front"]
    (booker_agent,) = nodes["agent booker"]
    assert front_agent.parent_id == booker_agent.parent_id == a.run_id.value
    assert [m.metadata.get("model") for m in nodes["model"]] == [None, None]


def test_a_span_with_an_error_and_a_model_response_id(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    """Spans the SDK opens for a Responses model call, a named model and a failed span."""
    from agents.tracing import custom_span, generation_span, response_span
    from openai.types.responses import Response

    response = Response.model_validate(
        {
            "id": "resp_123",
            "created_at": 0,
            "model": "gpt-5",
            "object": "response",
            "output": [],
            "parallel_tool_calls": False,
            "tool_choice": "auto",
            "tools": [],
        }
    )
    with (
        RunContext(registry=registry) as a,
        trace("manual", trace_id=f"trace_{RunId.generate().hex}"),
    ):
        with response_span() as span:
            span.span_data.response = response
        with generation_span(model="gpt-5"):
            pass
        with custom_span("lookup") as failing:
            failing.set_error({"message": "lookup failed", "data": None})
        with custom_span("other") as failing_with_detail:
            failing_with_detail.set_error({"message": "", "data": {"error": 42}})
    nodes = by_name(registry.tree(a.run_id)[1:])
    (responded,) = nodes["model response"]
    assert responded.external_ids["openai_response"] == "resp_123"
    (named,) = nodes["model gpt-5"]
    assert named.metadata["model"] == "gpt-5"
    assert nodes["lookup"][0].error == "ReportedError: lookup failed"
    assert nodes["other"][0].error == "ReportedError: error"


def test_span_names_for_every_kind() -> None:
    from agents.tracing import (
        MCPListToolsSpanData,
        SpeechSpanData,
        TaskSpanData,
    )

    from agent_run_id import _openai_agents_spans as spans

    assert spans._name(MCPListToolsSpanData(server="files")) == "mcp list tools files"
    assert spans._name(SpeechSpanData()) == "speech"
    assert spans._name(TaskSpanData(name="wf")) == "wf"


def test_concurrent_agent_runs_in_tasks_never_mix(
    recorder: Recorder, registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()
    runs: dict[int, RunId] = {}

    async def one(n: int) -> None:
        async with RunContext(registry=registry) as run:
            runs[n] = run.run_id
            result = await Runner.run(planner(f"a{n}"), "plan", run_config=run_config())
            assert result.final_output == f"done a{n}"
            assert current_run_id() == run.run_id

    with caplog.at_level(logging.INFO, logger="tests.tools"):
        in_tasks(one)
    assert_no_cross_talk(registry, runs, "a", caplog.records)


def test_concurrent_agent_runs_in_threads_never_mix(
    recorder: Recorder, registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()
    runs: dict[int, RunId] = {}
    barrier = threading.Barrier(50)

    def one(n: int) -> None:
        with RunContext(registry=registry) as run:
            runs[n] = run.run_id
            barrier.wait()
            result = Runner.run_sync(planner(f"t{n}"), "plan", run_config=run_config())
            assert result.final_output == f"done t{n}"

    with caplog.at_level(logging.INFO, logger="tests.tools"):
        in_threads(one)
    assert_no_cross_talk(registry, runs, "t", caplog.records)


def registry_records(path: Path, run: RunId) -> list[RunRecord]:
    registry = SQLiteRunRegistry(path)
    try:
        return registry.tree(run)
    finally:
        registry.close()


def assert_no_cross_talk(
    registry: SQLiteRunRegistry,
    runs: dict[int, RunId],
    prefix: str,
    records: list[logging.LogRecord],
) -> None:
    assert len(runs) == 50
    lines = {r.getMessage(): r for r in records}
    for n, run in runs.items():
        name = f"{prefix}{n}"
        nodes = assert_tree_of_one_agent_run(registry, run, name)
        assert registry.get(run).external_ids == {"openai_trace": f"trace_{run.hex}"}
        assert nodes["tool book"][0].error == f"RuntimeError: booking backend down for {name} inn"
        searching = lines[f"searching {name} hotels"]
        booking = lines[f"booking {name} inn"]
        assert searching.run_id == nodes["tool search"][0].run_id  # type: ignore[attr-defined]
        assert booking.run_id == nodes["tool book"][0].run_id  # type: ignore[attr-defined]


def test_a_failing_processor_never_breaks_the_agent(
    recorder: Recorder,
    registry: SQLiteRunRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agent_run_id import _openai_agents_spans as spans

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("registry on fire")

    monkeypatch.setattr(spans, "Step", broken)
    monkeypatch.setattr(agent_run_id.openai_agents, "note_tool_error", broken)
    with caplog.at_level(logging.WARNING, logger="agent_run_id"), RunContext(registry=registry):
        result = Runner.run_sync(planner(), "plan a trip", run_config=run_config())
    assert result.final_output == "done planner"
    messages = [r.getMessage() for r in caplog.records if r.name == "agent_run_id"]
    assert any("failed when a span started" in m for m in messages)
    assert any("tool error note" in m for m in messages)


def test_failures_at_the_ends_of_traces_and_spans_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        @property
        def trace_id(self) -> str:
            raise RuntimeError("no id")

        span_id = trace_id

    processor = RunIdTracingProcessor()
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
        processor.on_trace_start(Broken())  # type: ignore[arg-type]
        processor.on_trace_end(Broken())  # type: ignore[arg-type]
        processor.on_span_end(Broken())  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed when a trace started" in m for m in messages)
    assert any("failed when a trace ended" in m for m in messages)
    assert any("failed when a span ended" in m for m in messages)


def test_uninstall_stops_recording_and_install_starts_again(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    uninstall()
    with RunContext(registry=registry) as off:
        Runner.run_sync(planner(), "plan", run_config=run_config())
    assert [r.run_id for r in registry.tree(off.run_id)] == [off.run_id.value]
    assert install() is install()
    with RunContext(registry=registry) as on:
        Runner.run_sync(planner(), "plan", run_config=run_config())
    assert_tree_of_one_agent_run(registry, on.run_id)


def test_shutdown_ends_open_steps_as_failed(registry: SQLiteRunRegistry) -> None:
    processor = RunIdTracingProcessor()
    set_trace_processors([processor])
    try:
        with RunContext(registry=registry) as a:
            current = trace("held open")
            current.start(mark_as_current=True)
            from agents.tracing import agent_span

            span = agent_span(name="planner")
            span.start()
            processor.shutdown()
            processor.force_flush()
            span.finish()  # after shutdown: nothing left to end
            current.finish(reset_current=True)
    finally:
        set_trace_processors([])
    (step,) = registry.tree(a.run_id)[1:]
    assert step.status == "error"
    assert step.error == (
        "ReportedError: the OpenAI Agents SDK shut its tracing down with the span open"
    )


def test_shutdown_ends_the_root_run_of_a_trace_outside_any_run(
    registry: SQLiteRunRegistry,
) -> None:
    processor = RunIdTracingProcessor()
    set_trace_processors([processor])
    set_default(registry)
    try:
        current = trace("held open", trace_id=f"trace_{'cd' * 16}")
        current.start()
        processor.close("stopped")
        current.finish()
    finally:
        set_default(None)
        set_trace_processors([])
    (root,) = registry.by_external_id(f"trace_{'cd' * 16}")
    assert (root.status, root.error) == ("error", "ReportedError: stopped")


def test_a_tool_error_outside_any_span_is_ignored() -> None:
    from agent_run_id._openai_agents_spans import note_tool_error

    note_tool_error(RuntimeError("no span"))  # nothing to give it to, nothing fails


def test_a_trace_id_started_twice_belongs_to_its_run_until_both_end(
    registry: SQLiteRunRegistry,
) -> None:
    processor = RunIdTracingProcessor()
    set_trace_processors([processor])
    try:
        with RunContext(registry=registry) as a:
            config = run_config()

            async def both() -> None:
                await asyncio.gather(
                    Runner.run(planner("x"), "plan", run_config=config),
                    Runner.run(planner("y"), "plan", run_config=config),
                )

            asyncio.run(both())
    finally:
        set_trace_processors([])
    nodes = by_name(registry.tree(a.run_id)[1:])
    assert len(nodes["agent x"]) == len(nodes["agent y"]) == 1
    assert len(nodes["tool book"]) == 2


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "agents", None)
    monkeypatch.delitem(sys.modules, "agent_run_id.openai_agents")
    with pytest.raises(ImportError) as raised:
        importlib.import_module("agent_run_id.openai_agents")
    assert str(raised.value).startswith("agent_run_id.openai_agents needs the openai-agents")
    assert "agent-run-id[openai-agents]" in str(raised.value)


def test_a_streamed_agent_run_records_the_same_tree(
    recorder: Recorder, registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    agent_run_id.logging.install()

    async def streamed() -> None:
        result = Runner.run_streamed(planner(), "plan a trip", run_config=run_config())
        async for _ in result.stream_events():
            pass
        assert result.final_output == "done planner"

    with caplog.at_level(logging.INFO, logger="tests.tools"), RunContext(registry=registry) as a:
        asyncio.run(streamed())
    nodes = assert_tree_of_one_agent_run(registry, a.run_id)
    (booking,) = [r for r in caplog.records if r.getMessage() == "booking planner inn"]
    assert booking.run_id == nodes["tool book"][0].run_id  # type: ignore[attr-defined]


def test_an_agent_called_as_a_tool_runs_under_the_tools_run(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    researcher = Agent(
        name="researcher",
        model=ScriptedModel(
            [
                [function_call("search", {"query": "museums"}, call_id="r1")],
                [assistant_message("three museums")],
            ],
            emit_traces=True,
        ),
        tools=[search],
    )
    lead = Agent(
        name="lead",
        model=ScriptedModel(
            [
                [function_call("research", {"input": "museums"}, call_id="l1")],
                [assistant_message("go to the museums")],
            ],
            emit_traces=True,
        ),
        tools=[researcher.as_tool("research", "Research a topic.")],
    )
    with RunContext(registry=registry) as a:
        result = Runner.run_sync(lead, "plan", run_config=run_config())
    assert result.final_output == "go to the museums"
    tree = registry.tree(a.run_id)
    nodes = by_name(tree[1:])
    (research,) = nodes["tool research"]
    (nested,) = nodes["agent researcher"]
    (searched,) = nodes["tool search"]
    assert nested.parent_id == research.run_id  # the nested agent run is the tool's body
    assert searched.root_id == a.run_id.value
    assert len(recorder.traces) == 1  # one trace: the nested run is in the outer one


def test_an_mcp_tool_call_runs_as_a_child_of_the_tools_run(
    recorder: Recorder, registry: SQLiteRunRegistry, tmp_path: Path
) -> None:
    """With ``agent_run_id.mcp.meta_resolver``, the server's run is the tool step's child."""
    from agents.mcp import MCPServerStdio

    import agent_run_id.mcp
    from tests._mcp_helpers import read_jsonl, stdio_command

    server = MCPServerStdio(
        params=stdio_command(tmp_path),  # type: ignore[arg-type]
        tool_meta_resolver=agent_run_id.mcp.meta_resolver,
        client_session_timeout_seconds=30,
    )
    model = ScriptedModel(
        [[function_call("echo", {"n": 7}, call_id="m1")], [assistant_message("echoed")]],
        emit_traces=True,
    )
    agent = Agent(name="caller", model=model, mcp_servers=[server])

    async def with_server() -> None:
        async with server:
            result = await Runner.run(agent, "echo", run_config=run_config())
        assert result.final_output == "echoed"

    with RunContext(registry=registry) as a:
        asyncio.run(with_server())
    nodes = by_name(registry.tree(a.run_id)[1:])
    (echo,) = nodes["tool echo"]
    assert echo.status == "ok"
    (line,) = [x for x in read_jsonl(tmp_path / "server.jsonl") if x["message"] == "tool echo 7"]
    assert line["parent_run_id"] == echo.run_id
    assert line["root_run_id"] == a.run_id.value


def test_a_span_left_open_when_its_trace_ends_is_ended_as_failed(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    from agents.tracing import agent_span, custom_span

    with RunContext(registry=registry) as a, trace("abandoned"):
        kept = custom_span("done in time")
        kept.start()
        kept.finish()
        left = agent_span(name="planner")
        left.start()  # never finished
    nodes = by_name(registry.tree(a.run_id)[1:])
    assert nodes["done in time"][0].status == "ok"
    (abandoned,) = nodes["agent planner"]
    assert abandoned.error == "ReportedError: the trace ended before the span"
    left.finish()  # late: nothing left to end


def test_a_trace_id_that_is_no_external_id_is_reported_and_its_spans_still_recorded(
    recorder: Recorder, registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent_run_id"):
        with RunContext(registry=registry) as a:
            Runner.run_sync(planner(), "plan", run_config=run_config(trace_id="trace with spaces"))
        set_default(registry)
        try:  # outside any run: the root run made for the trace is still ended
            Runner.run_sync(planner("b"), "plan", run_config=run_config(trace_id="trace two"))
        finally:
            set_default(None)
    assert registry.get(a.run_id).external_ids == {}
    assert_tree_of_one_agent_run(registry, a.run_id)
    assert any("failed when a trace started" in r.getMessage() for r in caplog.records)
    (root,) = [r for r in registry.find() if r.metadata.get("name") == "trace Agent workflow"]
    assert root.status == "ok"
    assert_tree_of_one_agent_run(registry, RunId(root.run_id), "b")


def test_hostile_names_are_recorded_as_given_and_break_nothing(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    from agents.tracing import custom_span

    odd = "evil\x00\n\u202eagent" + "x" * 5000
    agent = planner()
    agent.name = odd
    with RunContext(registry=registry) as a, trace(odd):
        Runner.run_sync(agent, "plan")
        with custom_span(odd):
            pass
    names = [r.metadata["name"] for r in registry.tree(a.run_id)[1:]]
    assert f"agent {odd}" in names
    assert odd in names


def test_a_second_agent_run_in_one_run_is_a_trace_of_its_own_under_it(
    recorder: Recorder, registry: SQLiteRunRegistry
) -> None:
    """A trace id names one trace: only the run's first agent run gets the run's."""
    with RunContext(registry=registry) as a:
        first, second = run_config(), run_config()
        Runner.run_sync(planner(), "plan a trip", run_config=first)
        Runner.run_sync(planner("second"), "and back", run_config=second)
    assert first.trace_id == f"trace_{a.run_id.hex}"
    assert second.trace_id is None  # the SDK mints its own
    one, two = recorder.traces
    assert one.trace_id == first.trace_id
    assert two.trace_id not in (None, first.trace_id)
    assert registry.get(a.run_id).external_ids == {"openai_trace": first.trace_id}
    (own,) = registry.by_external_id(two.trace_id)
    assert own.parent_id == a.run_id.value
    assert (own.metadata["name"], own.status) == ("trace Agent workflow", "ok")
    nodes = by_name(registry.tree(RunId(own.run_id))[1:])
    assert nodes["agent second"][0].parent_id == own.run_id
    assert "agent planner" not in nodes  # the first agent run is the run's, not this trace's
    top = by_name(registry.children(a.run_id))
    assert sorted(top) == ["agent planner", "trace Agent workflow"]


def test_concurrent_run_configs_of_one_run_hand_out_its_trace_id_once() -> None:
    with RunContext() as a:
        configs = configs_made_at_once()
    given = [c.trace_id for c in configs if c.trace_id is not None]
    assert given == [f"trace_{a.run_id.hex}"]


def configs_made_at_once() -> list[Any]:
    """Make 16 run_configs at once in threads of the current run."""
    barrier = threading.Barrier(16)
    made: list[Any] = []
    lock = threading.Lock()

    @in_current_run
    def make() -> None:
        barrier.wait()
        config = run_config()
        with lock:
            made.append(config)

    threads = [threading.Thread(target=make) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made
