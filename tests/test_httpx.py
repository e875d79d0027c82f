"""agent_run_id.httpx and agent_run_id.httpx2: one implementation, every test run on both."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import agent_run_id
from agent_run_id import RunContext, RunId
from agent_run_id._outbound import take_off
from tests._outbound_helpers import RUN_HEADERS, LocalServer, server

__all__ = ["server"]

ROOT = RunId.from_string("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
CHILD = RunId("1c7a6e4f-3d2b-4f9c-8a8e-6b5d4c3b2a19", parent=ROOT)


@pytest.fixture(params=["httpx", "httpx2"])
def kit(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The HTTP package under test and its agent_run_id module."""
    name = request.param
    return SimpleNamespace(
        http=importlib.import_module(name), ours=importlib.import_module(f"agent_run_id.{name}")
    )


def echo_handler(http: ModuleType) -> Any:
    """A MockTransport handler: answers with the run headers it got; /redirect?to= redirects.

    A redirect answers with them too, so ``response.history[i].json()`` tells what hop i got;
    without ``to=``, it is a 302 that has no Location.
    """

    def handle(request: Any) -> Any:
        got = {name: request.headers.get(name) for name in RUN_HEADERS}
        if request.url.path == "/redirect":
            to = request.url.params.get("to")
            return http.Response(302, headers={"Location": to} if to else {}, json=got)
        return http.Response(200, json=got)

    return handle


def sync_client(kit: SimpleNamespace, **options: Any) -> Any:
    transport = kit.ours.RunIdTransport(kit.http.MockTransport(echo_handler(kit.http)), **options)
    return kit.http.Client(transport=transport)


def async_client(kit: SimpleNamespace, **options: Any) -> Any:
    inner = kit.http.MockTransport(echo_handler(kit.http))
    return kit.http.AsyncClient(transport=kit.ours.AsyncRunIdTransport(inner, **options))


def test_outside_any_run_no_header_is_added(kit: SimpleNamespace) -> None:
    assert sync_client(kit).get("https://api.example.com/").json() == dict.fromkeys(RUN_HEADERS)


def test_inside_a_root_run_only_x_run_id_is_added(kit: SimpleNamespace) -> None:
    with RunContext(ROOT):
        got = sync_client(kit).get("https://api.example.com/").json()
    assert got == {"x-run-id": ROOT.value, "x-parent-run-id": None, "x-root-run-id": None}


def test_a_child_run_sends_its_lineage(kit: SimpleNamespace) -> None:
    with RunContext(CHILD):
        got = sync_client(kit).get("https://api.example.com/").json()
    assert got == {
        "x-run-id": CHILD.value,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }


def test_a_run_whose_parent_is_unknown_still_sends_its_root(kit: SimpleNamespace) -> None:
    """The same headers as agent_run_id.headers(): the root goes on even without the parent."""
    rooted = RunId("2d8b7f5a-4e3c-4a0d-9b9f-7c6e5d4c3b2a", root=ROOT)
    with RunContext(rooted):
        expected = agent_run_id.headers()
        got = sync_client(kit).get("https://api.example.com/").json()
    assert got == {"x-run-id": rooted.value, "x-parent-run-id": None, "x-root-run-id": ROOT.value}
    assert expected == {"X-Run-Id": rooted.value, "X-Root-Run-Id": ROOT.value}


def test_the_run_is_read_when_the_request_is_sent_not_when_the_client_was_made(
    kit: SimpleNamespace,
) -> None:
    with RunContext(ROOT):
        client = sync_client(kit)
    with RunContext(CHILD):
        assert client.get("https://api.example.com/").json()["x-run-id"] == CHILD.value
    assert client.get("https://api.example.com/").json()["x-run-id"] is None


def test_a_header_the_caller_set_is_never_overwritten_and_no_lineage_is_mixed_in(
    kit: SimpleNamespace,
) -> None:
    mine = "5e5e5e5e-0000-4000-8000-000000000000"
    client = sync_client(kit)
    with RunContext(CHILD):
        got = client.get("https://api.example.com/", headers={"x-run-id": mine}).json()
        assert got == {"x-run-id": mine, "x-parent-run-id": None, "x-root-run-id": None}
        parent = client.get("https://h.example/", headers={"X-Parent-Run-Id": "theirs"}).json()
        assert parent == {"x-run-id": None, "x-parent-run-id": "theirs", "x-root-run-id": None}
        root = client.get("https://h.example/", headers={"x-root-run-id": "theirs"}).json()
        assert root == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "theirs"}


async def test_a_request_carrying_any_run_header_is_the_callers_on_every_path(
    kit: SimpleNamespace,
) -> None:
    """Async transport and instrumented client alike: one caller-set name, nothing added."""
    instrumented = kit.ours.instrument(
        kit.http.AsyncClient(transport=kit.http.MockTransport(echo_handler(kit.http)))
    )
    async with async_client(kit) as wrapped, instrumented, RunContext(CHILD):
        for client in (wrapped, instrumented):
            for name in RUN_HEADERS:
                response = await client.get("https://h.example/", headers={name: "theirs"})
                expected = dict.fromkeys(RUN_HEADERS)
                expected[name] = "theirs"
                assert response.json() == expected


