"""agent_run_id.wsgi.RunIdMiddleware with Flask: werkzeug's test client and a real server."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from wsgiref.simple_server import ServerHandler

import httpx
import pytest
from flask import Flask, Response, request, send_file
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import baggage
from werkzeug.test import Client
from werkzeug.wsgi import FileWrapper

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId, add_run_observer, current_run_id
from agent_run_id import otel as run_otel
from agent_run_id._hooks import add_incoming_fallback, remove_incoming_fallback
from agent_run_id.asgi import RunIdMiddleware as AsgiRunIdMiddleware
from agent_run_id.registry import SQLiteRunRegistry, set_default
from agent_run_id.wsgi import ENVIRON_KEY, RunIdMiddleware

from ._inbound_helpers import (
    RUN_A,
    RUN_B,
    RUN_C,
    captured,
    is_canonical,
    load_example,
    wsgi_server,
    wsgiref_server,
)


def current() -> str | None:
    run = current_run_id()
    return None if run is None else run.value


def flask_app(**options: Any) -> Flask:
    """A fresh Flask app with one route per behaviour, wrapped in the middleware."""
    app = Flask(__name__)

    @app.get("/")
    def home() -> dict[str, Any]:
        run = current_run_id()
        return {
            "current": current(),
            "parent": None if run is None or run.parent is None else run.parent.value,
            "environ": request.environ[ENVIRON_KEY].value,
            "header": request.headers.getlist("X-Run-Id"),
            "parent_header": request.headers.getlist("X-Parent-Run-Id"),
        }

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:  # no stream_with_context: the run is current anyway
            for _ in range(3):
                yield f"{current()}\n"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/own-header")
    def own_header() -> Response:
        return Response("ok", headers={"x-RUN-id": "made-up-by-the-app"})

    @app.get("/teapot")
    def teapot() -> None:
        raise LookupError

    @app.errorhandler(LookupError)
    def on_teapot(exc: Exception) -> tuple[dict[str, Any], int]:
        return {"current": current()}, 418

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @app.errorhandler(500)
    def on_error(exc: Exception) -> tuple[dict[str, Any], int]:
        return {"current": current()}, 500

    app.wsgi_app = RunIdMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return app


def test_a_request_without_header_gets_a_new_root_run_seen_everywhere() -> None:
    response = Client(flask_app()).get("/")
    body = response.json
    assert body is not None
    assert is_canonical(body["current"])
    assert body["environ"] == body["current"]
    assert body["header"] == [body["current"]]
    assert body["parent"] is None
    assert response.headers.getlist("X-Run-Id") == [body["current"]]


def test_a_valid_incoming_id_is_continued_in_canonical_form_with_its_lineage() -> None:
    headers = {"X-Run-Id": RUN_A.upper(), "X-Parent-Run-Id": RUN_B.replace("-", "")}
    response = Client(flask_app()).get("/", headers=headers)
    body = response.json
    assert body is not None
    assert body["current"] == body["environ"] == RUN_A
    assert body["header"] == [RUN_A]
    assert body["parent"] == RUN_B
    assert body["parent_header"] == [RUN_B]
    assert response.headers.getlist("X-Run-Id") == [RUN_A]


def test_child_and_ignore_modes() -> None:
    child = Client(flask_app(incoming="child")).get("/", headers={"X-Run-Id": RUN_A}).json
    assert child is not None
    assert child["current"] != RUN_A
    assert child["parent"] == RUN_A
    assert child["parent_header"] == [RUN_A]
    ignored = Client(flask_app(incoming="ignore")).get(
        "/", headers={"X-Run-Id": RUN_A, "X-Root-Run-Id": RUN_C}
    )
    assert ignored.json is not None
    assert ignored.json["current"] != RUN_A
    assert ignored.json["parent"] is None
    assert ignored.headers["X-Run-Id"] == ignored.json["current"]


def test_an_invalid_id_is_replaced_never_echoed_and_reject_answers_400() -> None:
    response = Client(flask_app()).get("/", headers={"X-Run-Id": "nope\x7f"})
    body = response.json
    assert body is not None
    assert is_canonical(body["current"])
    assert response.headers.getlist("X-Run-Id") == [body["current"]]
    rejected = Client(flask_app(on_invalid="reject")).get("/", headers={"X-Run-Id": "nope"})
    assert rejected.status_code == 400
    assert rejected.json is not None
    assert "X-Run-Id" in rejected.json["detail"]
    assert "X-Run-Id" not in rejected.headers


def raw_get(url: str, header_lines: list[bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    """Send a GET with header lines exactly as given; return the body and response headers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        sock.sendall(request + b"".join(line + b"\r\n" for line in header_lines) + b"\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return body, headers


def test_over_werkzeugs_server_spaces_around_an_id_are_dropped_and_empty_is_absent() -> None:
    """werkzeug's server keeps trailing whitespace in header values: the id is still taken."""
    app = flask_app(on_invalid="reject")
    padded = [f"X-Run-Id: {RUN_A}  ", f"X-Run-Id:   {RUN_A}", f"X-Run-Id: {RUN_A}\t"]
    with wsgi_server(app) as url:
        for line in padded:
            body, headers = raw_get(url, [line.encode()])
            assert json.loads(body)["current"] == RUN_A
            assert json.loads(body)["header"] == [RUN_A]
            assert headers[b"x-run-id"] == RUN_A.encode()
        for line in (b"X-Run-Id:", b"X-Run-Id:   ", b"X-Run-Id: \t"):
            body, headers = raw_get(url, [line, b"X-Parent-Run-Id: "])
            answer = json.loads(body)
            assert is_canonical(answer["current"])  # a new root run, no 400
            assert answer["parent"] is None
            assert headers[b"x-run-id"] == answer["current"].encode()


def test_a_header_repeated_with_two_values_counts_as_invalid() -> None:
    client = Client(flask_app())
    same = client.get("/", headers=[("X-Run-Id", RUN_A), ("X-Run-Id", RUN_A)]).json
    differ = client.get("/", headers=[("X-Run-Id", RUN_A), ("X-Run-Id", RUN_B)]).json
    assert same is not None
    assert same["current"] == RUN_A
    assert differ is not None
    assert differ["current"] not in (RUN_A, RUN_B)


def test_a_flask_generator_runs_in_the_run_and_nothing_of_it_stays_current_between_steps() -> None:
    events: list[tuple[str, Any]] = []

    def observe(run: RunId, context: RunContext) -> Any:
        events.append(("start", run.value))
        return lambda exc: events.append(("end", exc))

    add_run_observer(observe)
    response = Client(flask_app()).get("/stream", headers={"X-Run-Id": RUN_A}, buffered=False)
    assert events == [("start", RUN_A)]
    assert current_run_id() is None  # the app has returned: its run is not current here
    chunks = response.iter_encoded()
    assert next(chunks) == f"{RUN_A}\n".encode()  # the generator steps in the run
    assert current_run_id() is None  # and only while it steps
    assert b"".join(chunks).decode().split() == [RUN_A] * 2
    assert events == [("start", RUN_A), ("end", None)]  # ended when the body was exhausted
    response.close()
    assert events == [("start", RUN_A), ("end", None)]  # once
    assert current_run_id() is None


def test_handlers_and_error_handlers_see_the_run_and_the_header_is_on_every_answer() -> None:
    client = Client(flask_app())
    teapot = client.get("/teapot", headers={"X-Run-Id": RUN_A})
    boom = client.get("/boom", headers={"X-Run-Id": RUN_B})
    own = client.get("/own-header", headers={"X-Run-Id": RUN_C})
    assert (teapot.status_code, teapot.json) == (418, {"current": RUN_A})
    assert teapot.headers.getlist("X-Run-Id") == [RUN_A]
    assert (boom.status_code, boom.json) == (500, {"current": RUN_B})
    assert boom.headers.getlist("X-Run-Id") == [RUN_B]
    assert [v for k, v in own.headers.items() if k.lower() == "x-run-id"] == [RUN_C]


def test_the_run_ends_when_the_app_raises_and_the_error_carries_its_note() -> None:
    ends: list[BaseException | None] = []
    add_run_observer(lambda run, context: ends.append)

    def broken(environ: Any, start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("broken")

    with RunContext() as stale:
        with pytest.raises(RuntimeError) as caught:
            RunIdMiddleware(broken)({"HTTP_X_RUN_ID": RUN_A}, lambda *args: None)
        assert current_run_id() is stale.run_id
    assert ends[0] is caught.value
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [f"run_id={RUN_A}"]


def test_an_error_while_the_server_iterates_ends_the_run_with_it() -> None:
    ends: list[BaseException | None] = []
    add_run_observer(lambda run, context: ends.append)

    class Body:
        closed = 0

        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            raise ValueError("midway")

        def close(self) -> None:
            Body.closed += 1

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    body = RunIdMiddleware(app)({"HTTP_X_RUN_ID": RUN_A}, lambda *args: None)
    chunks = iter(body)
    assert next(chunks) == b"a"
    with pytest.raises(ValueError, match="midway") as caught:
        next(chunks)
    assert ends == [caught.value]  # for a caller that never closes, too
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]  # a second close does nothing
    assert ends == [caught.value]
    assert Body.closed == 1
    assert current_run_id() is None
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [f"run_id={RUN_A}"]


def test_a_failing_close_ends_the_run_with_its_error() -> None:
    ends: list[BaseException | None] = []
    add_run_observer(lambda run, context: ends.append)
    closed_in: list[str | None] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield b"x"
            yield b"y"
        finally:
            closed_in.append(current())
            raise OSError("close failed")

    body = RunIdMiddleware(lambda environ, start_response: chunks())(
        {"HTTP_X_RUN_ID": RUN_A}, lambda *a: None
    )
    assert next(iter(body)) == b"x"
    with pytest.raises(OSError, match="close failed"):
        body.close()  # type: ignore[attr-defined]
    assert closed_in == [RUN_A]  # the app's close() runs in the run
    assert len(ends) == 1
    assert isinstance(ends[0], OSError)
    assert current_run_id() is None


def test_a_close_failing_after_the_body_was_exhausted_carries_the_run_it_ended() -> None:
    """The run ended when its body ran out; the error of close() still names the run."""
    ends: list[BaseException | None] = []
    add_run_observer(lambda run, context: ends.append)

    class Body(list[bytes]):
        def close(self) -> None:
            raise OSError("close failed")

    body = RunIdMiddleware(lambda environ, start_response: Body([b"x"]))(
        {"HTTP_X_RUN_ID": RUN_A}, lambda *a: None
    )
    assert list(body) == [b"x"]
    assert ends == [None]
    with pytest.raises(OSError, match="close failed") as caught:
        body.close()  # type: ignore[attr-defined]
    assert ends == [None]
    assert current_run_id() is None
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [f"run_id={RUN_A}"]


def test_requests_in_the_same_thread_never_share_a_run() -> None:
    """A single-threaded server runs request after request in one thread."""
    with wsgi_server(flask_app(), threaded=False) as url, httpx.Client(base_url=url) as http:
        first = http.get("/", headers={"X-Run-Id": RUN_A}).json()
        second = http.get("/").json()
        streamed = http.get("/stream", headers={"X-Run-Id": RUN_B})
        third = http.get("/").json()
    assert first["current"] == RUN_A
    assert streamed.text.split() == [RUN_B] * 3
    for body in (second, third):
        assert body["current"] not in (RUN_A, RUN_B)
        assert body["parent"] is None
    assert second["current"] != third["current"]


def test_over_a_threaded_server_16_threads_never_mix_their_runs() -> None:
    """Every log line, response header and current run matches its own request."""
    threads, count = 16, 160
    barrier = threading.Barrier(threads, timeout=30)
    logger = logging.getLogger("tests.wsgi.concurrency")
    app = Flask(__name__)

    @app.get("/work")
    def work() -> Response:
        logger.info("start %s", request.headers["X-Run-Id"])
        barrier.wait()  # sixteen requests in flight at once, in sixteen server threads
        logger.info("end %s", request.headers["X-Run-Id"])

        value = request.headers["X-Run-Id"]

        def chunks() -> Iterator[str]:  # runs after Flask's request context is gone
            logger.info("body %s", value)
            yield current() or ""

        return Response(chunks())

    app.wsgi_app = RunIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    ids = [RunId.generate().value for _ in range(count)]
    run_logging.install()
    with (
        captured("tests.wsgi.concurrency", logging.INFO) as log,
        wsgi_server(app) as url,
        httpx.Client(base_url=url, timeout=60) as http,  # thread-safe: shared by the 16
    ):

        def call(value: str) -> tuple[str, str]:
            response = http.get("/work", headers={"X-Run-Id": value})
            return response.text, response.headers["X-Run-Id"]

        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(call, ids))
    assert answers == [(value, value) for value in ids]
    assert len(log.lines) == 3 * count
    for run_id, message in log.lines:
        assert message.split()[1] == run_id
    assert {run_id for run_id, _ in log.lines} == set(ids)


