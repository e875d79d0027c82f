"""Outbound: what ``RunIdTransport`` adds to an httpx request, next to a request event hook.

Aim (issue 12): ``RunIdTransport`` adds less to a request over a bare ``httpx.Client`` on
``MockTransport`` than an httpx request hook that sets the run's header does. All cases run with
a sync client, inside a run (a root run, then a child run with lineage). A few microseconds of a
request of 75 us and more swing by more than themselves here: ``count_httpx`` counts them in
instructions (``make bench-count``), and issue 4's aim in time (under 2 us) is not settled here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from agent_run_id import RunContext, RunId, headers
from agent_run_id.httpx import RunIdTransport, instrument

from ._aims import elsewhere
from ._timing import compare, report

NUMBER = 1_000  # requests a sample
ROUNDS = 11

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


def main() -> None:
    root = RunId.generate()
    for title, run in (("a root run", root), ("a child run (lineage headers)", root.child())):
        with RunContext(run):
            medians = compare(_cases(), number=NUMBER, rounds=ROUNDS)
            report(
                f"One httpx request on MockTransport, inside {title}",
                medians,
                baseline="bare httpx.Client(MockTransport)",
            )
            elsewhere("RunIdTransport over bare < a request hook's")


if __name__ == "__main__":
    main()