def test_a_client_default_header_is_the_callers_too(kit: SimpleNamespace) -> None:
    client = sync_client(kit)
    client.headers["X-Run-Id"] = "fixed"
    with RunContext(ROOT):
        assert client.get("https://api.example.com/").json()["x-run-id"] == "fixed"


def test_only_allowed_hosts_get_the_run(kit: SimpleNamespace) -> None:
    client = sync_client(kit, hosts=("api.example.com", "*.tools.example"))
    with RunContext(ROOT):
        assert client.get("https://API.example.com/").json()["x-run-id"] == ROOT.value
        assert client.get("https://search.tools.example/").json()["x-run-id"] == ROOT.value
        assert client.get("https://other.example.com/").json()["x-run-id"] is None
        assert client.get("https://tools.example/").json()["x-run-id"] is None


def test_an_ipv6_host_matches_its_pattern_however_the_url_spells_it(kit: SimpleNamespace) -> None:
    client = sync_client(kit, hosts=("::1",))
    with RunContext(ROOT):
        assert client.get("http://[0:0:0:0:0:0:0:1]/").json()["x-run-id"] == ROOT.value
        assert client.get("http://[::2]/").json()["x-run-id"] is None


def test_a_redirect_to_a_host_outside_the_list_loses_our_headers(kit: SimpleNamespace) -> None:
    client = sync_client(kit, hosts=("api.example.com",))
    with RunContext(CHILD):
        response = client.get(
            "https://api.example.com/redirect",
            params={"to": "https://evil.example.net/"},
            follow_redirects=True,
        )
    assert response.json() == dict.fromkeys(RUN_HEADERS)
    assert response.history[0].json()["x-run-id"] == CHILD.value


def test_a_redirect_keeps_the_callers_header_while_losing_ours(kit: SimpleNamespace) -> None:
    client = sync_client(kit, hosts=("api.example.com",))
    with RunContext(CHILD):
        response = client.get(
            "https://api.example.com/redirect",
            params={"to": "https://evil.example.net/"},
            headers={"X-Parent-Run-Id": "mine"},
            follow_redirects=True,
        )
    assert response.json() == {"x-run-id": None, "x-parent-run-id": "mine", "x-root-run-id": None}


def test_a_redirect_back_to_an_allowed_host_gets_the_run_again(kit: SimpleNamespace) -> None:
    client = sync_client(kit, hosts=("api.example.com",))
    back = "https://evil.example.net/redirect?to=https://api.example.com/"
    with RunContext(ROOT):
        response = client.get(
            "https://api.example.com/redirect", params={"to": back}, follow_redirects=True
        )
    assert response.json()["x-run-id"] == ROOT.value
    assert [r.json()["x-run-id"] for r in response.history] == [ROOT.value, None]


def mounted_client(kit: SimpleNamespace, *, is_async: bool = False) -> Any:
    """A client whose transport is wrapped for a.example, with b.example on a plain mount."""
    mock = kit.http.MockTransport(echo_handler(kit.http))
    if is_async:
        wrapped = kit.ours.AsyncRunIdTransport(mock, hosts=("a.example",))
        return kit.http.AsyncClient(transport=wrapped, mounts={"https://b.example": mock})
    wrapped = kit.ours.RunIdTransport(mock, hosts=("a.example",))
    return kit.http.Client(transport=wrapped, mounts={"https://b.example": mock})


FULL_CHILD = {"x-run-id": CHILD.value, "x-parent-run-id": ROOT.value, "x-root-run-id": ROOT.value}


def test_a_redirect_into_a_mount_that_is_not_wrapped_loses_our_headers(
    kit: SimpleNamespace,
) -> None:
    """The next hop never passes through the wrapper, which takes its own headers off first."""
    client = mounted_client(kit)
    to_b = {"to": "https://b.example/"}
    with RunContext(CHILD):
        away = client.get("https://a.example/redirect", params=to_b, follow_redirects=True)
        mine = client.get(
            "https://a.example/redirect",
            params=to_b,
            headers={"X-Root-Run-Id": "mine"},
            follow_redirects=True,
        )
        same = client.get(
            "https://a.example/redirect",
            params={"to": "https://a.example/"},
            follow_redirects=True,
        )
    assert away.url.host == "b.example"
    assert away.history[0].json() == FULL_CHILD
    assert away.json() == dict.fromkeys(RUN_HEADERS)
    assert mine.json() == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}
    assert [r.json() for r in [*same.history, same]] == [FULL_CHILD, FULL_CHILD]


def test_a_redirect_not_followed_gives_a_next_request_without_our_headers(
    kit: SimpleNamespace,
) -> None:
    client = mounted_client(kit)
    with RunContext(CHILD):
        response = client.get("https://a.example/redirect", params={"to": "https://a.example/"})
        assert response.json() == FULL_CHILD
        assert response.next_request.headers.get("X-Run-Id") is None
        assert client.send(response.next_request).json() == FULL_CHILD


