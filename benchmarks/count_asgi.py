"""Per-request cost of the ASGI middleware in instructions, counted by valgrind's callgrind.

``make bench-count``. Wall-clock medians on a small shared machine swing by more than the
difference being measured; an instruction count does not. Each case runs in its own process under
callgrind twice, with no requests and with ``REQUESTS``; the difference divided by ``REQUESTS``
is the case's count per request, free of start-up and import costs. The cases and their scopes
are those of ``bench_asgi`` (bare ASGI app), every option at its default. The processes run side
by side, one per core: an instruction count does not depend on what else the machine does.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from . import bench_asgi

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


def _count(valgrind: str, case: str, requests: int) -> int:
    """Return the instructions callgrind counts for a whole process serving ``requests``."""
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    # -B: neither run writes bytecode, so both pay the same compile costs and they cancel out.
    command += [sys.executable, "-B", "-m", "benchmarks.count_asgi", case, str(requests)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {case!r}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    """Print each case's instructions per request, its overhead and our ratio to the peer's."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("count_asgi: valgrind is not installed (apt install valgrind); nothing counted")
        return

    def per_request(case: str) -> float:
        return (_count(valgrind, case, REQUESTS) - _count(valgrind, case, 0)) / REQUESTS

    # The cores this process may use (not all the machine has): a valgrind takes a few hundred MB.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(cores) as pool:
        counts = dict(zip(bench_asgi.CASES, pool.map(per_request, bench_asgi.CASES), strict=True))
    over = bench_asgi.overheads(counts)
    print(f"\nASGI middleware per request, bare ASGI app: instructions (callgrind, {REQUESTS:,})")
    print(f"  {'case':<40} {'count':>9} {'overhead':>9} {'ours/theirs':>12}")
    for case, count in counts.items():
        ratio = bench_asgi.ratio(over, case)
        print(f"  {case:<40} {count:>9,.0f} {over[case]:>9,.0f} {ratio:>12}")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _serve(sys.argv[1], int(sys.argv[2]))
    else:
        main()
