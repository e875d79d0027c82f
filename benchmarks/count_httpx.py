"""Per-request cost of ``RunIdTransport`` in instructions, counted by valgrind's callgrind.

``python -m benchmarks.count_httpx`` (run by ``make bench-count``). Three cases, each a sync
``httpx.Client`` on ``MockTransport`` sending GET requests inside a root run: the bare client, a
hand-written request event hook that sets ``X-Run-Id`` from ``current_run_id()``, and the client
with ``RunIdTransport``; and, for information, the hook and ``RunIdTransport`` in a run with a
session (one more header, ``X-Session-Id``). The counts come from ``_callgrind``: each case in its
own process, with no requests and with ``REQUESTS``, the difference divided by ``REQUESTS``.

Aim (issue 12, item 15): ``RunIdTransport`` adds fewer instructions over the bare client than the
hand-written hook does (ours/hook under 1.0).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import httpx

from agent_run_id import RunContext, RunId, current_run, current_run_id
from agent_run_id.httpx import RunIdTransport

from ._aims import aim
from ._callgrind import count_per_operation, find_valgrind

REQUESTS = 2_000
URL = "https://api.example.com/v1/chat/completions"
BARE = "bare httpx.Client(MockTransport)"
HOOK = "hand-written request event hook"
OURS = "RunIdTransport(MockTransport)"
HOOK_SESSION = "hook, run with a session"
SESSION = "RunIdTransport, run with a session"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def _hook(request: httpx.Request) -> None:
    """Set ``X-Run-Id`` from ``current_run_id()``: the hand-written alternative."""
    run_id = current_run_id()
    if run_id is not None:
        request.headers["X-Run-Id"] = run_id.value


def _session_hook(request: httpx.Request) -> None:
    """Set ``X-Run-Id`` and ``X-Session-Id`` from ``current_run()``: the hook, with the session."""
    run = current_run()
    if run is not None:
        request.headers["X-Run-Id"] = run.id
        if run.session_id is not None:
            request.headers["X-Session-Id"] = run.session_id


CASES: dict[str, Callable[[httpx.MockTransport], httpx.Client]] = {
    BARE: lambda mock: httpx.Client(transport=mock),
    HOOK: lambda mock: httpx.Client(transport=mock, event_hooks={"request": [_hook]}),
    OURS: lambda mock: httpx.Client(transport=RunIdTransport(mock)),
    HOOK_SESSION: lambda mock: httpx.Client(
        transport=mock, event_hooks={"request": [_session_hook]}
    ),
    SESSION: lambda mock: httpx.Client(transport=RunIdTransport(mock)),
}


def _serve(case: str, requests: int) -> None:
    """Send ``requests`` requests of ``case`` (after a warm-up of 200) in this process."""
    client = CASES[case](httpx.MockTransport(_answer))
    session_id = "chat-42" if case in (HOOK_SESSION, SESSION) else None
    with RunContext(RunId.generate(), session_id=session_id):
        for _ in range(200 + requests):
            client.get(URL)


def main() -> None:
    """Print each case's instructions per request, its overhead over bare and the verdict."""
    valgrind = find_valgrind("count_httpx")
    if valgrind is None:
        return
    counts = count_per_operation(valgrind, "count_httpx", CASES, REQUESTS)
    print(f"\nOne httpx request in a root run: instructions (callgrind, {REQUESTS:,} requests)")
    print(f"  {'case':<34} {'count':>9} {'over bare':>10}")
    for case, count in counts.items():
        print(f"  {case:<34} {count:>9,.0f} {count - counts[BARE]:>10,.0f}")
    ratio = (counts[OURS] - counts[BARE]) / (counts[HOOK] - counts[BARE])
    aim("RunIdTransport over the hand-written hook, added instructions", ratio, below=1.0, unit="x")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _serve(sys.argv[1], int(sys.argv[2]))
    else:
        main()
