"""Cost per MCP ``tools/call`` of carrying the run, against the bare round trip.

The client's ``meta()`` (through ``instrument_client``) and the server's
``RunIdServerMiddleware`` together, against the same in-process round trip of a trivial tool
without them. Every case calls the tool inside a child run, over mcp 2.x's in-process transport
(the cheapest round trip there is, so the largest share for ours). Aim (issue 15): at most 5%
more per call. A third case, for information, sends our keys without the ``baggage`` entry: the
gap between it and ours is mostly the SDK's own OpenTelemetry middleware parsing that entry.

The CPU time is shown, but on a small shared machine it swings by more than 5%: the verdict is
counted in instructions (callgrind, through ``_callgrind``: each case in its own process, with
no calls and with ``COUNTED_CALLS``); without valgrind the CPU time decides.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer

import agent_run_id.mcp
from agent_run_id import RunContext

from ._aims import aim
from ._callgrind import count_per_operation, find_valgrind

CALLS = 200
ROUNDS = 11
COUNTED_CALLS = 200
BARE = "bare tools/call"
OURS = "meta() + RunIdServerMiddleware"
KEYS = "the same, no baggage entry"


def _server(*middleware: Any) -> MCPServer:
    server = MCPServer("bench", middleware=list(middleware))

    @server.tool()
    def noop() -> str:
        return "ok"

    return server


def _caller(case: str, client: Client) -> Callable[[], Awaitable[object]]:
    """Return one call of ``case`` on ``client`` (instrumented for OURS)."""
    if case == BARE:
        return lambda: client.call_tool("noop", {})
    if case == OURS:
        return lambda: client.call_tool("noop", {})

    def keys() -> Awaitable[object]:
        sent = {k: v for k, v in agent_run_id.mcp.meta().items() if k != "baggage"}
        return client.call_tool("noop", {}, meta=sent)

    return keys


async def _compare(
    cases: Mapping[str, Callable[[], Awaitable[object]]], number: int, rounds: int
) -> dict[str, float]:
    """Median CPU seconds per call of each case, in rounds that interleave the cases."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for call in cases.values():  # warm up
        for _ in range(50):
            await call()
    for _ in range(rounds):
        for name, call in cases.items():
            gc.collect()
            gc.disable()
            start = time.process_time()
            for _ in range(number):
                await call()
            samples[name].append((time.process_time() - start) / number)
            gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


async def _timed() -> dict[str, float]:
    middleware = agent_run_id.mcp.RunIdServerMiddleware()
    async with (
        Client(_server()) as bare,
        Client(_server(middleware)) as ours,
        Client(_server(agent_run_id.mcp.RunIdServerMiddleware())) as keys,
    ):
        agent_run_id.mcp.instrument_client(ours)
        with RunContext(), RunContext():  # a child run: its lineage goes along
            cases = {
                BARE: _caller(BARE, bare),
                OURS: _caller(OURS, ours),
                KEYS: _caller(KEYS, keys),
            }
            return await _compare(cases, CALLS, ROUNDS)


def _serve(case: str, calls: int) -> None:
    """Make ``calls`` tool calls of ``case`` (after a warm-up of 30) in this process."""

    async def serve() -> None:
        middleware = () if case == BARE else (agent_run_id.mcp.RunIdServerMiddleware(),)
        async with Client(_server(*middleware)) as client:
            if case == OURS:
                agent_run_id.mcp.instrument_client(client)
            call = _caller(case, client)
            with RunContext(), RunContext():
                for _ in range(30 + calls):
                    await call()

    asyncio.run(serve())


def main() -> None:
    """Time the cases in CPU time, then count their instructions; print the verdict."""
    times = asyncio.run(_timed())
    print("\nMCP tools/call in process (mcp 2.x), a trivial tool, inside a run: CPU time")
    for name, value in times.items():
        print(f"  {name:<36} {value * 1e6:>8.1f}us {value / times[BARE]:>6.3f}x")
    valgrind = find_valgrind("bench_mcp")
    if valgrind is None:
        aim("ours over a bare tools/call, CPU time", times[OURS] / times[BARE], at_most=1.05)
        return
    counts = count_per_operation(valgrind, "bench_mcp", (BARE, OURS, KEYS), COUNTED_CALLS)
    print(f"The same in instructions (callgrind, {COUNTED_CALLS:,} calls)")
    for case, count in counts.items():
        print(f"  {case:<36} {count:>10,.0f} {count / counts[BARE]:>6.3f}x")
    aim(
        "meta() + middleware over a bare tools/call, instructions",
        counts[OURS] / counts[BARE],
        at_most=1.05,
        unit="x",
        digits=3,
    )


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _serve(sys.argv[1], int(sys.argv[2]))
    else:
        main()
