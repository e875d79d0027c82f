"""agent_run_id.httpx2: the httpx2 face of the implementation shared with agent_run_id.httpx.

The behaviour is tested on both packages in test_httpx.py; here, what is proper to httpx2.
"""

from __future__ import annotations

import httpx
import httpx2

import agent_run_id.httpx
import agent_run_id.httpx2
from agent_run_id import RunContext, RunId
from agent_run_id._httpx_transports import AsyncTransportBase, TransportBase


def test_the_three_names_are_httpx2_types_built_on_the_shared_implementation() -> None:
    ours = agent_run_id.httpx2
    assert ours.__all__ == ["AsyncRunIdTransport", "RunIdTransport", "instrument"]
    assert issubclass(ours.RunIdTransport, httpx2.BaseTransport)
    assert issubclass(ours.RunIdTransport, TransportBase)
    assert issubclass(ours.AsyncRunIdTransport, httpx2.AsyncBaseTransport)
    assert issubclass(ours.AsyncRunIdTransport, AsyncTransportBase)
    assert not issubclass(ours.RunIdTransport, httpx.BaseTransport)
    assert ours.RunIdTransport.handle_request is agent_run_id.httpx.RunIdTransport.handle_request


def test_an_httpx2_client_works_with_httpx2_mock_transport() -> None:
    run = RunId.generate()
    seen: list[str | None] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("X-Run-Id"))
        return httpx2.Response(204)

    transport = agent_run_id.httpx2.RunIdTransport(httpx2.MockTransport(handler))
    with httpx2.Client(transport=transport) as client, RunContext(run):
        client.get("https://api.anthropic.com/v1/models")
    assert seen == [run.value]