async def test_a_302_without_a_location_is_no_redirect_and_the_request_keeps_the_run(
    kit: SimpleNamespace,
) -> None:
    async with mounted_client(kit, is_async=True) as aclient, RunContext(CHILD):
        answers = [
            mounted_client(kit).get("https://a.example/redirect", follow_redirects=True),
            await aclient.get("https://a.example/redirect", follow_redirects=True),
        ]
    for response in answers:
        assert response.status_code == 302
        assert response.json() == FULL_CHILD
        assert response.request.headers["X-Run-Id"] == CHILD.value


async def test_an_async_redirect_into_a_mount_that_is_not_wrapped_loses_our_headers(
    kit: SimpleNamespace,
) -> None:
    async with mounted_client(kit, is_async=True) as client, RunContext(CHILD):
        away = await client.get(
            "https://a.example/redirect", params={"to": "https://b.example/"}, follow_redirects=True
        )
        same = await client.get(
            "https://a.example/redirect", params={"to": "https://a.example/"}, follow_redirects=True
        )
    assert away.history[0].json() == FULL_CHILD
    assert away.json() == dict.fromkeys(RUN_HEADERS)
    assert [r.json() for r in [*same.history, same]] == [FULL_CHILD, FULL_CHILD]


def test_without_hosts_a_redirect_keeps_the_run(kit: SimpleNamespace) -> None:
    with RunContext(CHILD):
        response = sync_client(kit).get(
            "https://a.example/redirect", params={"to": "https://b.example/"}, follow_redirects=True
        )
    assert response.json()["x-parent-run-id"] == ROOT.value


def test_a_request_sent_again_in_another_run_carries_the_new_run(kit: SimpleNamespace) -> None:
    """A retry that re-sends the same request object is stamped afresh."""
    client = sync_client(kit)
    with RunContext(CHILD):
        request = client.build_request("GET", "https://api.example.com/")
        assert client.send(request).json()["x-parent-run-id"] == ROOT.value
    with RunContext(ROOT):
        assert client.send(request).json() == {
            "x-run-id": ROOT.value,
            "x-parent-run-id": None,
            "x-root-run-id": None,
        }
    assert client.send(request).json() == dict.fromkeys(RUN_HEADERS)


def test_extensions_the_caller_shares_between_requests_are_not_marked(kit: SimpleNamespace) -> None:
    shared: dict[str, Any] = {}
    client = sync_client(kit)
    with RunContext(ROOT):
        client.send(kit.http.Request("GET", "https://a.example/", extensions=shared))
    assert shared == {}


async def test_the_async_transport_adds_the_run_of_the_sending_task(kit: SimpleNamespace) -> None:
    client = async_client(kit, hosts=("api.example.com",))
    assert (await client.get("https://api.example.com/")).json()["x-run-id"] is None
    async with RunContext(CHILD):
        got = (await client.get("https://api.example.com/")).json()
        outside = await client.get(
            "https://api.example.com/redirect",
            params={"to": "https://x.example/"},
            follow_redirects=True,
        )
    assert got == {
        "x-run-id": CHILD.value,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }
    assert outside.json() == dict.fromkeys(RUN_HEADERS)


async def test_200_concurrent_runs_on_one_async_client_each_send_their_own(
    kit: SimpleNamespace,
) -> None:
    client = async_client(kit)
    release = asyncio.Event()

    async def one() -> tuple[str, Any]:
        async with RunContext() as run:
            await release.wait()  # every run is current at once before any request goes
            response = await client.get("https://api.example.com/")
            return run.run_id.value, response.json()["x-run-id"]

    tasks = [asyncio.create_task(one()) for _ in range(200)]
    await asyncio.sleep(0)
    release.set()
    pairs = await asyncio.gather(*tasks)
    assert all(sent == got for sent, got in pairs)
    assert len({sent for sent, _ in pairs}) == 200


def test_16_threads_on_one_client_each_send_their_own_run(kit: SimpleNamespace) -> None:
    client = sync_client(kit)
    barrier = threading.Barrier(16)
    results: list[tuple[str, str]] = []

    def work() -> None:
        with RunContext() as run:
            barrier.wait()
            for _ in range(20):
                got = client.get("https://api.example.com/").json()["x-run-id"]
                results.append((run.run_id.value, got))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 320
    assert all(sent == got for sent, got in results)


class Recorder:
    """Wraps a transport and records the lifecycle calls that reach it."""

    def __init__(self, http: ModuleType) -> None:
        self.calls: list[str] = []
        self.mock = http.MockTransport(echo_handler(http))

    def handle_request(self, request: Any) -> Any:
        return self.mock.handle_request(request)

    async def handle_async_request(self, request: Any) -> Any:
        return await self.mock.handle_async_request(request)

    def close(self) -> None:
        self.calls.append("close")

    async def aclose(self) -> None:
        self.calls.append("aclose")

    def __enter__(self) -> Any:
        self.calls.append("enter")
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append(f"exit {exc[0].__name__ if exc[0] else None}")

    async def __aenter__(self) -> Any:
        self.calls.append("aenter")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.calls.append(f"aexit {exc[0].__name__ if exc[0] else None}")