HEX_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
PLACEHOLDERS = ("0" * 8 + "-0000-0000-0000-" + "0" * 12, "f" * 8 + "-ffff-ffff-ffff-" + "f" * 12)


def taken(raw: str) -> str | None:
    """The id the specification takes from a header value (repeats joined by commas), or None.

    Spaces and tabs around each value are optional whitespace; empty list elements are skipped.
    """

    def one(part: str) -> str | None:
        part = part.strip(" \t")
        if re.fullmatch(r"[0-9a-fA-F]{32}", part):
            part = f"{part[:8]}-{part[8:12]}-{part[12:16]}-{part[16:20]}-{part[20:]}"
        elif not HEX_ID.fullmatch(part):
            return None
        return None if part.lower() in PLACEHOLDERS else part.lower()

    values = {one(part) for part in raw.split(",") if part.strip(" \t")}
    return values.pop() if len(values) == 1 else None


def blank(raw: str) -> bool:
    """Whether a header value counts as absent: empty, or blanks and commas alone."""
    return not raw.strip(" \t,")


# Arbitrary text, valid ids in every accepted spelling, and repeated headers.
header_values = st.one_of(
    st.none(),
    st.text(st.characters(max_codepoint=255), max_size=80),
    st.sampled_from([RUN_A, RUN_B.upper(), RUN_C.replace("-", ""), f"{RUN_A}, {RUN_A}"]),
    st.sampled_from([f"{RUN_A},{RUN_B}", PLACEHOLDERS[0], "", " ", RUN_A + "0", "{" + RUN_A + "}"]),
    st.sampled_from([f" {RUN_A}\t", f"{RUN_B}  ", f"\t{RUN_C}", f",{RUN_A},,", " , \t"]),
)


