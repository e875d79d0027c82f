"""agent_run_id.requests against a real server on 127.0.0.1."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from agent_run_id import RunContext, RunId
from agent_run_id.requests import RunIdAdapter, instrument
from tests._outbound_helpers import RUN_HEADERS, LocalServer, echo_all, server

__all__ = ["server"]

ROOT = RunId.from_string("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
CHILD = RunId("1c7a6e4f-3d2b-4f9c-8a8e-6b5d4c3b2a19", parent=ROOT)
NONE = dict.fromkeys(RUN_HEADERS)
FULL_CHILD = {"x-run-id": CHILD.value, "x-parent-run-id": ROOT.value, "x-root-run-id": ROOT.value}


def seen_for(server: LocalServer, marker: str) -> list[dict[str, str | None]]:
    return [run for _, seen_marker, run in server.seen if seen_marker == marker]


def echoed(response: requests.Response) -> Any:
    response.raise_for_status()
    return response.json()["headers"]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with instrument(requests.Session()) as made:
        yield made


def test_outside_any_run_no_header_is_added(session: requests.Session, server: LocalServer) -> None:
    assert echoed(session.get(f"{server.url}/echo")) == NONE


def test_a_run_and_its_lineage_are_added_when_the_request_is_sent(
    session: requests.Session, server: LocalServer
) -> None:
    with RunContext(ROOT):
        root = echoed(session.get(f"{server.url}/echo"))
    with RunContext(CHILD):
        child = echoed(session.get(f"{server.url}/echo"))
    assert root == {"x-run-id": ROOT.value, "x-parent-run-id": None, "x-root-run-id": None}
    assert child == {
        "x-run-id": CHILD.value,
        "x-parent-run-id": ROOT.value,
        "x-root-run-id": ROOT.value,
    }


def test_a_header_the_caller_or_the_session_set_is_never_overwritten(
    session: requests.Session, server: LocalServer
) -> None:
    with RunContext(CHILD):
        mine = echoed(session.get(f"{server.url}/echo", headers={"x-run-id": "mine"}))
        parent = echoed(session.get(f"{server.url}/echo", headers={"X-Parent-Run-Id": "mine"}))
        root = echoed(session.get(f"{server.url}/echo", headers={"x-root-run-id": "mine"}))
        session.headers["X-Run-Id"] = "session-wide"
        default = echoed(session.get(f"{server.url}/echo"))
    assert mine == {"x-run-id": "mine", "x-parent-run-id": None, "x-root-run-id": None}
    # Any one of the names makes the lineage the caller's: none of the run's is mixed in.
    assert parent == {"x-run-id": None, "x-parent-run-id": "mine", "x-root-run-id": None}
    assert root == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}
    assert default["x-run-id"] == "session-wide"


def test_a_none_header_does_not_opt_a_request_out_but_a_plain_session_does(
    session: requests.Session, server: LocalServer
) -> None:
    """As docs/outbound.md says: requests drops a None header before the adapter sees it."""
    with RunContext(ROOT), requests.Session() as plain:
        dropped = echoed(session.get(f"{server.url}/echo", headers={"X-Run-Id": None}))
        unwrapped = echoed(plain.get(f"{server.url}/echo"))
    assert dropped["x-run-id"] == ROOT.value
    assert unwrapped == NONE


def test_only_allowed_hosts_get_the_run(server: LocalServer) -> None:
    session = instrument(requests.Session(), hosts=("127.0.0.1",))
    with RunContext(ROOT):
        assert echoed(session.get(f"{server.url}/echo"))["x-run-id"] == ROOT.value
        assert echoed(session.get(f"{server.other_url}/echo")) == NONE


def test_a_redirect_to_a_host_outside_the_list_loses_ours_and_keeps_the_callers(
    server: LocalServer,
) -> None:
    session = instrument(requests.Session(), hosts=("127.0.0.1",))
    with RunContext(CHILD):
        same = session.get(f"{server.url}/redirect", params={"to": f"{server.url}/echo"})
        away = session.get(
            f"{server.url}/redirect",
            params={"to": f"{server.other_url}/echo", "status": "307"},
            headers={"X-Root-Run-Id": "mine"},
        )
        back = session.get(
            f"{server.url}/redirect",
            params={
                "marker": "back-1",
                "to": f"{server.other_url}/redirect?marker=back-2&to={server.url}/echo",
            },
        )
    assert echoed(same)["x-run-id"] == CHILD.value
    assert away.url.startswith(server.other_url)
    assert echoed(away) == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}
    assert echoed(back)["x-parent-run-id"] == ROOT.value
    assert len(back.history) == 2
    assert seen_for(server, "back-1") == [FULL_CHILD]
    assert seen_for(server, "back-2") == [NONE]


def instrumented_then_plain_mount(server: LocalServer) -> requests.Session:
    session = instrument(requests.Session(), hosts=("127.0.0.1",))
    session.mount(server.other_url, HTTPAdapter(max_retries=3))  # after instrument: not covered
    return session


def run_id_adapter_with_a_plain_host_adapter(server: LocalServer) -> requests.Session:
    session = requests.Session()
    session.mount("http://", RunIdAdapter(hosts=("127.0.0.1",)))
    session.mount(server.other_url, HTTPAdapter())
    return session


@pytest.mark.parametrize(
    "make", [instrumented_then_plain_mount, run_id_adapter_with_a_plain_host_adapter]
)
def test_a_redirect_to_a_prefix_served_by_a_plain_adapter_loses_ours(
    server: LocalServer, make: Any
) -> None:
    """requests builds the next hop from a copy of the first request; ours are off it by then."""
    session = make(server)
    tag = make.__name__
    assert type(session.get_adapter(f"{server.other_url}/")) is HTTPAdapter
    with RunContext(CHILD):
        away = session.get(
            f"{server.url}/redirect",
            params={"marker": f"{tag}-1", "to": f"{server.other_url}/echo"},
        )
        mine = session.get(
            f"{server.url}/redirect",
            params={"to": f"{server.other_url}/echo", "status": "307"},
            headers={"X-Root-Run-Id": "mine"},
        )
        same = session.get(
            f"{server.url}/redirect",
            params={"marker": f"{tag}-2", "to": f"{server.url}/echo"},
        )
    assert away.url.startswith(server.other_url)
    assert seen_for(server, f"{tag}-1") == [FULL_CHILD]
    assert echoed(away) == NONE
    assert echoed(mine) == {"x-run-id": None, "x-parent-run-id": None, "x-root-run-id": "mine"}
    assert seen_for(server, f"{tag}-2") == [FULL_CHILD]
    assert echoed(same) == FULL_CHILD


def test_a_302_without_a_location_is_no_redirect_and_the_request_keeps_the_run(
    server: LocalServer,
) -> None:
    session = run_id_adapter_with_a_plain_host_adapter(server)
    with RunContext(CHILD):
        response = session.get(f"{server.url}/redirect", params={"marker": "no-location"})
    assert response.status_code == 302
    assert response.request.headers["X-Run-Id"] == CHILD.value
    assert seen_for(server, "no-location") == [FULL_CHILD]


def test_a_redirect_not_followed_gives_a_next_request_without_ours(server: LocalServer) -> None:
    session = run_id_adapter_with_a_plain_host_adapter(server)
    with RunContext(CHILD):
        response = session.get(
            f"{server.url}/redirect",
            params={"marker": "not-followed", "to": f"{server.url}/echo"},
            allow_redirects=False,
        )
        assert response.next is not None
        assert response.next.headers.get("X-Run-Id") is None
        assert echoed(session.send(response.next)) == FULL_CHILD
    assert seen_for(server, "not-followed") == [FULL_CHILD]


def test_instrument_keeps_the_users_adapters_with_their_retries_and_pools(
    server: LocalServer,
) -> None:
    session = requests.Session()
    retries = Retry(total=2, status_forcelist=[503], backoff_factor=0)
    adapter = HTTPAdapter(max_retries=retries, pool_maxsize=32)
    session.mount("http://", adapter)
    instrument(session)
    mounted: Any = session.get_adapter(f"{server.url}/")
    assert mounted.adapter is adapter
    assert mounted.max_retries is retries
    assert mounted._pool_maxsize == 32
    assert "agent_run_id" in repr(mounted)
    with RunContext(ROOT):
        response = session.get(f"{server.url}/flaky", params={"key": "instrument", "marker": "m1"})
    assert echoed(response)["x-run-id"] == ROOT.value
    tries = [run for path, marker, run in server.seen if marker == "m1"]
    assert tries == [{"x-run-id": ROOT.value, "x-parent-run-id": None, "x-root-run-id": None}] * 2


def test_a_setting_changed_on_the_mounted_adapter_changes_the_one_that_sends(
    server: LocalServer,
) -> None:
    session = requests.Session()
    adapter = HTTPAdapter()
    session.mount("http://", adapter)
    instrument(session)
    mounted: Any = session.get_adapter(f"{server.url}/")
    retries = Retry(total=1, status_forcelist=[503], backoff_factor=0)
    mounted.max_retries = retries
    assert adapter.max_retries is retries
    assert "max_retries" not in vars(mounted)
    with RunContext(ROOT):
        response = session.get(f"{server.url}/flaky", params={"key": "setter", "marker": "m3"})
    assert echoed(response)["x-run-id"] == ROOT.value
    assert [marker for _, marker, _ in server.seen].count("m3") == 2


def test_a_wrapped_adapter_is_an_http_adapter_whose_own_methods_answer() -> None:
    class Custom(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            self.custom_pool = True
            super().init_poolmanager(*args, **kwargs)

    class Other(requests.adapters.BaseAdapter):
        pass

    session = requests.Session()
    custom, other = Custom(), Other()
    session.mount("https://", custom)
    session.mount("file://", other)
    instrument(session)
    mounted: Any = session.get_adapter("https://a.example/")
    assert isinstance(mounted, HTTPAdapter)
    assert mounted.adapter is custom
    mounted.custom_pool = False
    mounted.init_poolmanager(2, 2)
    assert custom.custom_pool is True
    assert mounted.poolmanager is custom.poolmanager
    wrapped_other = session.get_adapter("file:///tmp/x")
    assert not isinstance(wrapped_other, HTTPAdapter)
    assert isinstance(wrapped_other, requests.adapters.BaseAdapter)


def test_an_instrumented_session_pickles_with_its_wrapped_adapters() -> None:
    session = requests.Session()
    session.mount("https://", HTTPAdapter(pool_maxsize=3))
    instrument(session, hosts=("a.example",))
    original: Any = session.get_adapter("https://a.example/")
    copy: Any = pickle.loads(pickle.dumps(session)).get_adapter("https://a.example/")
    assert type(copy) is type(original)
    assert isinstance(copy.adapter, HTTPAdapter)
    assert copy.adapter is not original.adapter
    assert copy._pool_maxsize == 3
    assert copy._hosts == original._hosts
    copy._hosts = None  # the wrapper's own state stays its own
    assert vars(copy)["_hosts"] is None
    assert not hasattr(copy.adapter, "_hosts")


def test_a_run_id_adapter_takes_http_adapter_options(server: LocalServer) -> None:
    session = requests.Session()
    adapter = RunIdAdapter(max_retries=Retry(total=1, status_forcelist=[503]), hosts=("127.0.0.1",))
    session.mount("http://", adapter)
    with RunContext(CHILD):
        response = session.get(f"{server.url}/flaky", params={"key": "adapter", "marker": "m2"})
    assert echoed(response)["x-run-id"] == CHILD.value
    tries = [run["x-run-id"] for path, marker, run in server.seen if marker == "m2"]
    assert tries == [CHILD.value, CHILD.value]


def test_streaming_upload_and_download_carry_the_run(
    session: requests.Session, server: LocalServer
) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(16):
            yield b"x" * 4096

    with RunContext(ROOT):
        uploaded = session.post(f"{server.url}/echo", data=body()).json()
        with session.get(f"{server.url}/stream", params={"chunks": 32}, stream=True) as response:
            data = b"".join(response.iter_content(chunk_size=1000))
    assert uploaded["headers"]["x-run-id"] == ROOT.value
    assert uploaded["body_length"] == 16 * 4096
    first, _, rest = data.partition(b"\n")
    assert ROOT.value.encode() in first
    assert len(rest) == 32 * 1024


def test_16_threads_on_one_shared_session_each_send_their_own_run(
    session: requests.Session, server: LocalServer
) -> None:
    barrier = threading.Barrier(16)
    results: list[tuple[str, str]] = []

    def work() -> None:
        with RunContext() as run:
            barrier.wait()
            for _ in range(8):
                got = echoed(session.get(f"{server.url}/echo"))["x-run-id"]
                results.append((run.run_id.value, got))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 128
    assert all(sent == got for sent, got in results)
    assert len({sent for sent, _ in results}) == 16


def test_instrument_is_idempotent_and_refuses_other_hosts() -> None:
    session = instrument(requests.Session(), hosts=("a.example",))
    adapters = dict(session.adapters)
    assert instrument(session, hosts=("A.example",)) is session
    assert session.adapters == adapters
    with pytest.raises(ValueError, match=r"already sends the run with hosts=HostAllowList"):
        instrument(session)


def test_instrument_mounts_an_adapter_where_none_is() -> None:
    session = requests.Session()
    session.adapters.clear()
    instrument(session)
    assert isinstance(session.get_adapter("https://a.example/"), RunIdAdapter)
    assert isinstance(session.get_adapter("http://a.example/"), RunIdAdapter)


def test_instrument_takes_only_a_session() -> None:
    with pytest.raises(TypeError, match=r"session must be a requests\.Session, got dict"):
        instrument({})  # type: ignore[type-var]


def test_closing_the_session_closes_the_wrapped_adapters() -> None:
    closed: list[str] = []

    class Closing(HTTPAdapter):
        def close(self) -> None:
            closed.append("closed")
            super().close()

    session = requests.Session()
    session.mount("https://", Closing())
    instrument(session).close()
    assert closed == ["closed"]


def test_a_run_id_adapter_pickles_with_its_hosts() -> None:
    adapter = RunIdAdapter(pool_maxsize=3, hosts=("a.example",))
    copy = pickle.loads(pickle.dumps(adapter))
    assert copy._hosts == adapter._hosts
    assert copy._pool_maxsize == 3


def test_a_wrapped_adapter_missing_its_adapter_raises_attribute_error() -> None:
    from agent_run_id.requests import _WrappedAdapter

    bare = _WrappedAdapter.__new__(_WrappedAdapter)
    with pytest.raises(AttributeError):
        _ = bare.max_retries


# header_name: the run id under another name (issue 12, item 8).


@pytest.fixture(scope="module")
def headers_server() -> Iterator[LocalServer]:
    """A real server that answers with every header it got."""
    local = LocalServer(echo_all)
    try:
        yield local
    finally:
        local.close()


def run_headers_of(response: requests.Response) -> dict[str, str]:
    response.raise_for_status()
    got = response.json()
    return {k: v for k, v in got.items() if k in ("x-request-id", *RUN_HEADERS)}


def test_header_name_sends_the_run_under_that_name_on_both_adapters(
    headers_server: LocalServer,
) -> None:
    url = f"{headers_server.url}/"
    mounted = requests.Session()
    mounted.mount("http://", RunIdAdapter(header_name="X-Request-ID"))
    wrapped = instrument(requests.Session(), header_name="X-Request-ID")
    with mounted, wrapped, RunContext(CHILD):
        for session in (mounted, wrapped):
            assert run_headers_of(session.get(url)) == {
                "x-request-id": CHILD.value,
                "x-parent-run-id": ROOT.value,
                "x-root-run-id": ROOT.value,
            }
            mine = session.get(url, headers={"x-request-id": "mine"})
            assert run_headers_of(mine) == {"x-request-id": "mine"}
            other = session.get(url, headers={"X-Run-Id": "other"})
            assert run_headers_of(other) == {
                **FULL_CHILD,
                "x-run-id": "other",
                "x-request-id": CHILD.value,
            }


def test_with_header_name_a_redirect_outside_the_hosts_loses_it(
    headers_server: LocalServer,
) -> None:
    away = f"{headers_server.other_url}/"
    with (
        instrument(requests.Session(), hosts=("127.0.0.1",), header_name="X-Request-ID") as session,
        RunContext(ROOT),
    ):
        response = session.get(f"{headers_server.url}/redirect", params={"to": away})
        back = session.get(f"{headers_server.url}/redirect", params={"to": headers_server.url})
    assert run_headers_of(back) == {"x-request-id": ROOT.value}
    assert response.url == away
    assert run_headers_of(response) == {}
    assert response.history[0].request.headers.get("X-Request-ID") is None  # taken off


def test_instrument_again_with_another_header_name_is_refused() -> None:
    session = instrument(requests.Session(), header_name="X-Request-ID")
    assert instrument(session, header_name="x-request-id") is session
    with pytest.raises(
        ValueError,
        match=r"already sends the run with hosts=None, header_name='X-Request-ID', not "
        r"hosts=None, header_name='X-Run-Id': instrument a session once",
    ):
        instrument(session)
    assert "header_name='X-Request-ID'" in repr(session.get_adapter("https://a.example/"))


@pytest.mark.parametrize("bad", ["X Request", "", None, "X-Parent-Run-Id"])
def test_a_bad_header_name_is_refused_naming_the_option(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^agent_run_id\.requests\.RunIdAdapter: header_name "):
        RunIdAdapter(header_name=bad)
    with pytest.raises(ValueError, match=r"^agent_run_id\.requests\.instrument: header_name "):
        instrument(requests.Session(), header_name=bad)


def test_the_adapters_pickle_with_their_header_name() -> None:
    adapter = pickle.loads(pickle.dumps(RunIdAdapter(header_name="X-Request-ID")))
    session = pickle.loads(pickle.dumps(instrument(requests.Session(), header_name="X-Req")))
    wrapped: Any = session.get_adapter("https://a.example/")
    assert adapter._outbound.header == "X-Request-ID"
    assert wrapped._outbound.header == "X-Req"
    assert wrapped._outbound.names == ("X-Req", "X-Parent-Run-Id", "X-Root-Run-Id")
