"""The session (and, opted in, the user) on the wire: every outbound integration, one rule.

Each integration sends ``X-Session-Id`` beside the run headers when the run has a session, under
the same host allow-list and the same "the caller set it already" rule, and ``X-User-Id`` only
when given ``send_user=True``. A real server on 127.0.0.1 echoes every header it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests

import agent_run_id
import agent_run_id.aiohttp
import agent_run_id.httpx
import agent_run_id.requests
from agent_run_id import RunContext, RunId
from agent_run_id._outbound import OutboundHeaders
from tests._outbound_helpers import LocalServer, echo_all

ROOT = RunId.from_string("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
SESSION = "chat-42"
USER = "user-7"
WIRE = ("x-run-id", "x-parent-run-id", "x-root-run-id", "x-session-id", "x-user-id")


@pytest.fixture(scope="module")
def echo() -> Iterator[LocalServer]:
    """A real server that answers with every header it got."""
    local = LocalServer(echo_all)
    try:
        yield local
    finally:
        local.close()


class Driver:
    """One outbound integration, made with ``options``, sending GET requests."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.options = options
        self.is_async = kind.startswith(("async", "aiohttp"))
        self.client: Any = None if self.is_async else self._sync_client()

    def _sync_client(self) -> Any:
        package, _, how = self.kind.partition(".")
        if package == "requests":
            session = requests.Session()
            if how == "RunIdAdapter":
                for prefix in ("http://", "https://"):
                    adapter = agent_run_id.requests.RunIdAdapter(**self.options)
                    session.mount(prefix, adapter)
                return session
            return agent_run_id.requests.instrument(session, **self.options)
        http = importlib.import_module(package)
        ours = importlib.import_module(f"agent_run_id.{package}")
        if how == "RunIdTransport":
            return http.Client(transport=ours.RunIdTransport(**self.options))
        return ours.instrument(http.Client(), **self.options)

    def _async_client(self) -> Any:
        kind = self.kind.removeprefix("async ")
        if kind == "aiohttp":
            config = agent_run_id.aiohttp.trace_config(**self.options)
            return aiohttp.ClientSession(trace_configs=[config])
        package, _, how = kind.partition(".")
        http = importlib.import_module(package)
        ours = importlib.import_module(f"agent_run_id.{package}")
        # 200 tasks share the pool of 100 connections: half wait for one, longer than the
        # default 5 s on a busy 2-core machine, so the pool wait is given a wide bound.
        timeout = http.Timeout(60.0)
        if how == "AsyncRunIdTransport":
            transport = ours.AsyncRunIdTransport(**self.options)
            return http.AsyncClient(transport=transport, timeout=timeout)
        return ours.instrument(http.AsyncClient(timeout=timeout), **self.options)

    def get(self, url: str, headers: dict[str, str] | None = None) -> dict[str, str | None]:
        """Send a GET from this thread; return the wire headers the server got."""
        if self.kind.startswith("requests"):
            response = self.client.get(url, headers=headers)
        else:
            response = self.client.get(url, headers=headers, follow_redirects=True)
        response.raise_for_status()
        return pick(response.json())

    async def aget(self, url: str, headers: dict[str, str] | None = None) -> dict[str, str | None]:
        """Send a GET from this task; return the wire headers the server got."""
        if self.client is None:
            self.client = self._async_client()
        if self.kind == "aiohttp":
            async with self.client.get(url, headers=headers) as response:
                response.raise_for_status()
                return pick(await response.json())
        response = await self.client.get(url, headers=headers, follow_redirects=True)
        response.raise_for_status()
        return pick(response.json())

    async def fetch(self, url: str, headers: dict[str, str] | None = None) -> dict[str, str | None]:
        """Send a GET the way this kind sends (sync clients block, which tests allow)."""
        if self.is_async:
            return await self.aget(url, headers)
        return self.get(url, headers)

    async def aclose(self) -> None:
        if self.client is None:
            return
        if self.kind == "aiohttp":
            await self.client.close()
        elif self.is_async:
            await self.client.aclose()
        else:
            self.client.close()


def pick(echoed: dict[str, str]) -> dict[str, str | None]:
    return {name: echoed.get(name) for name in WIRE}


