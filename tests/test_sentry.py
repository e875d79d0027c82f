"""agent_run_id.sentry: each event captured inside a run is tagged with that run, and only it."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.transport import Transport

import agent_run_id
from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id._types import Receive, Scope, Send
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.sentry import RunIdIntegration


class MemoryTransport(Transport):
    """Keep the events Sentry would send, instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def capture_envelope(self, envelope: Envelope) -> None:
        with self.lock:
            self.events.extend(item.payload.json for item in envelope.items if item.type == "event")  # type: ignore[misc]


def _init(transport: MemoryTransport, **options: Any) -> None:
    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=transport, **options)


@pytest.fixture
def transport() -> Iterator[MemoryTransport]:
    transport = MemoryTransport()
    _init(transport, integrations=[RunIdIntegration()])
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def _by_message(transport: MemoryTransport) -> dict[str, dict[str, Any]]:
    sentry_sdk.flush()
    # An exception's value ends with its notes (the run note among them): keyed by its first line.
    return {_message(e): e for e in transport.events}


def _message(event: dict[str, Any]) -> str:
    message = event.get("message") or event["exception"]["values"][-1]["value"]
    return str(message).splitlines()[0]


def test_event_inside_a_run_carries_the_run_tag_and_lineage(transport: MemoryTransport) -> None:
    with RunContext() as outer, RunContext() as inner:
        sentry_sdk.capture_message("inside")
    sentry_sdk.capture_message("outside")
    events = _by_message(transport)
    assert events["inside"]["tags"]["run_id"] == inner.run_id.value
    assert events["inside"]["contexts"]["agent_run"] == {
        "id": inner.run_id.value,
        "parent_id": outer.run_id.value,
        "root_id": outer.run_id.value,
    }
    assert "run_id" not in events["outside"].get("tags", {})
    assert "agent_run" not in events["outside"].get("contexts", {})


def test_captured_exception_inside_a_root_run_has_no_parent(transport: MemoryTransport) -> None:
    with RunContext() as run:
        try:
            raise KeyError("missing")
        except KeyError:
            sentry_sdk.capture_exception()
    (event,) = transport.events
    assert event["tags"]["run_id"] == run.run_id.value
    assert event["contexts"]["agent_run"] == {"id": run.run_id.value, "root_id": run.run_id.value}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes (PEP 678) are 3.11+")
def test_exception_that_escaped_its_run_is_tagged_from_its_note(
    transport: MemoryTransport,
) -> None:
    run_id = RunId.generate()
    try:
        try:
            with RunContext(run_id=run_id):
                raise ValueError("tool failed")
        except ValueError as exc:
            raise RuntimeError("request failed") from exc
    except RuntimeError:
        sentry_sdk.capture_exception()
    (event,) = transport.events
    assert event["tags"]["run_id"] == run_id.value
    # The note names the run alone: no root is made up from it.
    assert event["contexts"]["agent_run"] == {"id": run_id.value}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes (PEP 678) are 3.11+")
def test_a_users_own_run_id_note_is_not_taken_for_the_runs(transport: MemoryTransport) -> None:
    """Only the note the library writes counts: a user's uppercase one does not name the run."""
    run_id = RunId.generate()
    try:
        with RunContext(run_id=run_id):
            error = ValueError("tool failed")
            error.add_note(f"run_id={RunId.generate().value.upper()}")  # the user's, first
            raise error
    except ValueError:
        sentry_sdk.capture_exception()
    (event,) = transport.events
    assert event["tags"]["run_id"] == run_id.value
    assert event["contexts"]["agent_run"] == {"id": run_id.value}


def test_exception_without_a_note_outside_any_run_is_left_alone(
    transport: MemoryTransport,
) -> None:
    error = ValueError("plain")
    if sys.version_info >= (3, 11):
        error.add_note("retried twice")
        error.add_note("run_id=not-a-uuid")
    sentry_sdk.capture_exception(error)
    (event,) = transport.events
    assert "run_id" not in event.get("tags", {})


def test_a_run_id_tag_set_by_the_application_is_kept(transport: MemoryTransport) -> None:
    with RunContext(), sentry_sdk.new_scope() as scope:
        scope.set_tag("run_id", "mine")
        sentry_sdk.capture_message("tagged")
    (event,) = transport.events
    assert event["tags"]["run_id"] == "mine"


async def test_concurrent_tasks_sharing_an_isolation_scope_tag_only_their_own_events(
    transport: MemoryTransport,
) -> None:
    async def agent(n: int) -> str:
        async with RunContext() as run:
            await asyncio.sleep(0)
            sentry_sdk.capture_message(f"task {n}")
            await asyncio.sleep(0)
            try:
                raise ValueError(f"task {n} error")
            except ValueError:
                sentry_sdk.capture_exception()
            return run.run_id.value

    runs = await asyncio.gather(*(agent(n) for n in range(40)))
    events = _by_message(transport)
    assert len(events) == 80
    for n, run in enumerate(runs):
        assert events[f"task {n}"]["tags"]["run_id"] == run
        assert events[f"task {n} error"]["tags"]["run_id"] == run


