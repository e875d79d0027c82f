"""Per-request cost of ``RunIdTransport`` in instructions, counted by valgrind's callgrind.

``python -m benchmarks.count_httpx`` (run by ``make bench-count``). Three cases, each a sync
``httpx.Client`` on ``MockTransport`` sending GET requests inside a root run: the bare client, a
hand-written request event hook that sets ``X-Run-Id`` from ``current_run_id()``, and the client
with ``RunIdTransport``. As in ``count_asgi``, each case runs in its own process under callgrind
twice, with no requests and with ``REQUESTS``; the difference divided by ``REQUESTS`` is the
case's count per request, free of start-up and import costs.

Aim (issue 12, item 15): ``RunIdTransport`` adds fewer instructions over the bare client than the
hand-written hook does (ours/hook under 1.0).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id.httpx import RunIdTransport

REQUESTS = 2_000
URL = "https://api.example.com/v1/chat/completions"
BARE = "bare httpx.Client(MockTransport)"
HOOK = "hand-written request event hook"
OURS = "RunIdTransport(MockTransport)"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def _hook(request: httpx.Request) -> None:
    """Set ``X-Run-Id`` from ``current_run_id()``: the hand-written alternative."""
    run_id = current_run_id()
    if run_id is not None:
        request.headers["X-Run-Id"] = run_id.value


CASES: dict[str, Callable[[httpx.MockTransport], httpx.Client]] = {
    BARE: lambda mock: httpx.Client(transport=mock),
    HOOK: lambda mock: httpx.Client(transport=mock, event_hooks={"request": [_hook]}),
    OURS: lambda mock: httpx.Client(transport=RunIdTransport(mock)),
}


def _serve(case: str, requests: int) -> None:
    """Send ``requests`` requests of ``case`` (after a warm-up of 200) in this process."""
    client = CASES[case](httpx.MockTransport(_answer))
    with RunContext(RunId.generate()):
        for _ in range(200 + requests):
            client.get(URL)


def _count(valgrind: str, case: str, requests: int) -> int:
    """Return the instructions callgrind counts for a whole process sending ``requests``."""
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    # -B: neither run writes bytecode, so both pay the same compile costs and they cancel out.
    command += [sys.executable, "-B", "-m", "benchmarks.count_httpx", case, str(requests)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {case!r}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def verdict(ours: float, hook: float) -> str:
    """Return the closing line: the ratio of the two overheads and whether the aim is met."""
    ratio = ours / hook
    met = "met" if ratio < 1.0 else "missed"
    return f"  aim: RunIdTransport adds less than the hook (ours/hook < 1.0): {ratio:.2f}x, {met}"


def main() -> None:
    """Print each case's instructions per request, its overhead over bare and the verdict."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("count_httpx: valgrind is not installed (apt install valgrind); nothing counted")
        return

    def per_request(case: str) -> float:
        return (_count(valgrind, case, REQUESTS) - _count(valgrind, case, 0)) / REQUESTS

    # The cores this process may use (not all the machine has): a valgrind takes a few hundred MB.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(cores) as pool:
        counts = dict(zip(CASES, pool.map(per_request, CASES), strict=True))
    print(f"\nOne httpx request in a root run: instructions (callgrind, {REQUESTS:,} requests)")
    print(f"  {'case':<34} {'count':>9} {'over bare':>10}")
    for case, count in counts.items():
        print(f"  {case:<34} {count:>9,.0f} {count - counts[BARE]:>10,.0f}")
    print(verdict(counts[OURS] - counts[BARE], counts[HOOK] - counts[BARE]))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _serve(sys.argv[1], int(sys.argv[2]))
    else:
        main()