def recorder(kit: SimpleNamespace) -> tuple[Any, Recorder]:
    """A Recorder that is also a transport of the package under test."""
    transport = type("T", (Recorder, kit.http.BaseTransport, kit.http.AsyncBaseTransport), {})
    inner = transport(kit.http)
    return inner, inner


def test_the_whole_lifecycle_reaches_the_wrapped_transport(kit: SimpleNamespace) -> None:
    inner, record = recorder(kit)
    with kit.http.Client(transport=kit.ours.RunIdTransport(inner)) as client:
        assert client.get("https://a.example/").status_code == 200
    assert record.calls == ["enter", "exit None"]
    wrapped = kit.ours.RunIdTransport(inner)
    wrapped.close()
    assert record.calls[-1] == "close"
    assert wrapped.transport is inner
    assert repr(wrapped).startswith("RunIdTransport(")
    with pytest.raises(KeyError), wrapped:
        raise KeyError("x")
    assert record.calls[-2:] == ["enter", "exit KeyError"]


async def test_the_whole_async_lifecycle_reaches_the_wrapped_transport(
    kit: SimpleNamespace,
) -> None:
    inner, record = recorder(kit)
    async with kit.http.AsyncClient(transport=kit.ours.AsyncRunIdTransport(inner)) as client:
        assert (await client.get("https://a.example/")).status_code == 200
    assert record.calls == ["aenter", "aexit None"]
    wrapped = kit.ours.AsyncRunIdTransport(inner)
    await wrapped.aclose()
    assert record.calls[-1] == "aclose"
    assert wrapped.transport is inner
    assert "hosts=None" in repr(wrapped)


def test_the_default_transports_are_the_packages_own(kit: SimpleNamespace) -> None:
    assert type(kit.ours.RunIdTransport().transport) is kit.http.HTTPTransport
    assert type(kit.ours.AsyncRunIdTransport().transport) is kit.http.AsyncHTTPTransport


def test_a_transport_of_the_wrong_kind_is_refused_with_the_fix(kit: SimpleNamespace) -> None:
    other = "httpx2" if kit.http.__name__ == "httpx" else "httpx"
    foreign = importlib.import_module(other).HTTPTransport()
    with pytest.raises(
        TypeError, match=rf"must be a {kit.http.__name__}\.BaseTransport.*{other}\."
    ):
        kit.ours.RunIdTransport(foreign)
    with pytest.raises(TypeError, match=r"AsyncBaseTransport such as .*AsyncHTTPTransport\(\)"):
        kit.ours.AsyncRunIdTransport(kit.http.HTTPTransport())
    with pytest.raises(ValueError, match="has a port"):
        kit.ours.RunIdTransport(hosts=("api.example.com:443",))


def test_instrument_covers_every_mount_of_an_existing_client(kit: SimpleNamespace) -> None:
    mock = kit.http.MockTransport(echo_handler(kit.http))
    client = kit.http.Client(transport=mock, mounts={"https://mounted.example": mock})
    assert kit.ours.instrument(client, hosts=("*.example",)) is client
    with RunContext(ROOT):
        assert client.get("https://a.example/").json()["x-run-id"] == ROOT.value
        assert client.get("https://mounted.example/").json()["x-run-id"] == ROOT.value
        assert client.get("https://a.example.org/").json()["x-run-id"] is None
        response = client.get(
            "https://a.example/redirect",
            params={"to": "https://b.example.org/"},
            follow_redirects=True,
        )
    assert response.json()["x-run-id"] is None


def test_instrument_runs_after_the_users_own_hooks(kit: SimpleNamespace) -> None:
    def mine(request: Any) -> None:
        request.headers["X-Run-Id"] = "from-my-hook"

    client = kit.http.Client(
        transport=kit.http.MockTransport(echo_handler(kit.http)), event_hooks={"request": [mine]}
    )
    kit.ours.instrument(client)
    with RunContext(ROOT):
        assert client.get("https://a.example/").json()["x-run-id"] == "from-my-hook"


def test_instrument_is_idempotent_and_refuses_other_hosts(kit: SimpleNamespace) -> None:
    client = kit.http.Client(transport=kit.http.MockTransport(echo_handler(kit.http)))
    kit.ours.instrument(client, hosts=("a.example",))
    kit.ours.instrument(client, hosts=["A.example."])
    assert len(client.event_hooks["request"]) == 1
    with pytest.raises(ValueError, match="already instrumented with hosts=HostAllowList"):
        kit.ours.instrument(client)


async def test_instrument_an_async_client(kit: SimpleNamespace) -> None:
    client = kit.http.AsyncClient(transport=kit.http.MockTransport(echo_handler(kit.http)))
    kit.ours.instrument(client)
    kit.ours.instrument(client)
    async with RunContext(CHILD):
        got = (await client.get("https://a.example/")).json()
    assert got["x-root-run-id"] == ROOT.value