@settings(max_examples=400, deadline=None)
@given(
    value=header_values,
    parent=header_values,
    root=header_values,
    incoming=st.sampled_from(["continue", "child", "ignore"]),
    on_invalid=st.sampled_from(["replace", "reject"]),
)
def test_any_header_text_never_raises_and_only_a_canonical_id_goes_out(
    value: str | None, parent: str | None, root: str | None, incoming: str, on_invalid: str
) -> None:
    """Any run, parent and root header text, any option: a canonical run or the 400 of reject."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(dict(environ))
        start_response("200 OK", [("X-Run-Id", "!")])
        return [b""]

    environ: dict[str, Any] = {}
    for key, header in (("RUN_ID", value), ("PARENT_RUN_ID", parent), ("ROOT_RUN_ID", root)):
        if header is not None:
            environ[f"HTTP_X_{key}"] = header
    body = RunIdMiddleware(app, incoming=incoming, on_invalid=on_invalid)(
        environ, lambda status, headers, exc_info=None: started.append((status, headers))
    )
    answer = b"".join(body)
    getattr(body, "close", lambda: None)()
    assert current_run_id() is None
    [(status, headers)] = started
    out = [v for k, v in headers if k.lower() == "x-run-id"]
    if value is not None and blank(value):
        value = None  # as if it had not come
    invalid = value is not None and taken(value) is None
    if on_invalid == "reject" and incoming != "ignore" and invalid:
        assert status.startswith("400 ")
        assert json.loads(answer) == {
            "detail": "invalid X-Run-Id header: send a UUID or leave the header out"
        }
        assert out == []  # the bad value is never echoed
        assert seen == []
        return
    assert status == "200 OK"
    [request] = seen
    assert len(out) == 1
    assert is_canonical(out[0])
    assert request["HTTP_X_RUN_ID"] == out[0] == request[ENVIRON_KEY].value
    for lineage in ("HTTP_X_PARENT_RUN_ID", "HTTP_X_ROOT_RUN_ID"):
        assert lineage not in request or is_canonical(request[lineage])
    run = request[ENVIRON_KEY]
    if incoming == "ignore" or invalid or value is None:
        assert out[0] not in (value, parent, root)  # a new run
        assert run.parent is None
    elif incoming == "continue":
        assert out[0] == taken(value)
        given_parent = None if parent is None else taken(parent)
        expected_parent = None if given_parent == out[0] else given_parent
        assert (None if run.parent is None else run.parent.value) == expected_parent
    else:
        assert run.parent is not None
        assert run.parent.value == taken(value)


def test_an_incoming_fallback_reads_the_request_headers_when_no_id_came() -> None:
    asked: list[tuple[str | None, ...]] = []

    def from_baggage(get_header: Any) -> RunId:
        asked.append((get_header("baggage"), get_header("Content-Type"), get_header("absent")))
        return RunId(RUN_B)

    add_incoming_fallback(from_baggage)
    try:
        response = Client(flask_app()).get(
            "/", headers={"baggage": "a=1", "Content-Type": "text/x"}
        )
    finally:
        remove_incoming_fallback(from_baggage)
    assert response.json is not None
    assert response.json["current"] == RUN_B
    assert asked == [("a=1", "text/x", None)]


def test_response_header_false_sends_no_header() -> None:
    response = Client(flask_app(response_header=False)).get("/", headers={"X-Run-Id": RUN_A})
    assert response.json is not None
    assert response.json["current"] == RUN_A
    assert "X-Run-Id" not in response.headers


def test_the_flask_example_answers_and_streams_inside_its_run() -> None:
    example = load_example("flask_app")
    client = Client(example.app)
    response = client.get("/agent", query_string={"task": "abc"}, headers={"X-Run-Id": RUN_A})
    assert response.json == {"run_id": RUN_A, "result": "cba"}
    assert response.headers.getlist("X-Run-Id") == [RUN_A]
    streamed = client.get("/stream", headers={"X-Run-Id": RUN_B})
    assert streamed.text.splitlines() == [f"{RUN_B} plan", f"{RUN_B} act", f"{RUN_B} answer"]


def test_a_callable_incoming_decides_per_request_from_the_environ() -> None:
    def trust_internal(environ: dict[str, Any]) -> str:
        return "continue" if environ["REMOTE_ADDR"].startswith("10.") else "ignore"

    client = Client(flask_app(incoming=trust_internal))
    kept = client.get("/", headers={"X-Run-Id": RUN_A}, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    ignored = client.get("/", headers={"X-Run-Id": RUN_A}, environ_base={"REMOTE_ADDR": "1.2.3.4"})
    assert kept.json is not None
    assert kept.json["current"] == RUN_A
    assert ignored.json is not None
    assert ignored.json["current"] != RUN_A


def test_the_body_is_sent_once_however_often_the_server_asks_for_its_iterator() -> None:
    def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hel", b"lo"]

    assert Client(RunIdMiddleware(plain_app)).get("/").get_data() == b"hello"
    body = RunIdMiddleware(plain_app)({"REQUEST_METHOD": "GET"}, lambda *args: None)
    assert list(body) == [b"hel", b"lo"]
    assert list(body) == []  # exhausted, as the wrapped iterator is
    body.close()  # type: ignore[attr-defined]


def run_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A bare WSGI app answering with the run current in it."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(current() or "").encode()]


def observe_runs(events: list[tuple[str, str]]) -> None:
    def observe(run: RunId, context: RunContext) -> Any:
        events.append(("start", run.value))
        return lambda exc: events.append(("end", run.value))

    add_run_observer(observe)


def test_a_test_client_response_leaves_no_run_current_closed_or_not() -> None:
    """werkzeug's (and Flask's) test client closes the response only on close(), or buffered."""
    events: list[tuple[str, str]] = []
    observe_runs(events)
    client = Client(RunIdMiddleware(run_app))
    with client.get("/", headers={"X-Run-Id": RUN_A}) as response:
        assert current_run_id() is None  # the app has returned: nothing of its run is here
        assert response.get_data(as_text=True) == RUN_A
    assert events == [("start", RUN_A), ("end", RUN_A)]
    client.get("/", headers={"X-Run-Id": RUN_B}, buffered=True)  # closed before it returns
    assert events[2:] == [("start", RUN_B), ("end", RUN_B)]
    never_closed = client.get("/", headers={"X-Run-Id": RUN_C})
    assert current_run_id() is None
    assert never_closed.get_data(as_text=True) == RUN_C
    assert events[4:] == [("start", RUN_C), ("end", RUN_C)]  # ended with its body
    flask_client = flask_app().test_client()
    never_closed = flask_client.get("/", headers={"X-Run-Id": RUN_A})
    assert never_closed.json is not None
    assert never_closed.json["current"] == RUN_A
    assert current_run_id() is None
    with RunContext(run_id=RunId(RUN_B)):
        assert flask_client.get("/").json["current"] not in (None, RUN_A, RUN_B)
        assert current() == RUN_B


def test_the_registry_records_the_end_of_a_response_never_closed(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    try:
        client = Client(RunIdMiddleware(run_app, registry=registry))
        response = client.get("/", headers={"X-Run-Id": RUN_A})
        assert response.get_data(as_text=True) == RUN_A
        record = registry.get(RUN_A)
        assert record is not None
        assert record.status == "ok"
        assert record.ended_at is not None
    finally:
        registry.close()
    assert current_run_id() is None


def test_opentelemetry_baggage_of_a_request_stays_in_the_request() -> None:
    """What run observers attach (OpenTelemetry's context) never outlives the app call."""
    run_otel.install(span_processor=False)
    try:
        seen: list[object] = []

        def app(environ: Any, start_response: Any) -> list[bytes]:
            seen.append(baggage.get_baggage("agent_run.id"))
            start_response("200 OK", [])
            return [b""]

        response = Client(RunIdMiddleware(app)).get("/", headers={"X-Run-Id": RUN_A})
        assert seen == [RUN_A]
        assert baggage.get_baggage("agent_run.id") is None
        assert response.status_code == 200
    finally:
        run_otel.uninstall()


class Recorder:
    """A run registry that keeps the ids of the runs it was told about."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, run_id: RunId, **facts: Any) -> None:
        self.started.append(run_id.value)

    def finish(self, run_id: RunId, error: BaseException | None = None) -> None:
        pass


def test_a_request_never_nests_in_the_run_of_a_response_left_open() -> None:
    """Run observers see a root run: the next app's run is not recorded in the first's registry."""
    first_registry, default = Recorder(), Recorder()
    set_default(default)  # type: ignore[arg-type]
    try:
        first = Client(RunIdMiddleware(run_app, registry=first_registry)).get("/")
        second = Client(RunIdMiddleware(run_app)).get("/")
    finally:
        set_default(None)
    assert first_registry.started == [first.get_data(as_text=True)]
    assert default.started == [second.get_data(as_text=True)]
    second.close()
    first.close()


def test_responses_left_open_and_closed_in_any_order_leave_no_run_behind() -> None:
    events: list[tuple[str, str]] = []
    observe_runs(events)
    client = Client(RunIdMiddleware(run_app))
    first, second = client.get("/", headers={"X-Run-Id": RUN_A}), client.get("/")
    assert current_run_id() is None
    assert second.get_data(as_text=True) not in ("", RUN_A)
    assert first.get_data(as_text=True) == RUN_A
    second.close()
    first.close()
    assert current_run_id() is None
    assert sorted(events) == sorted(
        [("start", RUN_A), ("end", RUN_A), ("start", second.text), ("end", second.text)]
    )


def test_a_callers_run_is_current_again_as_soon_as_the_app_returns() -> None:
    client = Client(RunIdMiddleware(run_app))
    with RunContext(run_id=RunId(RUN_A)):
        with client.get("/") as response:
            assert current() == RUN_A
            assert response.get_data(as_text=True) not in ("", RUN_A)
        response = client.get("/")
        assert current() == RUN_A
    response.close()
    assert current_run_id() is None


def test_a_wsgi_app_called_inside_an_asgi_request_gives_that_run_back() -> None:
    """The ASGI middleware's run has no RunContext entry of its own: it is still open."""
    wsgi = RunIdMiddleware(run_app)
    seen: list[str | None] = []

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current())
        with Client(wsgi).get("/") as response:
            seen.append(response.get_data(as_text=True))
        seen.append(current())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "headers": [(b"x-run-id", RUN_A.encode())]}
    asyncio.run(AsgiRunIdMiddleware(asgi_app)(scope, None, send))  # type: ignore[arg-type]
    assert seen[0] == seen[2] == RUN_A
    assert seen[1] not in (None, RUN_A)
    assert current_run_id() is None