def test_concurrent_threads_tag_only_their_own_events(transport: MemoryTransport) -> None:
    barrier = threading.Barrier(16)

    def agent(n: int) -> str:
        with RunContext() as run:
            barrier.wait(timeout=10)
            sentry_sdk.capture_message(f"thread {n}")
            return run.run_id.value

    with ThreadPoolExecutor(16) as pool:
        runs = list(pool.map(agent, range(16)))
    events = _by_message(transport)
    for n, run in enumerate(runs):
        assert events[f"thread {n}"]["tags"]["run_id"] == run
        assert events[f"thread {n}"]["contexts"]["agent_run"]["id"] == run


async def _fail(scope: Scope, receive: Receive, send: Send) -> None:
    run = current_run_id()
    assert run is not None
    raise RuntimeError(f"handler failed in {run.value}")


def _sentry_app() -> SentryAsgiMiddleware:
    # Sentry's middleware outermost: it forks an isolation scope per request and captures the
    # handler's error after our middleware has left the run.
    return SentryAsgiMiddleware(RunIdMiddleware(_fail, incoming="child"))


async def _get(app: SentryAsgiMiddleware, sent: list[RunId]) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        await asyncio.gather(*(client.get("/", headers={"X-Run-Id": run.value}) for run in sent))


async def test_error_captured_by_sentrys_asgi_middleware_after_the_run_keeps_its_lineage(
    transport: MemoryTransport,
) -> None:
    sent = RunId.generate()
    await _get(_sentry_app(), [sent])
    (event,) = _by_message(transport).values()
    child = _message(event).rsplit(" ", 1)[1]
    assert event["tags"]["run_id"] == child
    assert event["contexts"]["agent_run"] == {
        "id": child,
        "parent_id": sent.value,
        "root_id": sent.value,
    }


async def test_concurrent_requests_each_tag_their_own_run_on_their_forked_scope(
    transport: MemoryTransport,
) -> None:
    sent = [RunId.generate() for _ in range(20)]
    await _get(_sentry_app(), sent)
    events = list(_by_message(transport).values())
    assert len(events) == 20
    parents = set()
    for event in events:
        child = _message(event).rsplit(" ", 1)[1]
        assert event["tags"]["run_id"] == child
        parents.add(event["contexts"]["agent_run"]["parent_id"])
    assert parents == {run.value for run in sent}
    sentry_sdk.capture_message("after the requests")
    (after,) = [e for e in transport.events if e.get("message") == "after the requests"]
    assert "run_id" not in after.get("tags", {})


def test_a_nested_run_tags_its_events_over_the_run_on_the_scope(
    transport: MemoryTransport,
) -> None:
    with sentry_sdk.isolation_scope(), RunContext() as outer:
        with RunContext() as inner:
            sentry_sdk.capture_message("inner")
        sentry_sdk.capture_message("outer")
    events = _by_message(transport)
    assert events["inner"]["tags"]["run_id"] == inner.run_id.value
    assert events["inner"]["contexts"]["agent_run"]["parent_id"] == outer.run_id.value
    assert events["outer"]["tags"]["run_id"] == outer.run_id.value


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes (PEP 678) are 3.11+")
def test_an_error_of_a_nested_run_captured_after_it_is_tagged_from_its_note(
    transport: MemoryTransport,
) -> None:
    with sentry_sdk.isolation_scope() as scope:
        try:
            with RunContext() as outer, RunContext() as inner:
                raise ValueError("nested")
        except ValueError:
            sentry_sdk.capture_exception()
        scope.set_tag("run_id", "mine")
        try:
            with RunContext():
                raise KeyError("tagged")
        except KeyError:
            sentry_sdk.capture_exception()
    events = _by_message(transport)
    assert outer.run_id != inner.run_id
    assert events["nested"]["tags"]["run_id"] == inner.run_id.value
    assert events["nested"]["contexts"]["agent_run"] == {"id": inner.run_id.value}
    assert events["'tagged'"]["tags"]["run_id"] == "mine"


def test_a_client_without_the_integration_gets_no_run_tag(transport: MemoryTransport) -> None:
    other = MemoryTransport()
    _init(other)
    with RunContext():
        sentry_sdk.capture_message("untagged")
    (event,) = other.events
    assert "run_id" not in event.get("tags", {})


def test_public_surface_is_the_integration() -> None:
    import agent_run_id.sentry as run_sentry

    assert run_sentry.__all__ == ["RunIdIntegration"]
    assert RunIdIntegration.identifier == "agent_run_id"


# --- sessions and users ------------------------------------------------------------------------


