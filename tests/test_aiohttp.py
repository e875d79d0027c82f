"""agent_run_id.aiohttp against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from agent_run_id import RunContext, RunId
from agent_run_id.aiohttp import _redirect_host, trace_config
from tests._outbound_helpers import RUN_HEADERS, LocalServer, echo_all, server

__all__ = ["server"]

ROOT = RunId.from_string("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
CHILD = RunId("1c7a6e4f-3d2b-4f9c-8a8e-6b5d4c3b2a19", parent=ROOT)
NONE = dict.fromkeys(RUN_HEADERS)


async def echoed(response: aiohttp.ClientResponse) -> Any:
    response.raise_for_status()
    return (await response.json())["headers"]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trace_configs=[trace_config()]) as made:
        yield made


async def test_outside_any_run_no_header_is_added(
    session: aiohttp.ClientSession, server: LocalServer
) -> None:
    async with session.get(f"{server.url}/echo") as response:
        assert await echoed(response) == NONE


async def test_a_run_and_its_lineage_are_added_when_the_request_starts(
    session: aiohttp.ClientSession, server: LocalServer
) -> None:
    async with RunContext(ROOT), session.get(f"{server.url}/echo") as response:
        root = await echoed(response)
    async with RunContext(CHILD), session.get(f"{server.url}/echo") as response:
        child = await echoed(response)
    assert root == {"x-run-id": ROOT.value, "x-parent-run-id": None, "x-root-run-id": None}
    assert child == {
        "x-run-id": CHILD.value,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }


async def test_a_header_the_caller_or_the_session_set_is_never_overwritten(
    server: LocalServer,
) -> None:
    async with (
        aiohttp.ClientSession(
            trace_configs=[trace_config()], headers={"X-Run-Id": "session-wide"}
        ) as session,
        RunContext(CHILD),
    ):
        async with session.get(f"{server.url}/echo") as response:
            default = await echoed(response)
        async with session.get(f"{server.url}/echo", headers={"x-run-id": "mine"}) as response:
            mine = await echoed(response)
    assert default == {"x-run-id": "session-wide", "x-parent-run-id": None, "x-root-run-id": None}
    assert mine["x-run-id"] == "mine"


async def test_a_request_carrying_only_lineage_is_the_callers_and_gets_nothing_added(
    session: aiohttp.ClientSession, server: LocalServer
) -> None:
    got = {}
    async with RunContext(CHILD):
        for name in ("X-Parent-Run-Id", "x-root-run-id"):
            async with session.get(f"{server.url}/echo", headers={name: "mine"}) as response:
                got[name.lower()] = await echoed(response)
    assert got == {
        "x-parent-run-id": {"x-run-id": None, "x-parent-run-id": "mine", "x-root-run-id": None},
        "x-root-run-id": {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"},
    }


async def test_only_allowed_hosts_get_the_run_and_a_redirect_away_loses_it(
    server: LocalServer,
) -> None:
    config = trace_config(hosts=("127.0.0.1",))
    async with aiohttp.ClientSession(trace_configs=[config]) as session, RunContext(CHILD):
        async with session.get(f"{server.other_url}/echo") as response:
            other = await echoed(response)
        async with session.get(
            f"{server.url}/redirect", params={"to": f"{server.url}/echo"}
        ) as response:
            same = await echoed(response)
        async with session.get(
            f"{server.url}/redirect",
            params={"to": f"{server.other_url}/echo", "status": "307"},
            headers={"X-Root-Run-Id": "mine"},
        ) as response:
            away = await echoed(response)
            assert response.url.host == "localhost"
        back_to = f"{server.other_url}/redirect?to={server.url}/echo"
        async with session.get(f"{server.url}/redirect", params={"to": back_to}) as response:
            back = await echoed(response)
    assert other == NONE
    assert same["x-run-id"] == CHILD.value
    assert away == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}
    assert back["x-parent-run-id"] == ROOT.value


async def test_a_relative_redirect_keeps_the_run(server: LocalServer) -> None:
    config = trace_config(hosts=("127.0.0.1",))
    async with (
        aiohttp.ClientSession(trace_configs=[config]) as session,
        RunContext(ROOT),
        session.get(f"{server.url}/redirect", params={"to": "/echo"}) as response,
    ):
        assert (await echoed(response))["x-run-id"] == ROOT.value


async def test_streaming_upload_and_download_carry_the_run(
    session: aiohttp.ClientSession, server: LocalServer
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield b"x" * 4096

    async with RunContext(ROOT):
        async with session.post(f"{server.url}/echo", data=body()) as response:
            uploaded = await response.json()
        async with session.get(f"{server.url}/stream", params={"chunks": 32}) as response:
            data = b"".join([chunk async for chunk in response.content.iter_chunked(1000)])
    assert uploaded["headers"]["x-run-id"] == ROOT.value
    assert uploaded["body_length"] == 16 * 4096
    first, _, rest = data.partition(b"\n")
    assert ROOT.value.encode() in first
    assert len(rest) == 32 * 1024


async def test_200_concurrent_runs_on_one_shared_session_each_send_their_own(
    session: aiohttp.ClientSession, server: LocalServer
) -> None:
    async def one() -> tuple[str, Any]:
        async with RunContext() as run:
            await asyncio.sleep(0)
            params = {"marker": run.run_id.value}
            async with session.get(f"{server.url}/echo", params=params) as response:
                return run.run_id.value, await response.json()

    pairs = await asyncio.gather(*(one() for _ in range(200)))
    for sent, got in pairs:
        assert got["headers"]["x-run-id"] == sent
        assert got["marker"] == sent
    assert len({sent for sent, _ in pairs}) == 200


def redirect_params(url: str, headers: dict[str, str]) -> Any:
    response = SimpleNamespace(headers=CIMultiDictProxy(CIMultiDict(headers)))
    return aiohttp.TraceRequestRedirectParams(
        "GET",
        URL(url),
        CIMultiDict(),
        response,  # type: ignore[arg-type]
    )


def test_the_redirect_target_host_is_read_like_aiohttp_does() -> None:
    assert _redirect_host(redirect_params("http://a.example/x", {"Location": "/y"})) == "a.example"
    assert (
        _redirect_host(redirect_params("http://a.example/", {"Location": "https://B.example/"}))
        == "b.example"
    )
    assert _redirect_host(redirect_params("http://a.example/", {"URI": "http://c.example/"})) == (
        "c.example"
    )
    assert _redirect_host(redirect_params("http://a.example/", {})) is None
    assert _redirect_host(redirect_params("http://a.example/", {"Location": "http://[::1"})) is None


async def test_a_redirect_outside_any_run_adds_nothing() -> None:
    config = trace_config()
    callback = config.on_request_redirect[0]
    params = redirect_params("http://a.example/", {"Location": "http://b.example/"})
    await callback(None, SimpleNamespace(), params)  # type: ignore[arg-type]
    assert dict(params.headers) == {}


async def test_each_try_of_a_retry_loop_carries_the_run(
    session: aiohttp.ClientSession, server: LocalServer
) -> None:
    """aiohttp has no retry option: a retry is a new request, which gets the run again."""
    params = {"key": "aiohttp-retry", "marker": "aiohttp-retry"}
    statuses = []
    async with RunContext(CHILD):
        for _ in range(2):
            async with session.get(f"{server.url}/flaky", params=params) as response:
                statuses.append(response.status)
                if response.ok:
                    break
    assert statuses == [503, 200]
    tries = [run for _, marker, run in server.seen if marker == "aiohttp-retry"]
    assert (
        tries
        == [{"x-run-id": CHILD.value, "x-parent-run-id": ROOT.value, "x-root-run-id": ROOT.value}]
        * 2
    )


# header_name: the run id under another name (issue 12, item 8).


@pytest.fixture(scope="module")
def headers_server() -> Iterator[LocalServer]:
    """A real server that answers with every header it got."""
    local = LocalServer(echo_all)
    try:
        yield local
    finally:
        local.close()


async def run_headers_of(response: aiohttp.ClientResponse) -> dict[str, str]:
    response.raise_for_status()
    got = await response.json()
    return {k: v for k, v in got.items() if k in ("x-request-id", *RUN_HEADERS)}


async def test_header_name_sends_the_run_under_that_name_and_the_callers_rule_reads_it(
    headers_server: LocalServer,
) -> None:
    url = f"{headers_server.url}/"
    config = trace_config(header_name="X-Request-ID")
    async with aiohttp.ClientSession(trace_configs=[config]) as session, RunContext(CHILD):
        async with session.get(url) as response:
            ours = await run_headers_of(response)
        async with session.get(url, headers={"x-request-id": "mine"}) as response:
            mine = await run_headers_of(response)
        async with session.get(url, headers={"X-Run-Id": "other"}) as response:
            other = await run_headers_of(response)
    lineage = {"x-parent-run-id": ROOT.value, "x-root-run-id": ROOT.value}
    assert ours == {"x-request-id": CHILD.value, **lineage}
    assert mine == {"x-request-id": "mine"}
    assert other == {"x-request-id": CHILD.value, "x-run-id": "other", **lineage}


async def test_with_header_name_a_redirect_outside_the_hosts_loses_it(
    headers_server: LocalServer,
) -> None:
    config = trace_config(hosts=("127.0.0.1",), header_name="X-Request-ID")
    away = f"{headers_server.other_url}/"
    redirect = f"{headers_server.url}/redirect"
    async with (
        aiohttp.ClientSession(trace_configs=[config]) as session,
        RunContext(ROOT),
        session.get(redirect, params={"to": away}) as response,
    ):
        assert str(response.url) == away
        assert await run_headers_of(response) == {}
        async with session.get(redirect, params={"to": f"{headers_server.url}/"}) as response:
            assert await run_headers_of(response) == {"x-request-id": ROOT.value}


@pytest.mark.parametrize("bad", ["X Request", "", None, "X-Root-Run-Id"])
def test_a_bad_header_name_is_refused_naming_the_option(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^agent_run_id\.aiohttp\.trace_config: header_name "):
        trace_config(header_name=bad)
