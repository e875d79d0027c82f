"""Per-request cost of the ASGI middleware in instructions, counted by valgrind's callgrind.

``python -m benchmarks.count_asgi`` (run by ``make bench-count``). Wall-clock medians on a small
shared machine swing by more than the difference being measured; an instruction count does not.
The counts come from ``_callgrind``: each case in its own process, twice, so start-up and imports
cancel out. The cases and their scopes are those of ``bench_asgi`` (bare ASGI app), every option
at its default.

Aim (issue 3): ``RunIdMiddleware``'s overhead per request at most 0.5x of asgi-correlation-id's
``CorrelationIdMiddleware``, without an incoming id and with one.
"""

from __future__ import annotations

import asyncio
import sys

from . import bench_asgi
from ._aims import aim
from ._callgrind import count_per_operation, find_valgrind

REQUESTS = 2_000


def _serve(case: str, requests: int) -> None:
    """Run ``requests`` requests of ``case`` (after a warm-up of 200) in this process."""
    middleware, scope_name = bench_asgi.CASES[case]
    app = bench_asgi.bare if middleware is None else middleware(bench_asgi.bare)
    scope = bench_asgi.SCOPES[scope_name]

    async def serve() -> None:
        for _ in range(200 + requests):
            await app(bench_asgi.request(scope), bench_asgi._receive, bench_asgi._send)

    asyncio.run(serve())


def main() -> None:
    """Print each case's instructions per request, its overhead, our ratios and the verdicts."""
    valgrind = find_valgrind("count_asgi")
    if valgrind is None:
        return
    counts = count_per_operation(valgrind, "count_asgi", bench_asgi.CASES, REQUESTS)
    over = bench_asgi.overheads(counts)
    print(f"\nASGI middleware per request, bare ASGI app: instructions (callgrind, {REQUESTS:,})")
    print(f"  {'case':<40} {'count':>9} {'overhead':>9} {'ours/theirs':>12}")
    for case, count in counts.items():
        ratio = bench_asgi.ratio(over, case)
        print(f"  {case:<40} {count:>9,.0f} {over[case]:>9,.0f} {ratio:>12}")
    for ours, theirs in bench_asgi.PEERS.items():
        situation = ours.partition(", ")[2]
        what = f"RunIdMiddleware over CorrelationIdMiddleware, {situation}"
        aim(what, over[ours] / over[theirs], at_most=0.5, unit="x", digits=3)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _serve(sys.argv[1], int(sys.argv[2]))
    else:
        main()