@pytest.fixture
def user_transport() -> Iterator[MemoryTransport]:
    transport = MemoryTransport()
    _init(transport, integrations=[RunIdIntegration(user=True)])
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def test_events_carry_the_session_tag_but_not_the_user_by_default(
    transport: MemoryTransport,
) -> None:
    with RunContext(session_id="chat-42", user_id="u-7") as run:
        sentry_sdk.capture_message("in a session")
    with RunContext():
        sentry_sdk.capture_message("no session")
    events = _by_message(transport)
    assert events["in a session"]["tags"]["session_id"] == "chat-42"
    assert events["in a session"]["contexts"]["agent_run"] == {
        "id": run.run_id.value,
        "root_id": run.run_id.value,
        "session_id": "chat-42",
    }
    assert "user" not in events["in a session"]
    assert "session_id" not in events["no session"]["tags"]


def test_the_user_when_asked_and_the_applications_own_kept(
    user_transport: MemoryTransport,
) -> None:
    with RunContext(user_id="u-7"):
        sentry_sdk.capture_message("ours")
    with sentry_sdk.isolation_scope() as scope, RunContext(session_id="chat-1", user_id="u-8"):
        scope.set_user({"id": "app-user"})
        scope.set_tag("session_id", "app-session")
        sentry_sdk.capture_message("theirs")
    events = _by_message(user_transport)
    assert events["ours"]["user"]["id"] == "u-7"
    assert events["theirs"]["user"]["id"] == "app-user"
    assert events["theirs"]["tags"]["session_id"] == "app-session"


def test_annotate_reaches_the_events_that_follow(user_transport: MemoryTransport) -> None:
    with RunContext():
        sentry_sdk.capture_message("before")
        agent_run_id.annotate(session_id="chat-9", user_id="u-9")
        sentry_sdk.capture_message("after")
    events = _by_message(user_transport)
    assert "session_id" not in events["before"]["tags"]
    assert "user" not in events["before"]
    assert events["after"]["tags"]["session_id"] == "chat-9"
    assert events["after"]["user"] == {"id": "u-9"}


def test_a_nested_run_tags_its_own_session_over_the_scopes(
    user_transport: MemoryTransport,
) -> None:
    with sentry_sdk.isolation_scope(), RunContext(session_id="outer", user_id="u-1"):
        with RunContext(session_id="inner"):
            sentry_sdk.capture_message("inner")
        sentry_sdk.capture_message("outer")
    events = _by_message(user_transport)
    assert events["inner"]["tags"]["session_id"] == "inner"
    assert events["outer"]["tags"]["session_id"] == "outer"
    assert events["inner"]["user"]["id"] == "u-1"  # the request's user, on its scope


async def _annotate_then_fail(scope: Scope, receive: Receive, send: Send) -> None:
    agent_run_id.annotate(session_id="chat-42", user_id="u-42")  # after authentication, say
    raise RuntimeError("handler failed after annotate")


async def test_an_error_captured_after_the_run_left_keeps_the_annotated_session_and_user(
    user_transport: MemoryTransport,
) -> None:
    app = SentryAsgiMiddleware(RunIdMiddleware(_annotate_then_fail))
    client_transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=client_transport, base_url="http://app") as client:
        response = await client.get("/")
    assert response.status_code == 500
    (event,) = _by_message(user_transport).values()
    assert event["tags"]["session_id"] == "chat-42"
    assert event["contexts"]["agent_run"]["session_id"] == "chat-42"
    assert event["user"]["id"] == "u-42"


async def test_concurrent_tasks_tag_their_own_session_and_user(
    user_transport: MemoryTransport,
) -> None:
    async def agent(number: int) -> None:
        async with RunContext(session_id=f"chat-{number}"):
            await asyncio.sleep(0)
            agent_run_id.annotate(user_id=f"user-{number}")
            await asyncio.sleep(0)
            sentry_sdk.capture_message(f"user-{number} chat-{number}")

    await asyncio.gather(*(agent(number) for number in range(200)))
    events = _by_message(user_transport)
    assert len(events) == 200
    for message, event in events.items():
        user, session = message.split(" ")
        assert (event["user"]["id"], event["tags"]["session_id"]) == (user, session)


def test_concurrent_threads_tag_their_own_session_and_user(
    user_transport: MemoryTransport,
) -> None:
    barrier = threading.Barrier(50)

    def agent(number: int) -> None:
        barrier.wait(timeout=30)
        for turn in range(4):
            with RunContext(session_id=f"chat-{number}-{turn}", user_id=f"user-{number}"):
                sentry_sdk.capture_message(f"user-{number} chat-{number}-{turn}")

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(agent, range(50)))
    events = _by_message(user_transport)
    assert len(events) == 200
    for message, event in events.items():
        user, session = message.split(" ")
        assert (event["user"]["id"], event["tags"]["session_id"]) == (user, session)


def test_the_user_option_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="user must be True or False, got 'yes'"):
        RunIdIntegration(user="yes")  # type: ignore[arg-type]
