"""Cost per MCP ``tools/call`` of carrying the run, against the bare round trip.

The client's ``meta()`` (through ``instrument_client``) and the server's
``RunIdServerMiddleware`` together, against the same in-process round trip of a trivial tool
without them. Every case calls the tool inside a child run, over mcp 2.x's in-process transport
(the cheapest round trip there is, so the largest share for ours). Aim (issue 15): at most 5%
more per call, in default usage as docs/mcp.md shows it. Two more cases, for information, run
with ``agent_run_id.otel.install()`` (baggage on): there mcp 2.x itself puts the run's baggage in
every request's ``_meta`` and parses it on the server, ours or not, and ``meta()`` adds the
baggage entry too; counted in instructions only (the install is process-wide).

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
import agent_run_id.otel
from agent_run_id import RunContext

from ._aims import aim
from ._callgrind import count_per_operation, find_valgrind

CALLS = 200
ROUNDS = 11
COUNTED_CALLS = 200
BARE = "bare tools/call"
OURS = "meta() + RunIdServerMiddleware"
BARE_OTEL = "bare, otel.install()"
OURS_OTEL = "ours, otel.install()"


def _server(*middleware: Any) -> MCPServer:
    server = MCPServer("bench", middleware=list(middleware))

    @server.tool()
    def noop() -> str:
        return "ok"

    return server


def _caller(client: Client) -> Callable[[], Awaitable[object]]:
    """Return one call on ``client`` (instrumented or not by the case)."""
    return lambda: client.call_tool("noop", {})


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
    async with (
        Client(_server()) as bare,
        Client(_server(agent_run_id.mcp.RunIdServerMiddleware())) as ours,
    ):
        agent_run_id.mcp.instrument_client(ours)
        with RunContext(), RunContext():  # a child run: its lineage goes along
            cases = {BARE: _caller(bare), OURS: _caller(ours)}
            return await _compare(cases, CALLS, ROUNDS)


def _serve(case: str, calls: int) -> None:
    """Make ``calls`` tool calls of ``case`` (after a warm-up of 30) in this process."""
    ours = case in (OURS, OURS_OTEL)
    if case in (BARE_OTEL, OURS_OTEL):
        agent_run_id.otel.install(span_processor=False)  # baggage on, no SDK needed

    async def serve() -> None:
        middleware = (agent_run_id.mcp.RunIdServerMiddleware(),) if ours else ()
        async with Client(_server(*middleware)) as client:
            if ours:
                agent_run_id.mcp.instrument_client(client)
            call = _caller(client)
            with RunContext(), RunContext():
                for _ in range(30 + calls):
                    await call()

    try:
        asyncio.run(serve())
    finally:
        agent_run_id.otel.uninstall()


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
    cases = (BARE, OURS, BARE_OTEL, OURS_OTEL)
    counts = count_per_operation(valgrind, "bench_mcp", cases, COUNTED_CALLS)
    print(f"The same in instructions (callgrind, {COUNTED_CALLS:,} calls)")
    for case in (BARE, OURS):
        print(f"  {case:<36} {counts[case]:>10,.0f} {counts[case] / counts[BARE]:>6.3f}x")
    print("With agent_run_id.otel.install() (baggage on), for information")
    for case in (BARE_OTEL, OURS_OTEL):
        count = counts[case]
        print(f"  {case:<36} {count:>10,.0f} {count / counts[BARE_OTEL]:>6.3f}x")
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
