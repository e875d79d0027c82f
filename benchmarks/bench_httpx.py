"""Outbound: what ``RunIdTransport`` adds to an httpx request, next to a request event hook.

Aim (issue 4): under 2 us per request over a bare ``httpx.Client`` on ``MockTransport``, side by
side with an httpx request hook that sets the same headers (``event_hooks={"request": [...]}``).
All cases run with a sync client, inside a run (a root run, then a child run with lineage).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from agent_run_id import RunContext, RunId, headers
from agent_run_id._httpx_common import prepare
from agent_run_id.httpx import RunIdTransport, instrument

from ._timing import compare, report

_URL = "https://api.example.com/v1/chat/completions"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def _hook(request: httpx.Request) -> None:
    """Set the current run's headers in a request hook: the hand-written alternative."""
    request.headers.update(headers())


def _get(client: httpx.Client) -> Callable[[], Any]:
    return lambda: client.get(_URL)


def _cases() -> dict[str, Callable[[], Any]]:
    mock = httpx.MockTransport(_answer)
    return {
        "bare httpx.Client(MockTransport)": _get(httpx.Client(transport=mock)),
        "event hook setting headers()": _get(
            httpx.Client(transport=mock, event_hooks={"request": [_hook]})
        ),
        "RunIdTransport(MockTransport)": _get(httpx.Client(transport=RunIdTransport(mock))),
        "RunIdTransport, hosts=(one host,)": _get(
            httpx.Client(transport=RunIdTransport(mock, hosts=("api.example.com",)))
        ),
        "instrument(client)": _get(instrument(httpx.Client(transport=mock))),
    }


def _summary(medians: dict[str, float]) -> None:
    base = medians["bare httpx.Client(MockTransport)"]
    for name in ("event hook setting headers()", "RunIdTransport(MockTransport)"):
        print(f"  {name} over bare: {(medians[name] - base) * 1e6:.2f} us")
    print("  aim: RunIdTransport under 2 us over bare")


def _work_alone() -> None:
    """Time the added work alone on one request, taking the added headers off after each call.

    Much less noisy than whole requests on a busy machine, where the few microseconds at stake
    drown in the client's own 75 us.
    """
    request = httpx.Client().build_request("GET", _URL)
    items = request.headers._list
    count, extensions = len(items), request.extensions

    def reset() -> None:
        del items[count:]
        request.extensions = extensions

    def hook() -> None:
        _hook(request)
        reset()

    def ours() -> None:
        prepare(request, None)
        reset()

    medians = compare(
        {"take the headers off": reset, "request hook": hook, "RunIdTransport's work": ours},
        number=20_000,
    )
    report("The added work alone", medians, baseline="take the headers off")


def main() -> None:
    root = RunId.generate()
    for title, run in (("a root run", root), ("a child run (lineage headers)", root.child())):
        with RunContext(run):
            medians = compare(_cases(), number=1_000, rounds=11)
            report(
                f"One httpx request on MockTransport, inside {title}",
                medians,
                baseline="bare httpx.Client(MockTransport)",
            )
            _summary(medians)
            _work_alone()


if __name__ == "__main__":
    main()
