"""agent_run_id.sentry: each event captured inside a run is tagged with that run, and only it."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from agent_run_id import RunContext, RunId
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
    return {e.get("message") or e["exception"]["values"][-1]["value"]: e for e in transport.events}


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
    assert event["contexts"]["agent_run"]["id"] == run_id.value


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