SYNC_KINDS = [
    "httpx.RunIdTransport",
    "httpx2.RunIdTransport",
    "httpx.instrument",
    "httpx2.instrument",
    "requests.RunIdAdapter",
    "requests.instrument",
]
ASYNC_KINDS = [
    "async httpx.AsyncRunIdTransport",
    "async httpx2.AsyncRunIdTransport",
    "async httpx.instrument",
    "async httpx2.instrument",
    "aiohttp",
]
KINDS = SYNC_KINDS + ASYNC_KINDS


@contextlib.asynccontextmanager
async def driver(kind: str, **options: Any) -> Any:
    made = Driver(kind, **options)
    try:
        yield made
    finally:
        await made.aclose()


def wire(
    run: RunId | None = ROOT, session: str | None = None, user: str | None = None
) -> dict[str, str | None]:
    expected: dict[str, str | None] = dict.fromkeys(WIRE)
    if run is not None:
        expected["x-run-id"] = run.value
        if run.parent is not None:
            expected["x-parent-run-id"] = run.parent.value
            expected["x-root-run-id"] = run.root.value
    expected["x-session-id"] = session
    expected["x-user-id"] = user
    return expected


@pytest.mark.parametrize("kind", KINDS)
async def test_the_session_goes_beside_the_run_and_the_user_stays_home(
    kind: str, echo: LocalServer
) -> None:
    async with driver(kind) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER):
            got = await client.fetch(f"{echo.url}/echo")
        assert got == wire(session=SESSION)
        with RunContext(ROOT):
            assert await client.fetch(f"{echo.url}/echo") == wire()
        assert await client.fetch(f"{echo.url}/echo") == wire(None)


@pytest.mark.parametrize("kind", KINDS)
async def test_send_user_sends_the_runs_user_too(kind: str, echo: LocalServer) -> None:
    async with driver(kind, send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER):
            assert await client.fetch(f"{echo.url}/echo") == wire(session=SESSION, user=USER)
        with RunContext(ROOT, user_id=USER):
            assert await client.fetch(f"{echo.url}/echo") == wire(user=USER)
        with RunContext(ROOT, session_id=SESSION):
            assert await client.fetch(f"{echo.url}/echo") == wire(session=SESSION)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("user", ["Jane Doe", "jürgen", "a,b", "x" * 129, "bad\r\nX-Evil: 1"])
async def test_a_user_id_no_header_can_carry_is_left_out_and_the_request_goes(
    kind: str, user: str, echo: LocalServer
) -> None:
    async with driver(kind, send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=user):
            got = await client.fetch(f"{echo.url}/echo")
    assert got == wire(session=SESSION)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_child_run_sends_the_session_it_inherited_but_not_the_user(
    kind: str, echo: LocalServer
) -> None:
    async with driver(kind, send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER), RunContext() as child:
            got = await client.fetch(f"{echo.url}/echo")
    assert got == wire(child.run_id, session=SESSION)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_after_annotate_carries_the_new_session_and_user(
    kind: str, echo: LocalServer
) -> None:
    """The client keeps the last run's headers: annotate() in the same run must change them."""
    async with driver(kind, send_user=True) as client:
        with RunContext(ROOT):
            before = await client.fetch(f"{echo.url}/echo")
            assert agent_run_id.annotate(session_id="chat-1", user_id="u-1")
            first = await client.fetch(f"{echo.url}/echo")
            agent_run_id.annotate(session_id="chat-2")
            second = await client.fetch(f"{echo.url}/echo")
            agent_run_id.annotate(user_id="u-2")
            third = await client.fetch(f"{echo.url}/echo")
    assert before == wire()
    assert first == wire(session="chat-1", user="u-1")
    assert second == wire(session="chat-2", user="u-1")
    assert third == wire(session="chat-2", user="u-2")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_session_or_user_header_the_caller_set_stays_and_the_run_still_goes(
    kind: str, echo: LocalServer
) -> None:
    async with driver(kind, send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER):
            session = await client.fetch(f"{echo.url}/echo", {"x-SESSION-id": "theirs"})
            user = await client.fetch(f"{echo.url}/echo", {"X-User-Id": "them"})
    assert session == wire(session="theirs", user=USER)
    assert user == wire(session=SESSION, user="them")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_carrying_the_callers_run_header_gets_no_session_either(
    kind: str, echo: LocalServer
) -> None:
    mine = "5e5e5e5e-0000-4000-8000-000000000000"
    async with driver(kind, send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER):
            got = await client.fetch(f"{echo.url}/echo", {"X-Run-Id": mine})
    assert got == {**wire(None), "x-run-id": mine}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_host_outside_the_allow_list_gets_neither_session_nor_user(
    kind: str, echo: LocalServer
) -> None:
    async with driver(kind, hosts=("127.0.0.1",), send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER):
            allowed = await client.fetch(f"{echo.url}/echo")
            other = await client.fetch(f"{echo.other_url}/echo")
    assert allowed == wire(session=SESSION, user=USER)
    assert other == wire(None)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_redirect_to_a_host_outside_the_list_loses_session_and_user(
    kind: str, echo: LocalServer
) -> None:
    async with driver(kind, hosts=("127.0.0.1",), send_user=True) as client:
        with RunContext(ROOT, session_id=SESSION, user_id=USER):
            away = await client.fetch(f"{echo.url}/redirect?to={echo.other_url}/echo")
            back = await client.fetch(f"{echo.other_url}/redirect?to={echo.url}/echo")
    assert away == wire(None)
    assert back == wire(session=SESSION, user=USER)