def test_a_response_closed_in_another_context_ends_its_run_once() -> None:
    events: list[tuple[str, str]] = []
    observe_runs(events)
    with RunContext(run_id=RunId(RUN_A)):
        body = RunIdMiddleware(run_app)({"HTTP_X_RUN_ID": RUN_B}, lambda *args: None)
        contextvars.copy_context().run(body.close)  # type: ignore[attr-defined]
        body.close()  # type: ignore[attr-defined]
    assert events == [("start", RUN_A), ("start", RUN_B), ("end", RUN_B), ("end", RUN_A)]


def test_a_one_item_list_keeps_its_content_length_under_wsgiref() -> None:
    """wsgiref sets Content-Length only when len() of the response is 1."""

    def streamed(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"hello"

    with (
        wsgiref_server(RunIdMiddleware(run_app)) as listed,
        wsgiref_server(RunIdMiddleware(streamed)) as generated,
        httpx.Client() as http,
    ):
        response = http.get(listed, headers={"X-Run-Id": RUN_A})
        unsized = http.get(generated)
    assert response.text == RUN_A
    assert response.headers["Content-Length"] == str(len(RUN_A))
    assert response.headers["X-Run-Id"] == RUN_A
    assert unsized.text == "hello"
    assert "Content-Length" not in unsized.headers  # a generator has no len(): none to forward
    body = RunIdMiddleware(streamed)({}, lambda *args: None)
    with pytest.raises(TypeError):
        len(body)  # type: ignore[arg-type]
    body.close()  # type: ignore[attr-defined]


def send_file_app(path: Path) -> Flask:
    app = Flask(__name__)

    @app.get("/file")
    def download() -> Response:
        return send_file(path, mimetype="text/plain")

    app.wsgi_app = RunIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def test_flask_send_file_keeps_wsgirefs_file_wrapper_path_and_ends_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wsgiref offers sendfile() only for a response that is its own wsgi.file_wrapper."""
    path = tmp_path / "report.txt"
    path.write_bytes(b"quarterly report\n" * 1000)
    offered: list[str] = []

    def sendfile(handler: ServerHandler) -> bool:
        offered.append(type(handler.result).__name__)
        return False  # as wsgiref's own: the server then iterates the file wrapper

    monkeypatch.setattr(ServerHandler, "sendfile", sendfile)
    events: list[tuple[str, str]] = []
    observe_runs(events)
    with wsgiref_server(send_file_app(path)) as url, httpx.Client(base_url=url) as http:
        response = http.get("/file", headers={"X-Run-Id": RUN_A})
    assert response.content == path.read_bytes()
    assert response.headers["X-Run-Id"] == RUN_A
    assert offered == ["FileWrapper"]
    assert events == [("start", RUN_A), ("end", RUN_A)]  # the server closed the file wrapper


def test_a_servers_file_wrapper_comes_back_itself_over_werkzeugs_server(tmp_path: Path) -> None:
    """A server offering wsgi.file_wrapper (gunicorn, uWSGI) checks isinstance on the response."""
    path = tmp_path / "report.txt"
    path.write_bytes(b"x" * 100_000)
    seen: list[bool] = []
    files: list[Any] = []
    events: list[tuple[str, str]] = []
    observe_runs(events)
    app = send_file_app(path)

    def server_with_file_wrapper(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.file_wrapper"] = FileWrapper
        result = app(environ, start_response)
        seen.append(isinstance(result, environ["wsgi.file_wrapper"]))
        files.append(getattr(result, "file", None))
        return result

    with (
        wsgi_server(server_with_file_wrapper, threaded=False) as url,  # closed before shutdown
        httpx.Client(base_url=url) as http,
    ):
        response = http.get("/file", headers={"X-Run-Id": RUN_A})
    assert response.content == path.read_bytes()
    assert response.headers["X-Run-Id"] == RUN_A
    assert seen == [True]
    assert files[0] is not None
    assert files[0].closed
    assert events == [("start", RUN_A), ("end", RUN_A)]


def test_a_file_wrapper_that_takes_no_attribute_is_wrapped_and_still_closed() -> None:
    class SlottedWrapper:
        __slots__ = ("chunks", "closed")

        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks
            self.closed = False

        def __iter__(self) -> Iterator[bytes]:
            return iter(self.chunks)

    events: list[tuple[str, str]] = []
    observe_runs(events)
    wrapper = SlottedWrapper([b"a", b"b"])

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return wrapper

    environ = {"HTTP_X_RUN_ID": RUN_A, "wsgi.file_wrapper": SlottedWrapper}
    body = RunIdMiddleware(app)(environ, lambda *args: None)
    assert body is not wrapper
    assert next(iter(body)) == b"a"
    assert events == [("start", RUN_A)]
    body.close()  # type: ignore[attr-defined]
    assert events == [("start", RUN_A), ("end", RUN_A)]
    assert list(body) == []  # closed: the rest is not read outside its run


def test_only_the_apps_own_500_has_the_header_the_servers_500_names_the_run_in_its_log() -> None:
    """Flask's 500 is the app's answer; an error that escapes the app gets the server's 500."""

    def bare(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("raised before start_response")

    def first_chunk() -> Response:
        def chunks() -> Iterator[str]:
            raise RuntimeError("raised before the first chunk")
            yield ""

        return Response(chunks())

    handled, propagating = flask_app(), flask_app()
    handled.get("/first-chunk")(first_chunk)
    propagating.config["PROPAGATE_EXCEPTIONS"] = True  # as TESTING and DEBUG set it
    with (  # single-threaded servers: each has logged its error when it shuts down
        captured("werkzeug", logging.ERROR) as log,
        wsgi_server(handled, threaded=False) as flask_url,
        wsgi_server(propagating, threaded=False) as propagating_url,
        wsgi_server(RunIdMiddleware(bare), threaded=False) as bare_url,
        httpx.Client() as http,
    ):
        answered = http.get(f"{flask_url}/boom", headers={"X-Run-Id": RUN_A})
        escaped = [
            http.get(f"{flask_url}/first-chunk", headers={"X-Run-Id": RUN_B}),
            http.get(f"{propagating_url}/boom", headers={"X-Run-Id": RUN_C}),
            http.get(bare_url, headers={"X-Run-Id": RUN_A}),
        ]
    assert (answered.status_code, answered.headers["X-Run-Id"]) == (500, RUN_A)
    for response in escaped:
        assert response.status_code == 500
        assert "X-Run-Id" not in response.headers
    assert len(log.lines) == 3
    if sys.version_info >= (3, 11):  # the exception's note, in the server's traceback
        named = [run for run in (RUN_A, RUN_B, RUN_C) for _, line in log.lines if run in line]
        assert named == [RUN_A, RUN_B, RUN_C]
        assert all("\nrun_id=" in line for _, line in log.lines)
