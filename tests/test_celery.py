"""agent_run_id.celery: tasks run in the run they were sent from, on a real in-memory worker."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
from celery import Celery, Task, chain, signals  # type: ignore[import-untyped]
from celery.contrib.testing.worker import start_worker  # type: ignore[import-untyped]
from celery.exceptions import Ignore  # type: ignore[import-untyped]
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import agent_run_id.celery as run_celery
from agent_run_id import (
    RunContext,
    RunId,
    add_run_observer,
    annotate,
    current_run,
    current_run_id,
    remove_run_observer,
)
from agent_run_id import otel as run_otel

TIMEOUT = 20


def _lineage() -> list[str | None]:
    run = current_run_id()
    assert run is not None, "the task ran outside any run"
    return [run.value, None if run.parent is None else run.parent.value, run.root.value]


def _facts() -> list[str | None]:
    run = current_run()
    assert run is not None, "the task ran outside any run"
    return [run.session_id, run.user_id]


def _make_app() -> Celery:
    app = Celery(f"test-{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://")
    app.conf.update(
        task_default_queue=f"q-{uuid.uuid4().hex}",  # the memory broker is shared in a process
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options={"polling_interval": 0.01},
    )

    @app.task(name="lineage", shared=False)
    def lineage() -> list[str | None]:
        return _lineage()

    @app.task(name="facts", shared=False)
    def facts() -> list[str | None]:
        return [*_lineage(), *_facts()]

    @app.task(name="facts_step", shared=False)
    def facts_step(seen: list[list[str | None]]) -> list[list[str | None]]:
        return [*seen, _facts()]

    @app.task(name="flaky_facts", shared=False, bind=True, max_retries=1)
    def flaky_facts(self: Any, seen: list[list[str | None]]) -> list[list[str | None]]:
        seen = [*seen, _facts()]
        if self.request.retries == 0:
            raise self.retry(args=(seen,), countdown=0)
        return seen

    @app.task(name="step", shared=False)
    def step(seen: list[list[str | None]]) -> list[list[str | None]]:
        return [*seen, _lineage()]

    @app.task(name="boom", shared=False)
    def boom() -> None:
        raise ValueError("tool failed")

    @app.task(name="flaky", shared=False, bind=True, max_retries=1)
    def flaky(self: Any, seen: list[list[str | None]]) -> list[list[str | None]]:
        seen = [*seen, _lineage()]
        if self.request.retries == 0:
            raise self.retry(args=(seen,), countdown=0)
        return seen

    @app.task(name="spawn", shared=False)
    def spawn() -> tuple[list[str | None], str]:
        return _lineage(), app.tasks["lineage"].delay().id

    @app.task(name="ignored", shared=False, bind=True)
    def ignored(self: Any) -> None:
        raise Ignore()

    @app.task(name="own_base", shared=False, base=OwnBase)
    def own_base() -> list[str | None]:
        return _lineage()

    @app.task(name="own_call", shared=False, base=OwnCall)
    def own_call() -> list[str | None]:
        return _lineage()

    return app


class OwnBase(Task):  # type: ignore[misc]
    """A task base class of the application's own, not derived from the app's Task."""


class OwnCall(Task):  # type: ignore[misc]
    """A base class with a __call__ of its own (Flask's app-context recipe calls self.run)."""

    calls: ClassVar[list[RunId | None]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        OwnCall.calls.append(current_run_id())
        return self.run(*args, **kwargs)


class AfterTask:
    """What is current in the worker thread after each task (the result is stored before)."""

    def __init__(self, expected: int) -> None:
        self.runs: list[RunId | None] = []
        self.expected = expected
        self.done = threading.Event()

    def __call__(self, **_: Any) -> None:
        self.runs.append(current_run_id())
        if len(self.runs) == self.expected:
            self.done.set()

    def wait(self) -> list[RunId | None]:
        assert self.done.wait(TIMEOUT), self.runs
        return self.runs


class Receivers:
    """Test receivers, connected after the installation's, disconnected after the test."""

    def __init__(self) -> None:
        self.connected: list[tuple[Any, Callable[..., None]]] = []

    def connect(self, signal: Any, receiver: Callable[..., None]) -> None:
        signal.connect(receiver, weak=False)
        self.connected.append((signal, receiver))

    def close(self) -> None:
        for signal, receiver in self.connected:
            signal.disconnect(receiver)


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    receivers = Receivers()
    yield receivers
    receivers.close()


@pytest.fixture(scope="module")
def worker_app() -> Iterator[Celery]:
    """One app and one worker (four threads) for the module: a worker takes seconds to stop."""
    app = _make_app()
    # Installed before the worker starts, as the docs say: the worker picks how to call each
    # task when it starts. Each test installs again with its own options.
    run_celery.install(app)

    @app.task(name="after_install", shared=False)
    def after_install() -> list[str | None]:
        return _lineage()

    # start_worker sets the root logger's level for the process (to ERROR): put it back after.
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        with start_worker(
            app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=TIMEOUT
        ):
            yield app
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


@pytest.fixture
def app(worker_app: Celery) -> Iterator[Celery]:
    yield worker_app
    run_celery.uninstall(worker_app)


def test_task_sent_inside_a_run_runs_in_that_run(app: Celery) -> None:
    run_celery.install(app)
    with RunContext() as run:
        result = app.tasks["lineage"].delay()
    assert result.get(timeout=TIMEOUT) == [run.run_id.value, None, run.run_id.value]


def test_child_mode_runs_the_task_in_a_child_of_the_senders_run(app: Celery) -> None:
    run_celery.install(app, mode="child")
    with RunContext() as run:
        result = app.tasks["lineage"].delay()
    task_run, parent, root = result.get(timeout=TIMEOUT)
    assert task_run != run.run_id.value
    assert parent == run.run_id.value
    assert root == run.run_id.value


@pytest.mark.parametrize("mode", ["continue", "child"])
def test_a_chain_of_three_tasks_keeps_the_lineage(app: Celery, mode: str) -> None:
    run_celery.install(app, mode=mode)
    step = app.tasks["step"]
    with RunContext() as run:
        result = chain(step.s([]), step.s(), step.s()).apply_async()
    steps = result.get(timeout=TIMEOUT)
    sender = run.run_id.value
    assert len(steps) == 3
    assert all(root == sender for _, _, root in steps)
    if mode == "continue":
        assert [task_run for task_run, _, _ in steps] == [sender] * 3
    else:
        (a, a_parent, _), (b, b_parent, _), (c, c_parent, _) = steps
        assert (a_parent, b_parent, c_parent) == (sender, a, b)
        assert len({sender, a, b, c}) == 4


def test_tasks_sent_outside_any_run_each_get_a_new_root_run(app: Celery) -> None:
    run_celery.install(app, mode="child")
    first = app.tasks["lineage"].delay().get(timeout=TIMEOUT)
    second = app.tasks["lineage"].delay().get(timeout=TIMEOUT)
    assert first[1] is None
    assert first[0] == first[2]
    assert second[0] != first[0]


@pytest.mark.parametrize("name", ["after_install", "own_base", "own_call"])
def test_tasks_defined_after_install_or_with_their_own_base_run_in_the_run(
    app: Celery, name: str
) -> None:
    run_celery.install(app)
    OwnCall.calls.clear()
    with RunContext() as run:
        result = app.tasks[name].delay()
    assert result.get(timeout=TIMEOUT) == [run.run_id.value, None, run.run_id.value]
    if name == "own_call":
        assert OwnCall.calls == [run.run_id]


def test_a_task_sent_from_a_task_body_runs_in_a_child_of_its_run(app: Celery) -> None:
    run_celery.install(app, mode="child")
    with RunContext() as run:
        (spawner, _, _), spawned_id = app.tasks["spawn"].delay().get(timeout=TIMEOUT)
    spawned, parent, root = app.AsyncResult(spawned_id).get(timeout=TIMEOUT)
    assert (parent, root) == (spawner, run.run_id.value)
    assert spawned != spawner


def test_a_task_called_directly_is_a_plain_call(app: Celery) -> None:
    run_celery.install(app, mode="child")
    with RunContext() as run:
        assert app.tasks["lineage"]() == [run.run_id.value, None, run.run_id.value]


def test_an_uninstalled_app_runs_its_tasks_as_celery_does(app: Celery) -> None:
    run_celery.install(app)
    run_celery.uninstall(app)
    outcome = app.tasks["lineage"].apply()
    assert outcome.failed()
    assert "the task ran outside any run" in str(outcome.result)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_otel.install(tracer_provider=provider, run_spans=True)
    try:
        yield exporter
    finally:
        run_otel.uninstall()
        provider.shutdown()


def test_a_failing_task_is_a_failed_run_and_its_stored_traceback_names_the_run(
    app: Celery, exporter: InMemorySpanExporter
) -> None:
    run_celery.install(app, mode="child")
    ended: list[BaseException | None] = []

    def observer(run_id: RunId, context: RunContext) -> Callable[[BaseException | None], None]:
        return ended.append

    add_run_observer(observer)
    try:
        with RunContext():
            result = app.tasks["boom"].delay()
        with pytest.raises(ValueError, match="tool failed"):
            result.get(timeout=TIMEOUT)
    finally:
        remove_run_observer(observer)
    (error,) = [exc for exc in ended if exc is not None]
    assert isinstance(error, ValueError)
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent boom"]
    assert span.status.status_code is StatusCode.ERROR
    task_run = (span.attributes or {})["agent_run.id"]
    if sys.version_info >= (3, 11):
        assert f"run_id={task_run}" in result.traceback


def test_retry_and_ignore_end_the_run_without_an_error(
    app: Celery, receivers: Receivers, exporter: InMemorySpanExporter
) -> None:
    """Celery does not count them as failures (no task_failure): nor does the run."""
    run_celery.install(app)
    after = AfterTask(expected=3)  # two attempts of flaky, one of ignored
    receivers.connect(signals.task_postrun, after)
    with RunContext():
        app.tasks["flaky"].delay([])
        app.tasks["ignored"].delay()
    after.wait()
    spans = [s for s in exporter.get_finished_spans() if s.name != "invoke_agent"]
    assert sorted(s.name for s in spans) == ["invoke_agent flaky"] * 2 + ["invoke_agent ignored"]
    assert {s.status.status_code for s in spans} == {StatusCode.UNSET}


def test_a_signal_based_instrumentation_around_the_task_leaves_no_run_behind(
    app: Celery, receivers: Receivers, exporter: InMemorySpanExporter
) -> None:
    """OpenTelemetry's Celery instrumentation attaches a context in prerun, detaches in postrun."""
    run_celery.install(app)
    tokens: dict[str, object] = {}
    left: list[dict[str, object]] = []
    done = threading.Event()

    def prerun(task_id: str, **_: Any) -> None:
        tokens[task_id] = otel_context.attach(baggage.set_baggage("theirs", "1", Context()))

    def postrun(task_id: str, **_: Any) -> None:
        otel_context.detach(tokens.pop(task_id))  # type: ignore[arg-type]
        left.append(dict(baggage.get_all()))
        done.set()

    receivers.connect(signals.task_prerun, prerun)
    receivers.connect(signals.task_postrun, postrun)
    with RunContext() as run:
        result = app.tasks["lineage"].delay()
    assert result.get(timeout=TIMEOUT)[0] == run.run_id.value
    assert done.wait(TIMEOUT)
    assert left == [{}]


def test_a_failing_task_notes_its_run_and_the_worker_leaves_it(
    app: Celery, receivers: Receivers
) -> None:
    run_celery.install(app)
    failures: list[BaseException] = []
    after = AfterTask(expected=1)
    receivers.connect(signals.task_failure, lambda exception, **_: failures.append(exception))
    receivers.connect(signals.task_postrun, after)
    with RunContext() as run:
        result = app.tasks["boom"].delay()
    with pytest.raises(ValueError, match="tool failed"):
        result.get(timeout=TIMEOUT)
    assert after.wait() == [None]  # task_failure comes before task_postrun
    (error,) = failures
    if sys.version_info >= (3, 11):
        assert error.__notes__ == [f"run_id={run.run_id.value}"]


@pytest.mark.parametrize("mode", ["continue", "child"])
def test_a_retried_task_runs_again_from_the_same_run(
    app: Celery, receivers: Receivers, mode: str
) -> None:
    run_celery.install(app, mode=mode)
    after = AfterTask(expected=2)
    receivers.connect(signals.task_postrun, after)
    with RunContext() as run:
        result = app.tasks["flaky"].delay([])
    first, second = result.get(timeout=TIMEOUT)
    sender = run.run_id.value
    if mode == "continue":
        assert first == second == [sender, None, sender]
    else:
        assert first[1] == second[1] == sender
        assert first[0] != second[0]
    assert after.wait() == [None, None]


def test_concurrent_senders_and_worker_threads_keep_runs_apart(app: Celery) -> None:
    run_celery.install(app)
    barrier = threading.Barrier(12)

    def send(_: int) -> tuple[str, str]:
        with RunContext() as run:
            barrier.wait(timeout=TIMEOUT)
            result = app.tasks["lineage"].delay()
        return run.run_id.value, result.get(timeout=TIMEOUT)[0]

    with ThreadPoolExecutor(12) as pool:
        pairs = list(pool.map(send, range(12)))
    assert all(sent == ran for sent, ran in pairs)
    assert len({sent for sent, _ in pairs}) == 12


async def test_concurrent_asyncio_tasks_each_send_their_own_run(app: Celery) -> None:
    run_celery.install(app)

    async def agent() -> tuple[str, Any]:
        async with RunContext() as run:
            await asyncio.sleep(0)
            result = app.tasks["lineage"].delay()
            await asyncio.sleep(0)
            return run.run_id.value, result

    sent = await asyncio.gather(*(agent() for _ in range(20)))
    for run, result in sent:
        assert (await asyncio.to_thread(result.get, timeout=TIMEOUT))[0] == run


@pytest.mark.parametrize("mode", ["continue", "child"])
def test_an_eager_task_inside_a_run_runs_in_it_or_in_its_child(app: Celery, mode: str) -> None:
    run_celery.install(app, mode=mode)
    with RunContext() as run:
        task_run, parent, root = app.tasks["lineage"].apply().get(timeout=TIMEOUT)
        assert current_run_id() == run.run_id
    if mode == "continue":
        assert task_run == run.run_id.value
    else:
        assert parent == run.run_id.value
    assert root == run.run_id.value


def test_uninstalled_app_sends_no_run_headers(app: Celery, receivers: Receivers) -> None:
    published: list[dict[str, Any]] = []
    receivers.connect(signals.before_task_publish, lambda headers, **_: published.append(headers))
    run_celery.install(app)
    run_celery.uninstall(app)
    with RunContext(), app.connection_for_write() as connection:
        app.tasks["lineage"].apply_async(connection=connection)
    assert "X-Run-Id" not in published[0]


def test_tasks_of_another_app_are_left_alone(app: Celery) -> None:
    run_celery.install(app)
    other = _make_app()
    outcome = other.tasks["lineage"].apply()
    assert outcome.failed()
    assert "the task ran outside any run" in str(outcome.result)


def test_install_rejects_a_bad_app_or_mode(app: Celery) -> None:
    with pytest.raises(TypeError, match="app must be a Celery app, got str"):
        run_celery.install("app")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be 'continue' or 'child', got 'fork'"):
        run_celery.install(app, mode="fork")


def test_a_message_without_a_header_dict_is_sent_as_it_is(app: Celery) -> None:
    """Task protocol 1 has no message headers: nothing to add the run to, nothing fails."""
    run_celery.install(app)
    with RunContext():
        run_celery._installed[id(app)].publish(sender="lineage", headers=None)


def test_public_surface_is_install_and_uninstall() -> None:
    assert run_celery.__all__ == ["install", "uninstall"]


# The session, and the user only when opted in


def test_the_task_runs_with_the_senders_session_and_without_its_user(
    app: Celery, receivers: Receivers
) -> None:
    published: list[dict[str, Any]] = []
    receivers.connect(signals.before_task_publish, lambda headers, **_: published.append(headers))
    run_celery.install(app)
    with RunContext(session_id="chat-42", user_id="user-7") as run:
        result = app.tasks["facts"].delay()
    value = run.run_id.value
    assert result.get(timeout=TIMEOUT) == [value, None, value, "chat-42", None]
    assert published[0]["X-Session-Id"] == "chat-42"
    assert "X-User-Id" not in published[0]


@pytest.mark.parametrize("mode", ["continue", "child"])
def test_send_user_gives_the_task_the_senders_user_too(app: Celery, mode: str) -> None:
    run_celery.install(app, mode=mode, send_user=True)
    with RunContext(session_id="chat-42", user_id="user-7"):
        facts = app.tasks["facts"].delay().get(timeout=TIMEOUT)
    assert facts[3:] == ["chat-42", "user-7"]
    with RunContext(user_id="Jane Doe"):  # no header can carry it: left out, the task runs
        assert app.tasks["facts"].delay().get(timeout=TIMEOUT)[3:] == [None, None]


def test_a_session_annotated_before_sending_goes_with_the_message(app: Celery) -> None:
    run_celery.install(app)
    with RunContext():
        annotate(session_id="chat-late")
        assert app.tasks["facts"].delay().get(timeout=TIMEOUT)[3] == "chat-late"


def test_a_chain_and_a_retry_keep_the_session_and_the_user(app: Celery) -> None:
    run_celery.install(app, mode="child", send_user=True)
    step = app.tasks["facts_step"]
    with RunContext(session_id="chat-42", user_id="user-7"):
        steps = chain(step.s([]), step.s(), step.s()).apply_async()
        retried = app.tasks["flaky_facts"].delay([])
    assert steps.get(timeout=TIMEOUT) == [["chat-42", "user-7"]] * 3
    assert retried.get(timeout=TIMEOUT) == [["chat-42", "user-7"]] * 2


@pytest.mark.parametrize(
    "session", ["chat 42", "a,b", "x" * 129, "chat-42\r\nX-Evil: 1", "jürgen", 42]
)
def test_a_message_with_a_bad_session_runs_without_one(app: Celery, session: object) -> None:
    """Sent outside any run, the caller's header goes as it is; the worker takes it as absent."""
    run_celery.install(app, send_user=True)
    good = {"X-Session-Id": "chat-9", "X-User-Id": "user-9"}
    facts = app.tasks["facts"].apply_async(headers=good).get(timeout=TIMEOUT)
    assert facts[3:] == ["chat-9", "user-9"]
    bad = {"X-Session-Id": session, "X-User-Id": session}
    facts = app.tasks["facts"].apply_async(headers=bad).get(timeout=TIMEOUT)
    assert facts[3:] == [None, None]


def test_an_eager_task_inherits_the_session_of_the_run_it_is_called_in(app: Celery) -> None:
    run_celery.install(app, mode="child")
    with RunContext(session_id="chat-42"):
        assert app.tasks["facts"].apply().get(timeout=TIMEOUT)[3] == "chat-42"


def test_50_sender_threads_each_give_their_tasks_their_own_session(app: Celery) -> None:
    run_celery.install(app, send_user=True)
    barrier = threading.Barrier(50)

    def send(i: int) -> tuple[list[str | None], list[str | None]]:
        with RunContext(session_id=f"chat-{i}", user_id=f"user-{i}") as run:
            barrier.wait(timeout=TIMEOUT)
            result = app.tasks["facts"].delay()
        value = run.run_id.value
        return [value, None, value, f"chat-{i}", f"user-{i}"], result.get(timeout=TIMEOUT)

    with ThreadPoolExecutor(50) as pool:
        pairs = list(pool.map(send, range(50)))
    assert [got for _, got in pairs] == [sent for sent, _ in pairs]


async def test_200_asyncio_tasks_each_send_their_own_session(app: Celery) -> None:
    run_celery.install(app)

    async def agent(i: int) -> tuple[str, Any]:
        async with RunContext(session_id=f"chat-{i}"):
            await asyncio.sleep(0)
            result = app.tasks["facts"].delay()
            await asyncio.sleep(0)
            return f"chat-{i}", result

    sent = await asyncio.gather(*(agent(i) for i in range(200)))
    got = await asyncio.gather(
        *(asyncio.to_thread(result.get, timeout=TIMEOUT) for _, result in sent)
    )
    assert [facts[3] for facts in got] == [session for session, _ in sent]


def test_install_rejects_a_send_user_that_is_not_a_bool(app: Celery) -> None:
    with pytest.raises(TypeError, match=r"^agent_run_id.celery.install: send_user must be True"):
        run_celery.install(app, send_user=1)  # type: ignore[arg-type]
