"""A header repeated thousands of times costs time linear in its copies, on every inbound path.

One request with 20,000 copies of ``X-Run-Id`` must never stall a server: each path that reads
repeated run headers (the ASGI and WSGI middleware, the OpenTelemetry propagator) is timed at
2,000 and 20,000 copies. Linear work costs about ten times as much for ten times the copies;
joining the copies one by one, as the ASGI middleware once did, cost over a hundred times.
Each figure is the best of several runs, so that a busy machine cannot fail the test.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from agent_run_id.asgi import RunIdMiddleware as AsgiRunIdMiddleware
from agent_run_id.otel import RunIdPropagator
from agent_run_id.wsgi import ENVIRON_KEY
from agent_run_id.wsgi import RunIdMiddleware as WsgiRunIdMiddleware

from ._inbound_helpers import RUN_A

NAMES = (b"x-run-id", b"x-parent-run-id", b"x-root-run-id")
# Linear is ten; a busy machine's noise gets some room; quadratic would be a hundred.
MOST = 20
BUDGET = 1.0  # seconds for 20,000 copies of each header, on a slow machine


def best_of(work: Callable[[], object], runs: int = 5) -> float:
    """The shortest CPU time of ``runs`` runs of ``work`` in this thread, in seconds.

    CPU time, not the wall clock: on a small busy machine a longer run is preempted more often,
    which would read as a cost growing faster than the work. The collector waits too.
    """
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            start = time.thread_time()
            work()
            best = min(best, time.thread_time() - start)
    finally:
        gc.enable()
    return best


def copies(count: int, same: bool) -> list[str]:
    return [RUN_A if same else str(uuid.uuid4()) for _ in range(count)]


def asgi_request(values: list[str]) -> Callable[[], dict[str, Any]]:
    """A request through the ASGI middleware with each run header repeated as ``values``."""
    headers = [(name, value.encode()) for value in values for name in NAMES]
    sent: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        sent.update(message)

    middleware = AsgiRunIdMiddleware(app)

    def run() -> dict[str, Any]:
        scope = {"type": "http", "headers": list(headers)}
        asyncio.run(middleware(scope, None, send))  # type: ignore[arg-type]
        return dict(sent["headers"])

    return run


def wsgi_request(values: list[str]) -> Callable[[], dict[str, Any]]:
    """A request through the WSGI middleware, the copies joined as WSGI servers join them."""
    joined = ",".join(values)
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    middleware = WsgiRunIdMiddleware(app)

    def run() -> dict[str, Any]:
        environ = {f"HTTP_X_{key}": joined for key in ("RUN_ID", "PARENT_RUN_ID", "ROOT_RUN_ID")}
        body = middleware(environ, lambda *args: None)
        body.close()  # type: ignore[attr-defined]
        return seen

    return run


def propagator_extract(values: list[str]) -> Callable[[], object]:
    """The OpenTelemetry propagator reading a carrier whose run headers hold every copy."""
    carrier = {name.decode(): list(values) for name in NAMES}
    propagator = RunIdPropagator()

    def run() -> object:
        return propagator.extract(carrier, getter=ListGetter())

    return run


class ListGetter:
    """A getter that returns a carrier's list of values as it is, as gRPC metadata has them."""

    def get(self, carrier: dict[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key)

    def keys(self, carrier: dict[str, list[str]]) -> list[str]:
        return list(carrier)


PATHS = {"asgi": asgi_request, "wsgi": wsgi_request, "otel": propagator_extract}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("same", [True, False], ids=["same-id", "distinct-ids"])
def test_twenty_thousand_copies_cost_linear_time_and_well_under_a_second(
    path: str, same: bool
) -> None:
    small = PATHS[path](copies(2_000, same))
    large = PATHS[path](copies(20_000, same))
    small_time, large_time = best_of(small), best_of(large)
    assert large_time < BUDGET, f"{path}: 20,000 copies took {large_time:.3f} s"
    assert large_time <= MOST * small_time, (
        f"{path}: 20,000 copies took {large_time / small_time:.1f}x what 2,000 took"
    )


def test_many_copies_of_one_id_continue_it_and_many_different_ones_start_a_new_run() -> None:
    same = asgi_request(copies(20_000, True))()
    assert same[b"x-run-id"] == RUN_A.encode()
    distinct = asgi_request(copies(20_000, False))()
    assert distinct[b"x-run-id"] != RUN_A.encode()
    environ = wsgi_request(copies(20_000, True))()
    assert environ[ENVIRON_KEY].value == RUN_A