def tag(i: int) -> tuple[RunId, str, str]:
    return RunId.generate(), f"chat-{i}", f"user-{i}"


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_200_concurrent_runs_with_distinct_sessions_never_mix_on_the_wire(
    kind: str, echo: LocalServer
) -> None:
    """One shared client; some runs have no user, some change their session half way."""
    async with driver(kind, send_user=True) as client:

        async def one(i: int) -> list[str]:
            run, session, user = tag(i)
            has_user = user if i % 2 else None
            with RunContext(run, session_id=session, user_id=has_user):
                await asyncio.sleep(0)
                first = await client.aget(f"{echo.url}/echo")
                if i % 3 == 0:
                    agent_run_id.annotate(session_id=f"{session}-late", user_id=user)
                await asyncio.sleep(0)
                second = await client.aget(f"{echo.url}/echo")
            late = i % 3 == 0
            expected = [
                wire(run, session=session, user=has_user),
                wire(
                    run,
                    session=f"{session}-late" if late else session,
                    user=user if late else has_user,
                ),
            ]
            return [
                f"task {i} got {got}"
                for got, want in zip([first, second], expected, strict=True)
                if got != want
            ]

        results = await asyncio.gather(*(one(i) for i in range(200)))
    assert [failure for failures in results for failure in failures] == []


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_50_threads_on_one_client_with_distinct_sessions_never_mix(
    kind: str, echo: LocalServer
) -> None:
    client = Driver(kind, send_user=True)
    barrier = threading.Barrier(50)
    failures: list[str] = []

    def one(i: int) -> None:
        run, session, user = tag(i)
        with RunContext(run, session_id=session, user_id=user):
            barrier.wait()
            for _ in range(4):
                got = client.get(f"{echo.url}/echo")
                if got != wire(run, session=session, user=user):
                    failures.append(f"thread {i} got {got}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.client.close()
    assert failures == []


# The options.

OWNERS = {
    "agent_run_id.httpx.RunIdTransport": lambda **o: agent_run_id.httpx.RunIdTransport(**o),
    "agent_run_id.httpx.AsyncRunIdTransport": lambda **o: agent_run_id.httpx.AsyncRunIdTransport(
        **o
    ),
    "agent_run_id.httpx.instrument": lambda **o: agent_run_id.httpx.instrument(httpx.Client(), **o),
    "agent_run_id.requests.RunIdAdapter": lambda **o: agent_run_id.requests.RunIdAdapter(**o),
    "agent_run_id.requests.instrument": lambda **o: agent_run_id.requests.instrument(
        requests.Session(), **o
    ),
    "agent_run_id.aiohttp.trace_config": lambda **o: agent_run_id.aiohttp.trace_config(**o),
}


@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_send_user_must_be_a_bool_and_the_message_names_the_option(owner: str) -> None:
    with pytest.raises(TypeError, match=rf"^{owner}: send_user must be True or False, got 'yes'"):
        OWNERS[owner](send_user="yes")


@pytest.mark.parametrize("owner", sorted(OWNERS))
@pytest.mark.parametrize("name", ["X-Session-Id", "x-user-id"])
def test_the_session_and_user_headers_are_not_a_header_name_for_the_run_id(
    owner: str, name: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{owner}: header_name '{name}' is the session or user"):
        OWNERS[owner](header_name=name)


def test_instrument_again_with_another_send_user_is_refused_naming_both() -> None:
    client = agent_run_id.httpx.instrument(httpx.Client())
    assert agent_run_id.httpx.instrument(client) is client
    with pytest.raises(ValueError, match=r"header_name='X-Run-Id', not .*send_user=True"):
        agent_run_id.httpx.instrument(client, send_user=True)
    session = agent_run_id.requests.instrument(requests.Session(), send_user=True)
    with pytest.raises(ValueError, match=r"header_name='X-Run-Id', send_user=True, not"):
        agent_run_id.requests.instrument(session)
    assert "send_user=True" in repr(agent_run_id.httpx.RunIdTransport(send_user=True))
    assert "send_user" not in repr(agent_run_id.httpx.RunIdTransport())


def test_a_pickled_adapter_keeps_send_user() -> None:
    adapter = pickle.loads(pickle.dumps(agent_run_id.requests.RunIdAdapter(send_user=True)))
    assert adapter._outbound.send_user is True
    assert adapter._outbound == OutboundHeaders("X-Run-Id", "owner", send_user=True)
    assert adapter._outbound != OutboundHeaders("X-Run-Id", "owner")
    assert repr(adapter._outbound) == "OutboundHeaders(header_name='X-Run-Id', send_user=True)"


def test_headers_holds_the_session_but_never_the_user() -> None:
    """agent_run_id.headers(), for extra_headers=: the same session header as the wrappers."""
    with RunContext(ROOT, session_id=SESSION, user_id=USER):
        assert agent_run_id.headers() == {"X-Run-Id": ROOT.value, "X-Session-Id": SESSION}


# The copy of Stamp.prepare inlined in RunIdTransport.handle_request, with sessions and users.


class Keep(httpx.BaseTransport):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def handle_request(self, request: Any) -> Any:
        self.requests.append(request)
        return httpx.Response(200)


# (what, session and user of the run, request headers, send_user)
SESSION_CASES = [
    ("session", SESSION, None, {}, False),
    ("session and user, user not sent", SESSION, USER, {}, False),
    ("session and user, user sent", SESSION, USER, {}, True),
    ("user alone, sent", None, USER, {}, True),
    ("the caller's session", SESSION, USER, {"X-Session-Id": "theirs"}, True),
    ("the caller's user", SESSION, USER, {"x-user-id": "them"}, True),
    ("the caller's user, not sent", SESSION, USER, {"x-user-id": "them"}, False),
    ("the caller's run id", SESSION, USER, {"x-run-id": "mine"}, True),
]


@pytest.mark.parametrize("case", SESSION_CASES, ids=[case[0] for case in SESSION_CASES])
def test_the_inlined_copy_does_what_prepare_does_with_sessions_and_users(
    case: tuple[Any, ...],
) -> None:
    """Twice in a row, then after annotate(): the same headers either way."""
    _, session, user, headers, send_user = case
    answers = []
    for inlined in (True, False):
        keep = Keep()
        transport = agent_run_id.httpx.RunIdTransport(keep, send_user=send_user)
        got = []
        with RunContext(ROOT, session_id=session, user_id=user):
            for step in range(3):
                if step == 2:
                    agent_run_id.annotate(session_id="chat-late", user_id="u-late")
                request = httpx.Request("GET", "https://a.example/", headers=headers)
                if inlined:
                    transport.handle_request(request)
                else:
                    added = transport._stamp.prepare(request)
                    keep.handle_request(request)
                    assert all(request.headers[name] == value for name, value in added)
                got.append(request.headers.raw)
        answers.append(got)
    assert answers[0] == answers[1]
