"""Scaffolding shared by the tests of the agent SDKs (OpenAI Agents, Pydantic AI).

Their agents run offline under a guard that fails any connection to an address other than
127.0.0.1, in event loops the tests close, recording into a registry of their own; fifty
agents run at once in tasks and in threads to show no cross-talk. A test module imports the
fixtures it uses and names them in its ``__all__``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_run_id.registry import RunRecord, SQLiteRunRegistry

__all__ = [
    "by_name",
    "close_the_default_loop",
    "close_this_threads_loop",
    "in_tasks",
    "in_threads",
    "offline",
    "registry",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection to an address other than 127.0.0.1 (an SDK's exporter would)."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"the test tried to reach {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def close_this_threads_loop() -> None:
    """Close the event loop run_sync leaves set in this thread for its next call."""
    with warnings.catch_warnings():  # the policy API is deprecated from Python 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        try:
            loop = policy.get_event_loop()
        except RuntimeError:  # none set
            return
        loop.close()
        policy.set_event_loop(None)


@pytest.fixture(autouse=True)
def close_the_default_loop() -> Iterator[None]:
    """Close the main thread's loop after each test: a later asyncio.run() would orphan it."""
    yield
    close_this_threads_loop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteRunRegistry]:
    """A registry of the test's own, in a file."""
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    yield registry
    registry.close()


def by_name(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Group the records by the name in their metadata ("-" for none), in their order."""
    found: dict[str, list[RunRecord]] = {}
    for record in records:
        found.setdefault(record.metadata.get("name", "-"), []).append(record)
    return found


def in_tasks(one: Callable[[int], Awaitable[None]], count: int = 50) -> None:
    """Run ``one(0)`` to ``one(count - 1)`` at once, as tasks of one event loop."""

    async def many() -> None:
        await asyncio.gather(*(one(n) for n in range(count)))

    asyncio.run(many())


def in_threads(one: Callable[[int], None], count: int = 50) -> None:
    """Run ``one(0)`` to ``one(count - 1)`` at once, a thread each; raise the first failure.

    Each thread's event loop (an SDK's run_sync leaves one set) is closed when its call ends.
    """
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            one(n)
        except BaseException as exc:  # raised below, in the test's thread
            failures.append(exc)
        finally:
            close_this_threads_loop()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
