"""Steps: a framework's step recorded as a child run, started and ended wherever it is told."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_run_id import RunContext, RunId, annotate, current_run, current_run_id
from agent_run_id._steps import ReportedError, Step
from agent_run_id.registry import SQLiteRunRegistry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    yield registry
    registry.close()


def test_a_step_is_a_child_run_recorded_from_its_start_to_its_end(
    registry: SQLiteRunRegistry,
) -> None:
    with RunContext(registry=registry, session_id="chat-1", user_id="alice") as run:
        step = Step("tool search", metadata={"kind": "tool"})
        assert step.run_id.parent == run.run_id
        assert current_run_id() == run.run_id  # started, not entered
        running = registry.get(step.run_id)
        assert running.status == "running"
        assert running.parent_id == run.run_id.value
        assert running.session_id == "chat-1"  # inherited, as a nested run's is
        assert running.user_id is None  # the user is not
        assert running.metadata == {"name": "tool search", "kind": "tool"}
        step.finish()
        assert step.ended
    done = registry.get(step.run_id)
    assert (done.status, done.error) == ("ok", None)
    assert done.duration is not None


def test_a_step_finished_with_a_message_is_a_reported_error(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry):
        step = Step("tools/call search")
        step.finish("search failed: no index")
    record = registry.get(step.run_id)
    assert (record.status, record.error) == ("error", "ReportedError: search failed: no index")


def test_a_step_finished_with_an_exception_records_it_and_notes_the_step_on_it(
    registry: SQLiteRunRegistry,
) -> None:
    error = TimeoutError("hotel API timed out")
    with RunContext(registry=registry):
        step = Step("tool hotels")
        step.finish(error)
        step.finish()  # a second end is ignored
        step.finish(ValueError("later"))
    record = registry.get(step.run_id)
    assert (record.status, record.error) == ("error", "TimeoutError: hotel API timed out")
    assert getattr(error, "__notes__", None) == [f"run_id={step.run_id}"]


def test_reported_error_is_an_exception() -> None:
    assert issubclass(ReportedError, Exception)


def test_a_step_entered_makes_its_run_current_for_its_body(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    import agent_run_id.logging

    agent_run_id.logging.install()
    with RunContext(registry=registry) as run:
        step = Step("tool search")
        token = step.enter()
        assert current_run_id() == step.run_id
        with caplog.at_level(logging.INFO):
            logging.getLogger("tool").info("searching")
        nested = Step("model call")  # a step inside the entered one is its child
        assert nested.run_id.parent == step.run_id
        nested.finish()
        step.leave(token)
        assert current_run_id() == run.run_id
        step.finish()
    (record,) = [r for r in caplog.records if r.getMessage() == "searching"]
    assert record.run_id == step.run_id.value  # type: ignore[attr-defined]
    assert [r.run_id for r in registry.tree(run.run_id)] == [
        run.run_id.value,
        step.run_id.value,
        nested.run_id.value,
    ]


def test_leave_in_another_context_does_nothing() -> None:
    with RunContext() as run:
        step = Step("tool")
        token = step.enter()
        contextvars.copy_context().run(step.leave, token)
        assert current_run_id() == step.run_id  # still entered here
        step.leave(token)
        assert current_run_id() == run.run_id
        step.finish()


def test_a_step_given_its_parent_step_is_its_child_wherever_it_is_started(
    registry: SQLiteRunRegistry,
) -> None:
    with RunContext(registry=registry, session_id="chat-1") as run:
        chain = Step("chain agent")
    # started away from the run, as a callback may be: the parent says where it belongs
    tool = Step("tool search", parent=chain)
    tool.finish()
    chain.finish()
    assert tool.run_id.parent == chain.run_id
    assert tool.run_id.root == run.run_id
    assert registry.get(tool.run_id).session_id == "chat-1"
    assert [r.run_id for r in registry.tree(run.run_id)] == [
        run.run_id.value,
        chain.run_id.value,
        tool.run_id.value,
    ]


def test_a_step_given_a_parent_run_id_is_its_child(registry: SQLiteRunRegistry) -> None:
    parent = RunId.generate()
    with RunContext(registry=registry):
        step = Step("tool", parent=parent)
        step.finish()
    assert step.run_id.parent == parent
    assert registry.get(step.run_id).parent_id == parent.value


def test_a_step_outside_any_run_is_a_root_run() -> None:
    step = Step("tool")
    assert step.run_id.parent is None
    step.finish()


def test_a_step_records_its_external_ids_and_takes_more(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry):
        step = Step("tool", external_ids={"langchain_run": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"})
        step.annotate(task="search the web", external_ids={"langsmith_run": "ls-1"})
        step.finish()
        step.annotate(task="after the end: ignored")
    record = registry.get(step.run_id)
    assert record.external_ids == {
        "langchain_run": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "langsmith_run": "ls-1",
    }
    assert record.task == "search the web"


def test_a_bad_parent_raises_naming_it() -> None:
    with pytest.raises(TypeError, match="parent must be a Step, a RunId or None, got str"):
        Step("tool", parent="0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")  # type: ignore[arg-type]


def test_a_bad_external_id_raises_before_the_step_starts(registry: SQLiteRunRegistry) -> None:
    """Nothing recorded: a step that raised on its way in never stays 'running'."""
    with RunContext(registry=registry) as run:
        with pytest.raises(ValueError, match=r"external_ids\['pydantic_ai_run'\] is"):
            Step("agent", external_ids={"pydantic_ai_run": "has a space"})
        assert current_run_id() == run.run_id
    registry.flush()
    assert registry.children(run.run_id) == []


def test_the_callers_facts_are_untouched_by_a_steps_annotations() -> None:
    with RunContext(task="plan"):
        step = Step("tool")
        step.annotate(task="search")
        view = current_run()
        assert view is not None
        assert view.task == "plan"
        step.finish()
        assert repr(step).startswith(f"Step(run_id=RunId('{step.run_id}'), name='tool')")


def test_steps_of_concurrent_tasks_and_threads_never_mix(registry: SQLiteRunRegistry) -> None:
    """Each run's steps start in one task or thread and end in another, as callbacks may."""
    finished: list[tuple[RunId, Step]] = []
    lock = threading.Lock()

    def body(step: Step, run: RunId) -> None:
        token = step.enter()
        assert current_run_id() == step.run_id
        annotate(task=f"body of {run}")
        step.leave(token)
        assert current_run_id() == run

    async def agent(n: int) -> None:
        with RunContext(registry=registry) as run:
            steps = [Step(f"tool {n}-{i}") for i in range(3)]
            await asyncio.sleep(0)
            for step in steps:
                body(step, run.run_id)
            # ended by another task
            await asyncio.gather(*(asyncio.to_thread(step.finish) for step in steps))
            with lock:
                finished.extend((run.run_id, step) for step in steps)

    async def agents() -> None:
        await asyncio.gather(*(agent(n) for n in range(60)))

    def worker(n: int, barrier: threading.Barrier) -> None:
        with RunContext(registry=registry) as run:
            step = Step(f"tool {n}")
            barrier.wait()
            body(step, run.run_id)
            ender = threading.Thread(target=step.finish)
            ender.start()
            ender.join()
            with lock:
                finished.append((run.run_id, step))

    asyncio.run(agents())
    barrier = threading.Barrier(24)
    threads = [threading.Thread(target=worker, args=(n, barrier)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(finished) == 60 * 3 + 24
    for run, step in finished:
        record = registry.get(step.run_id)
        assert record.parent_id == run.value
        assert record.status == "ok"
        assert record.task == f"body of {run}"


def test_runs_tree_shows_a_steps_name_where_it_has_no_task(tmp_path: Path) -> None:
    from tests._cli_helpers import call

    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(registry=registry, task="plan a trip") as run:
        Step("tool hotels").finish("no rooms")
        named = Step("tool search")
        named.annotate(task="search the web")
        named.finish()
    registry.close()
    tree = call("runs", "tree", run.run_id.value, "--db", str(path))
    lines = tree.out.splitlines()
    assert "  plan a trip" in lines[0]
    assert "  tool hotels  ReportedError: no rooms" in lines[1]
    assert lines[2].endswith("  search the web")  # its task, given: not its name