def test_instrument_refuses_what_is_not_a_client_of_its_package(kit: SimpleNamespace) -> None:
    other = importlib.import_module("httpx2" if kit.http.__name__ == "httpx" else "httpx")
    with pytest.raises(TypeError, match=rf"must be a {kit.http.__name__}\.Client or"):
        kit.ours.instrument(other.Client())


# Through a real server on 127.0.0.1.


# Generous timeouts: on a loaded CI machine, 200 requests waiting for a pooled connection can
# take longer than httpx's default of 5 seconds.
TIMEOUT = 60.0


def real_client(kit: SimpleNamespace, server: LocalServer, **options: Any) -> Any:
    transport = kit.ours.RunIdTransport(**options)
    return kit.http.Client(base_url=server.url, transport=transport, timeout=TIMEOUT)


def real_async_client(kit: SimpleNamespace, server: LocalServer) -> Any:
    transport = kit.ours.AsyncRunIdTransport()
    return kit.http.AsyncClient(base_url=server.url, transport=transport, timeout=TIMEOUT)


def test_real_server_gets_the_run_and_its_lineage(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    with real_client(kit, server) as client, RunContext(CHILD):
        got = client.get("/echo").json()["headers"]
    assert got == {
        "x-run-id": CHILD.value,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }


def test_real_server_gets_nothing_outside_a_run_and_the_callers_header_wins(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    with real_client(kit, server) as client:
        outside = client.get("/echo").json()["headers"]
        with RunContext(CHILD):
            mine = client.get("/echo", headers={"X-Run-Id": "mine"}).json()["headers"]
            parent = client.get("/echo", headers={"X-Parent-Run-Id": "mine"}).json()["headers"]
    assert outside == dict.fromkeys(RUN_HEADERS)
    assert mine == {"x-run-id": "mine", "x-parent-run-id": None, "x-root-run-id": None}
    assert parent == {"x-run-id": None, "x-parent-run-id": "mine", "x-root-run-id": None}


async def test_real_server_async_gets_nothing_outside_a_run_and_the_callers_header_wins(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    async with real_async_client(kit, server) as client:
        outside = (await client.get("/echo")).json()["headers"]
        async with RunContext(CHILD):
            mine = (await client.get("/echo", headers={"x-run-id": "mine"})).json()["headers"]
            root = (await client.get("/echo", headers={"X-Root-Run-Id": "mine"})).json()["headers"]
    assert outside == dict.fromkeys(RUN_HEADERS)
    assert mine == {"x-run-id": "mine", "x-parent-run-id": None, "x-root-run-id": None}
    assert root == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}


def test_real_streaming_upload_and_download_carry_the_run(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(16):
            yield b"x" * 4096

    with real_client(kit, server) as client, RunContext(ROOT):
        uploaded = client.post("/echo", content=body()).json()
        with client.stream("GET", "/stream", params={"chunks": 32}) as response:
            chunks = list(response.iter_bytes())
    assert uploaded["headers"]["x-run-id"] == ROOT.value
    assert uploaded["body_length"] == 16 * 4096
    data = b"".join(chunks)
    first, _, rest = data.partition(b"\n")
    assert ROOT.value.encode() in first
    assert len(rest) == 32 * 1024


async def test_real_async_streaming_upload_and_download(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1000

    async with real_async_client(kit, server) as client, RunContext(CHILD):
        uploaded = (await client.post("/echo", content=body())).json()
        async with client.stream("GET", "/stream") as response:
            data = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert uploaded == {
        "headers": {
            "x-run-id": CHILD.value,
            "x-parent-run-id": ROOT.value,
            "x-root-run-id": ROOT.value,
        },
        "body_length": 8000,
        "marker": None,
    }
    assert CHILD.value.encode() in data.partition(b"\n")[0]


def test_real_redirect_to_another_host_loses_ours_and_keeps_the_callers(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    with real_client(kit, server, hosts=("127.0.0.1",)) as client, RunContext(CHILD):
        inside = client.get("/redirect", params={"to": f"{server.url}/echo"}, follow_redirects=True)
        outside = client.get(
            "/redirect",
            params={"to": f"{server.other_url}/echo"},
            headers={"X-Root-Run-Id": "mine"},
            follow_redirects=True,
        )
    assert inside.json()["headers"]["x-run-id"] == CHILD.value
    assert outside.url.host == "localhost"
    assert outside.json()["headers"] == {
        "x-run-id": None,
        "x-parent-run-id": None,
        "x-root-run-id": "mine",
    }


async def test_real_server_200_concurrent_runs_on_one_shared_async_client(
    kit: SimpleNamespace, server: LocalServer
) -> None:
    async with real_async_client(kit, server) as client:

        async def one() -> tuple[str, Any]:
            async with RunContext() as run:
                await asyncio.sleep(0)
                response = await client.get("/echo", params={"marker": run.run_id.value})
                return run.run_id.value, response.json()

        pairs = await asyncio.gather(*(one() for _ in range(200)))
    for sent, got in pairs:
        assert got["headers"]["x-run-id"] == sent
        assert got["marker"] == sent
    assert len({sent for sent, _ in pairs}) == 200


def test_a_header_the_caller_changed_between_hops_is_theirs_and_stays(kit: SimpleNamespace) -> None:
    """A request hook that rewrites X-Run-Id on the redirected request wins over ours."""
    hops: list[str] = []

    def rewrite_on_redirect(request: Any) -> None:
        hops.append(str(request.url))
        if len(hops) > 1:
            request.headers["X-Run-Id"] = "changed"

    client = sync_client(kit, hosts=("a.example",))
    client.event_hooks = {"request": [rewrite_on_redirect]}
    with RunContext(CHILD):
        response = client.get(
            "https://a.example/redirect", params={"to": "https://b.example/"}, follow_redirects=True
        )
    assert response.json() == {
        "x-run-id": "changed",
        "x-parent-run-id": None,
        "x-root-run-id": None,
    }


def test_headers_without_the_known_layout_go_through_the_mapping_api(
    kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path relies on httpx internals; without them the public API gives the same."""
    from agent_run_id import _httpx_stamp

    assert _httpx_stamp._probe(dict) is False
    client = sync_client(kit)
    assert client._transport._stamp.fast_type is kit.http.Headers
    monkeypatch.setattr(client._transport._stamp, "fast_type", None)
    with RunContext(CHILD):
        ours = client.get("https://a.example/").json()
        got = client.get("https://a.example/", headers={"X-Root-Run-Id": "mine"}).json()
        mine = client.get("https://a.example/", headers={"X-Run-Id": "mine"}).json()
    assert ours == {
        "x-run-id": CHILD.value,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }
    assert got == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}
    assert mine == {"x-run-id": "mine", "x-parent-run-id": None, "x-root-run-id": None}


# header_name: the run id under another name (issue 12, item 8).

REQUEST_ID = "X-Request-ID"
NAMED = ("x-request-id", *RUN_HEADERS)


def named_handler(http: ModuleType) -> Any:
    """A MockTransport handler that answers with X-Request-ID and the run headers it got."""

    def handle(request: Any) -> Any:
        got = {name: request.headers.get(name) for name in NAMED}
        if request.url.path == "/redirect":
            return http.Response(302, headers={"Location": request.url.params["to"]}, json=got)
        return http.Response(200, json=got)

    return handle


def named_clients(kit: SimpleNamespace, **options: Any) -> tuple[Any, Any, Any]:
    """A sync client, an async client and an instrumented async client, each with ``options``."""
    mock = kit.http.MockTransport(named_handler(kit.http))
    return (
        kit.http.Client(transport=kit.ours.RunIdTransport(mock, **options)),
        kit.http.AsyncClient(transport=kit.ours.AsyncRunIdTransport(mock, **options)),
        kit.ours.instrument(kit.http.AsyncClient(transport=mock), **options),
    )


async def test_header_name_sends_the_run_under_that_name_and_the_lineage_as_it_is(
    kit: SimpleNamespace,
) -> None:
    sync, aclient, instrumented = named_clients(kit, header_name=REQUEST_ID)
    expected = {
        "x-request-id": CHILD.value,
        "x-run-id": None,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }
    async with aclient, instrumented, RunContext(CHILD):
        got = [sync.get("https://a.example/").json()]
        for client in (aclient, instrumented):
            got.append((await client.get("https://a.example/")).json())
    assert got == [expected] * 3
    with RunContext(ROOT):
        root = sync.get("https://a.example/").json()
    assert root == {**dict.fromkeys(NAMED), "x-request-id": ROOT.value}
    assert sync.get("https://a.example/").json() == dict.fromkeys(NAMED)


async def test_with_header_name_the_callers_rule_reads_that_name_not_x_run_id(
    kit: SimpleNamespace,
) -> None:
    """The caller's X-Request-ID makes the request theirs; their X-Run-Id is just a header."""
    sync, aclient, instrumented = named_clients(kit, header_name="x-request-id")
    async with aclient, instrumented, RunContext(ROOT):
        for client in (sync, aclient, instrumented):
            sent = [
                client.get("https://a.example/", headers={"X-REQUEST-ID": "mine"}),
                client.get("https://a.example/", headers={"X-Run-Id": "other"}),
                client.get("https://a.example/", headers={"X-Root-Run-Id": "mine"}),
            ]
            mine, other, root = [r if client is sync else await r for r in sent]
            assert mine.json() == {**dict.fromkeys(NAMED), "x-request-id": "mine"}
            assert other.json() == {
                **dict.fromkeys(NAMED),
                "x-request-id": ROOT.value,
                "x-run-id": "other",
            }
            assert root.json() == {**dict.fromkeys(NAMED), "x-root-run-id": "mine"}


def test_with_header_name_a_redirect_outside_the_hosts_loses_it(kit: SimpleNamespace) -> None:
    sync, _, _ = named_clients(kit, header_name=REQUEST_ID, hosts=("a.example",))
    with RunContext(CHILD):
        response = sync.get(
            "https://a.example/redirect", params={"to": "https://b.example/"}, follow_redirects=True
        )
        back = sync.get(
            "https://a.example/redirect", params={"to": "https://a.example/"}, follow_redirects=True
        )
    assert response.history[0].json()["x-request-id"] == CHILD.value
    assert response.json() == dict.fromkeys(NAMED)
    assert [r.json()["x-request-id"] for r in [*back.history, back]] == [CHILD.value] * 2
    # The name goes on the wire as given: what the server sees is the caller's spelling.
    assert (b"X-Request-ID", CHILD.value.encode()) in back.request.headers.raw


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("X Request", r"header_name 'X Request' is not an HTTP header name: pass letters"),
        ("", r"header_name '' is not an HTTP header name"),
        (b"X-Run-Id", r"header_name b'X-Run-Id' is not an HTTP header name"),
        (None, r"header_name None is not an HTTP header name"),
        ("x-parent-run-id", r"header_name 'x-parent-run-id' is a lineage header"),
        ("X-Root-Run-Id", r"header_name 'X-Root-Run-Id' is a lineage header"),
    ],
)
def test_a_bad_header_name_is_refused_naming_the_option_and_the_fix(
    kit: SimpleNamespace, bad: Any, message: str
) -> None:
    name = kit.http.__name__
    for owner, make in (
        (f"agent_run_id.{name}.RunIdTransport", kit.ours.RunIdTransport),
        (f"agent_run_id.{name}.AsyncRunIdTransport", kit.ours.AsyncRunIdTransport),
        (
            f"agent_run_id.{name}.instrument",
            lambda **o: kit.ours.instrument(kit.http.Client(), **o),
        ),
    ):
        with pytest.raises(ValueError, match=rf"^{owner}: {message}"):
            make(header_name=bad)


def test_instrument_again_with_the_same_header_name_in_any_case_does_nothing(
    kit: SimpleNamespace,
) -> None:
    client = kit.http.Client(transport=kit.http.MockTransport(named_handler(kit.http)))
    kit.ours.instrument(client, header_name=REQUEST_ID)
    kit.ours.instrument(client, header_name="x-request-id")
    assert len(client.event_hooks["request"]) == 1
    with pytest.raises(
        ValueError,
        match=r"already instrumented with hosts=None, header_name='X-Request-ID', not "
        r"hosts=None, header_name='X-Run-Id': instrument each client once",
    ):
        kit.ours.instrument(client)
    assert "header_name='X-Request-ID'" in repr(
        kit.ours.RunIdTransport(client._transport, header_name=REQUEST_ID)
    )


# The end-to-end chain: service A takes X-Request-ID in and passes it on to service B.


def test_a_service_chain_on_x_request_id_keeps_one_run_end_to_end(kit: SimpleNamespace) -> None:
    """Real servers: A (RunIdMiddleware on X-Request-ID) calls B through RunIdTransport."""
    from agent_run_id.asgi import RunIdMiddleware

    seen_by_b: list[dict[str, str]] = []

    async def service_b(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen_by_b.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    b = LocalServer(service_b)
    to_b = kit.http.Client(
        base_url=b.url,
        transport=kit.ours.RunIdTransport(header_name=REQUEST_ID),
        timeout=TIMEOUT,
    )

    async def handler(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # A sync client in a worker thread, which gets a copy of the request's context.
        status = (await asyncio.to_thread(to_b.get, "/work")).status_code
        body = agent_run_id.current_run_id().value.encode()  # type: ignore[union-attr]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body if status == 204 else b"?"})

    a = LocalServer(RunIdMiddleware(handler, header_name=REQUEST_ID))
    try:
        with kit.http.Client(base_url=a.url, timeout=TIMEOUT) as caller:
            given = caller.get("/", headers={REQUEST_ID: ROOT.value})
            minted = caller.get("/")
    finally:
        to_b.close()
        a.close()
        b.close()
    assert given.text == ROOT.value
    assert given.headers[REQUEST_ID] == ROOT.value
    assert minted.text == minted.headers[REQUEST_ID] != ROOT.value
    assert [seen.get("x-request-id") for seen in seen_by_b] == [ROOT.value, minted.text]
    assert [name for seen in seen_by_b for name in seen if name in RUN_HEADERS] == []


# A transport of the wrong kind for its client (issue 12, item 16).


async def test_a_sync_transport_in_an_async_client_raises_type_error_naming_the_async_one(
    kit: SimpleNamespace,
) -> None:
    name = kit.http.__name__
    message = (
        rf"an agent_run_id\.{name}\.RunIdTransport was given to an {name}\.AsyncClient, which "
        rf"needs a transport of the other kind: pass "
        rf"transport=agent_run_id\.{name}\.AsyncRunIdTransport\(\.\.\.\) to an {name}\.AsyncClient"
    )
    mock = kit.http.MockTransport(echo_handler(kit.http))
    client = kit.http.AsyncClient(transport=kit.ours.RunIdTransport(mock))
    with pytest.raises(TypeError, match=message):
        await client.get("https://a.example/")
    with pytest.raises(TypeError, match=message):
        async with kit.http.AsyncClient(transport=kit.ours.RunIdTransport(mock)):
            pass  # pragma: no cover - entering raises
    with pytest.raises(TypeError, match=message):
        await client.aclose()


def test_an_async_transport_in_a_sync_client_raises_type_error_naming_the_sync_one(
    kit: SimpleNamespace,
) -> None:
    name = kit.http.__name__
    message = (
        rf"an agent_run_id\.{name}\.AsyncRunIdTransport was given to an {name}\.Client, which "
        rf"needs a transport of the other kind: pass "
        rf"transport=agent_run_id\.{name}\.RunIdTransport\(\.\.\.\) to an {name}\.Client"
    )
    mock = kit.http.MockTransport(echo_handler(kit.http))
    client = kit.http.Client(transport=kit.ours.AsyncRunIdTransport(mock))
    with RunContext(ROOT), pytest.raises(TypeError, match=message):
        client.get("https://a.example/")
    with (
        pytest.raises(TypeError, match=message),
        kit.http.Client(transport=kit.ours.AsyncRunIdTransport(mock)),
    ):
        pass  # pragma: no cover - entering raises
    with pytest.raises(TypeError, match=message):
        client.close()


# The copy of Stamp.prepare inlined in RunIdTransport.handle_request.


class Keep:
    """A transport that keeps each request it is given and answers as told."""

    def __init__(self, http: ModuleType, status: int) -> None:
        self.http, self.status, self.requests = http, status, []

    def handle_request(self, request: Any) -> Any:
        self.requests.append(request)
        headers = {"Location": "https://c.example/"} if self.status == 302 else {}
        return self.http.Response(self.status, headers=headers)


LATER_HOP = {"agent_run_id.added": ((REQUEST_ID, CHILD.value),)}
# (what, run current, request headers, extensions, URL host, keep the package's Headers class)
PREPARE_CASES = [
    ("no run", None, {}, None, "a.example", True),
    ("root run", ROOT, {}, None, "a.example", True),
    ("child run", CHILD, {}, None, "a.example", True),
    ("extensions of the caller", ROOT, {}, {"timeout": None}, "a.example", True),
    ("caller's id", CHILD, {"X-Request-ID": "mine"}, None, "a.example", True),
    ("caller's X-Run-Id", CHILD, {"X-Run-Id": "other"}, None, "a.example", True),
    ("caller's parent", CHILD, {"x-parent-run-id": "mine"}, None, "a.example", True),
    ("host not allowed", ROOT, {}, None, "b.example", True),
    ("a later hop", ROOT, {}, LATER_HOP, "a.example", True),
    ("a later hop, changed", ROOT, {REQUEST_ID: "theirs"}, LATER_HOP, "a.example", True),
    ("another Headers class", CHILD, {}, None, "a.example", False),
]


@pytest.mark.parametrize("status", [200, 302])
@pytest.mark.parametrize("hosts", [None, ("a.example",)])
@pytest.mark.parametrize("case", PREPARE_CASES, ids=[case[0] for case in PREPARE_CASES])
def test_the_copy_inlined_in_handle_request_does_what_stamp_prepare_does(
    kit: SimpleNamespace, case: tuple[Any, ...], hosts: Any, status: int
) -> None:
    """Each branch, twice in a row (the last run's headers are kept): the same in both ways."""
    _, run, headers, extensions, host, package_headers = case
    snapshot = None if extensions is None else dict(extensions)
    answers = []
    for inlined in (True, False):
        keep = type("K", (Keep, kit.http.BaseTransport), {})(kit.http, status)
        transport = kit.ours.RunIdTransport(keep, hosts=hosts, header_name=REQUEST_ID)
        got = []
        for _ in range(2):
            request = kit.http.Request(
                "GET", f"https://{host}/", headers=headers, extensions=extensions
            )
            if not package_headers:
                request.headers = type("Other", (kit.http.Headers,), {})(headers)
            with RunContext(run) if run else contextlib.nullcontext():
                if inlined:
                    response = transport.handle_request(request)
                else:  # what handle_request does, with the original
                    added = transport._stamp.prepare(request)
                    response = keep.handle_request(request)
                    if added and status == 302:
                        take_off(request.headers, added)
            got.append((response.status_code, request.headers.raw, dict(request.extensions)))
        answers.append(got)
    assert answers[0] == answers[1]
    assert extensions == snapshot  # the caller's mapping is never marked


def test_header_names_compare_ignoring_case_and_only_with_header_names(
    kit: SimpleNamespace,
) -> None:
    from agent_run_id._outbound import OutboundHeaders

    named = OutboundHeaders("X-Request-ID", "owner")
    assert named == OutboundHeaders("x-request-id", "owner")
    assert hash(named) == hash(OutboundHeaders("x-REQUEST-id", "owner"))
    assert named != OutboundHeaders("X-Run-Id", "owner")
    assert named != "X-Request-ID"
    stamp = kit.ours.RunIdTransport(header_name="X-Request-ID")._stamp
    assert stamp == kit.ours.RunIdTransport(header_name="x-request-id")._stamp
    assert stamp != kit.ours.RunIdTransport(header_name="X-Request-ID", hosts=("a.b",))._stamp
    assert stamp != named
