"""agent_run_id.django: through the test clients and real WSGI and ASGI servers, sync and async."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import django
import httpx
import pytest
from django.apps import apps
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId, current_run
from agent_run_id._django_stream import stream_in_run
from agent_run_id._hooks import add_incoming_fallback
from agent_run_id.registry import SQLiteRunRegistry, get_default
from agent_run_id.testing import reset

from . import django_project
from ._inbound_helpers import (
    RUN_A,
    RUN_B,
    is_canonical,
    uvicorn_server,
    wsgi_server,
    wsgiref_server,
)
from .django_project import settings as project_settings

# Django's settings are configured once per process, here: no other test module uses Django.
if not settings.configured:
    settings.configure(
        **{
            name: getattr(project_settings, name)
            for name in dir(project_settings)
            if name.isupper()
        }
    )
    django.setup()

from agent_run_id.django import RunIdConfig, RunIdMiddleware  # after setup()

OURS = "agent_run_id.django.RunIdMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
SYNC_ONLY = "tests.django_project.middleware.sync_only"


@pytest.fixture(scope="module")
def users() -> Iterator[list[tuple[str, str]]]:
    """60 users in Django's in-memory test database, each ``(id, session cookie)``, logged in."""
    from django.contrib.auth.models import User

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        found = []
        for index in range(60):
            user = User.objects.create_user(f"user{index}")
            client = Client()
            client.force_login(user)
            found.append((str(user.pk), client.cookies[settings.SESSION_COOKIE_NAME].value))
        yield found
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


class FakeRegistry:
    """A registry that keeps every call, in order, from any thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self._guard = threading.Lock()

    def start(self, run_id: Any, **facts: Any) -> None:
        with self._guard:
            self.calls.append(("start", run_id.value, facts))

    def annotate(self, run_id: Any, **facts: Any) -> None:
        with self._guard:
            self.calls.append(("annotate", run_id.value, facts))

    def finish(self, run_id: Any, *, error: BaseException | None = None) -> None:
        with self._guard:
            self.calls.append(("finish", run_id.value, {"error": error}))

    def kinds(self, run: str) -> list[str]:
        return [kind for kind, value, _ in self.calls if value == run]

    def users(self, run: str) -> set[Any]:
        return {facts.get("user_id") for kind, value, facts in self.calls if value == run} - {None}


class Seen(logging.Handler):
    """Keep, for each record, the run id, session and user agent_run_id.logging stamped on it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str | None, str | None, str]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.lines.append(
                (
                    getattr(record, "run_id", "?"),
                    getattr(record, "session_id", "?"),
                    getattr(record, "user_id", "?"),
                    record.getMessage(),
                )
            )


@pytest.fixture
def seen() -> Iterator[Seen]:
    """Stamp records with agent_run_id.logging and keep those of the test project's views."""
    run_logging.install(fields=(*run_logging.DEFAULT_FIELDS, "user_id"))
    handler = Seen()
    logger = logging.getLogger("tests.django_project")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def await_async(awaitable: Any) -> Any:
    """Wait for an AsyncClient request from sync test code."""
    return asyncio.run(awaitable)


def body(response: Any) -> dict[str, Any]:
    return json.loads(response.content)  # type: ignore[no-any-return]


def streamed(response: Any) -> list[str]:
    return b"".join(response.streaming_content).decode().splitlines()


async def astreamed(response: Any) -> list[str]:
    return b"".join([chunk async for chunk in response.streaming_content]).decode().splitlines()


def cookie(session: str) -> dict[str, str]:
    """The Cookie header of a logged-in user, for the real servers."""
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}


def client(session: str) -> Client:
    """A test client logged in with ``session``."""
    logged_in = Client()
    logged_in.cookies[settings.SESSION_COOKIE_NAME] = session
    return logged_in


def aclient(session: str) -> AsyncClient:
    """An async test client logged in with ``session``."""
    logged_in = AsyncClient()
    logged_in.cookies[settings.SESSION_COOKIE_NAME] = session
    return logged_in


# --- the test clients: sync and async views --------------------------------------------------


def test_a_sync_view_runs_in_a_new_run_named_in_the_response() -> None:
    response = Client().get("/sync")
    seen = body(response)
    run = response["X-Run-Id"]
    assert is_canonical(run)
    assert seen["run_id"] == seen["request_run_id"] == seen["header"] == run
    assert current_run() is None  # nothing of it stays current in the test


async def test_an_async_view_runs_in_a_new_run_named_in_the_response() -> None:
    response = await AsyncClient().get("/async")
    seen = body(response)
    run = response["X-Run-Id"]
    assert is_canonical(run)
    assert seen["run_id"] == seen["request_run_id"] == seen["header"] == run
    assert current_run() is None


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_a_valid_incoming_id_is_continued(path: str) -> None:
    response = Client().get(path, headers={"X-Run-Id": RUN_A.upper()})
    assert response["X-Run-Id"] == RUN_A
    assert body(response)["run_id"] == body(response)["header"] == RUN_A


def test_the_lineage_headers_are_continued_and_rewritten_for_the_view() -> None:
    response = Client().get("/sync", headers={"X-Run-Id": RUN_A, "X-Parent-Run-Id": RUN_B})
    seen = body(response)
    assert seen["run_id"] == RUN_A
    assert seen["parent_header"] == RUN_B


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_an_invalid_id_is_replaced_and_never_echoed(path: str) -> None:
    bad = "<script>alert(1)</script>"
    response = Client().get(path, headers={"X-Run-Id": bad})
    run = response["X-Run-Id"]
    assert is_canonical(run)
    assert body(response)["run_id"] == body(response)["header"] == run
    assert bad not in response.content.decode()
    assert all(bad not in value for value in response.headers.values())


@pytest.mark.parametrize("empty", ["", "  ", ","])
def test_an_empty_id_is_absent_even_under_reject(empty: str) -> None:
    with override_settings(AGENT_RUN_ID={"on_invalid": "reject"}):
        response = Client().get("/sync", headers={"X-Run-Id": empty})
    assert response.status_code == 200
    assert is_canonical(response["X-Run-Id"])


@pytest.mark.parametrize("path", ["/sync", "/async"])
async def test_reject_mode_answers_400_without_echoing(path: str) -> None:
    bad = "not-a-run-id\x7f"
    with override_settings(AGENT_RUN_ID={"on_invalid": "reject"}):
        sync_response = await asyncio.to_thread(Client().get, path, headers={"X-Run-Id": bad})
        async_response = await AsyncClient().get(path, headers={"X-Run-Id": bad})
        good = await AsyncClient().get(path, headers={"X-Run-Id": RUN_A})
    for response in (sync_response, async_response):
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert "X-Run-Id" not in response
        assert json.loads(response.content)["detail"].startswith("invalid X-Run-Id header")
        assert bad not in response.content.decode()
    assert good.status_code == 200
    assert good["X-Run-Id"] == RUN_A


def test_incoming_child_and_ignore_and_a_function_of_the_request() -> None:
    with override_settings(AGENT_RUN_ID={"incoming": "child"}):
        child = Client().get("/sync", headers={"X-Run-Id": RUN_A})
    assert child["X-Run-Id"] != RUN_A
    assert body(child)["parent_header"] == RUN_A
    with override_settings(AGENT_RUN_ID={"incoming": "ignore"}):
        ignored = Client().get("/sync", headers={"X-Run-Id": RUN_A})
    assert ignored["X-Run-Id"] != RUN_A
    assert body(ignored)["parent_header"] is None

    def trust_async_only(request: Any) -> str:
        return "continue" if request.path == "/async" else "ignore"

    with override_settings(AGENT_RUN_ID={"incoming": trust_async_only}):
        client = Client()
        assert client.get("/async", headers={"X-Run-Id": RUN_A})["X-Run-Id"] == RUN_A
        assert client.get("/sync", headers={"X-Run-Id": RUN_A})["X-Run-Id"] != RUN_A


def test_a_custom_header_name_both_ways_and_no_response_header() -> None:
    with override_settings(AGENT_RUN_ID={"header_name": "X-Request-Id"}):
        response = Client().get("/sync", headers={"X-Request-Id": RUN_A})
    assert response["X-Request-Id"] == RUN_A
    assert body(response)["run_id"] == RUN_A
    assert "X-Run-Id" not in response
    with override_settings(AGENT_RUN_ID={"response_header": False}):
        quiet = Client().get("/sync", headers={"X-Run-Id": RUN_A})
    assert "X-Run-Id" not in quiet
    assert body(quiet)["run_id"] == RUN_A


def test_a_run_current_where_django_is_called_is_not_nested_in() -> None:
    with RunContext(session_id="outer-session", user_id="outer-user") as outer:
        response = Client().get("/sync")
        assert current_run() is not None
        assert current_run().run_id is outer.run_id  # type: ignore[union-attr]
    seen = body(response)
    assert seen["run_id"] != outer.run_id.value
    assert seen["session_id"] is None
    assert seen["user_id"] is None


# --- the session and the user ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_the_session_comes_from_the_session_header(path: str) -> None:
    response = Client().get(path, headers={"X-Session-Id": "chat-42"})
    assert body(response)["session_id"] == "chat-42"
    assert "X-Session-Id" not in response


@pytest.mark.parametrize(
    "bad", ["a,b", "has space", "x" * 200, "line\rbreak", "caf\u00e9", "chat-1, chat-2"]
)
def test_an_invalid_session_is_absent_and_never_echoed(bad: str) -> None:
    response = Client().get("/sync", headers={"X-Session-Id": bad})
    assert response.status_code == 200
    assert body(response)["session_id"] is None
    assert bad not in response.content.decode()
    assert all(bad not in value for value in response.headers.values())


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_the_user_is_annotated_once_authentication_has_run(
    users: list[tuple[str, str]], seen: Seen, path: str
) -> None:
    user_id, session = users[0]
    response = client(session).get(path, headers={"X-Session-Id": "chat-7"})
    assert body(response)["user_id"] == user_id
    assert body(response)["session_id"] == "chat-7"
    run = response["X-Run-Id"]
    lines = [line for line in seen.lines if line[0] == run]
    assert len(lines) == 2
    assert all(line[1:3] == ("chat-7", user_id) for line in lines)  # the first log line too


async def test_the_user_is_annotated_through_the_async_client(
    users: list[tuple[str, str]],
) -> None:
    user_id, session = users[1]
    client = aclient(session)
    assert body(await client.get("/async"))["user_id"] == user_id
    assert body(await client.get("/sync"))["user_id"] == user_id


def test_an_anonymous_request_has_no_user(users: list[tuple[str, str]]) -> None:
    assert body(Client().get("/sync"))["user_id"] is None


@pytest.mark.parametrize("path", ["/sync", "/async", "/missing"])
async def test_without_authentication_middleware_there_is_no_user(path: str) -> None:
    with override_settings(MIDDLEWARE=[OURS]):
        sync = await asyncio.to_thread(Client().get, path)
        async_ = await AsyncClient().get(path)
    for response in (sync, async_):
        assert is_canonical(response["X-Run-Id"])
        if path != "/missing":
            assert body(response)["user_id"] is None


def test_the_user_option_false_and_a_function(users: list[tuple[str, str]]) -> None:
    session = users[2][1]
    with override_settings(AGENT_RUN_ID={"user": False}):
        assert body(client(session).get("/sync"))["user_id"] is None
    with override_settings(AGENT_RUN_ID={"user": False}):
        assert body(await_async(aclient(session).get("/async")))["user_id"] is None
    with override_settings(AGENT_RUN_ID={"user": lambda user: user.get_username()}):
        assert body(client(session).get("/async"))["user_id"] == "user2"
    with override_settings(AGENT_RUN_ID={"user": lambda user: None}):
        assert body(client(session).get("/sync"))["user_id"] is None


@pytest.mark.parametrize(
    "middleware",
    [[OURS, SESSIONS, AUTH], [SESSIONS, AUTH, OURS], [SESSIONS, OURS, AUTH]],
    ids=["first", "last", "between"],
)
async def test_the_user_is_known_to_the_view_whatever_the_order(
    users: list[tuple[str, str]], middleware: list[str]
) -> None:
    user_id, session = users[3]
    with override_settings(MIDDLEWARE=middleware):
        sync = await asyncio.to_thread(client(session).get, "/sync")
        async_ = await aclient(session).get("/async")
    assert body(sync)["user_id"] == body(async_)["user_id"] == user_id


async def test_a_sync_only_middleware_below_makes_ours_sync_in_an_async_stack(
    users: list[tuple[str, str]],
) -> None:
    user_id, session = users[4]
    with override_settings(MIDDLEWARE=[OURS, SESSIONS, AUTH, SYNC_ONLY]):
        response = await aclient(session).get("/async", headers={"X-Session-Id": "s-4"})
    seen = body(response)
    assert seen["run_id"] == response["X-Run-Id"]
    assert (seen["user_id"], seen["session_id"]) == (user_id, "s-4")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_request_that_reaches_no_view_gets_its_user_at_the_end(
    users: list[tuple[str, str]], kind: str
) -> None:
    user_id, session = users[5]
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        if kind == "sync":
            response = await asyncio.to_thread(client(session).get, "/missing")
        else:
            response = await aclient(session).get("/missing")
    assert response.status_code == 404
    run = response["X-Run-Id"]
    assert registry.users(run) == {user_id}
    assert registry.kinds(run)[-1] == "finish"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_user_that_cannot_be_read_is_reported_and_the_request_goes_on(
    users: list[tuple[str, str]], caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    def broken(user: Any) -> str:
        raise LookupError("no such profile")

    with override_settings(AGENT_RUN_ID={"user": broken}), caplog.at_level(logging.WARNING):
        if kind == "sync":
            response = await asyncio.to_thread(client(users[6][1]).get, "/sync")
        else:
            response = await aclient(users[6][1]).get("/async")
    assert response.status_code == 200
    assert body(response)["user_id"] is None
    assert any("reading the user of a request" in r.getMessage() for r in caplog.records)


def test_an_incoming_fallback_reads_the_django_request_headers() -> None:
    def from_other_header(get: Any) -> RunId | None:
        return RunId(RUN_B) if get("x-other-trace") == "yes" else None

    add_incoming_fallback(from_other_header)
    response = Client().get("/sync", headers={"X-Other-Trace": "yes"})
    assert response["X-Run-Id"] == RUN_B
    assert Client().get("/sync", headers={"X-Run-Id": RUN_A})["X-Run-Id"] == RUN_A


# --- streaming responses ---------------------------------------------------------------------


def test_a_sync_stream_produces_every_chunk_in_the_run_and_then_ends_it(
    users: list[tuple[str, str]], seen: Seen
) -> None:
    user_id, session = users[7]
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        response = client(session).get("/sync-stream", headers={"X-Session-Id": "s-7"})
    run = response["X-Run-Id"]
    assert registry.kinds(run)[-1] != "finish"  # the body is still to come
    assert streamed(response) == [f"{run} s-7 {user_id}"] * 3
    assert registry.kinds(run)[-1] == "finish"
    assert registry.kinds(run).count("finish") == 1
    chunks = [line for line in seen.lines if "chunk" in line[3]]
    assert chunks == [(run, "s-7", user_id, f"sync chunk {index}") for index in range(3)]
    assert current_run() is None


async def test_an_async_stream_produces_every_chunk_in_the_run_and_then_ends_it(
    users: list[tuple[str, str]], seen: Seen
) -> None:
    user_id, session = users[8]
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        response = await aclient(session).get("/async-stream", headers={"X-Session-Id": "s-8"})
    run = response["X-Run-Id"]
    assert registry.kinds(run)[-1] != "finish"
    assert await astreamed(response) == [f"{run} s-8 {user_id}"] * 3
    assert registry.kinds(run).count("finish") == 1
    chunks = [line for line in seen.lines if "chunk" in line[3]]
    assert chunks == [(run, "s-8", user_id, f"async chunk {index}") for index in range(3)]
    assert current_run() is None


def test_a_stream_closed_early_ends_the_run_at_close() -> None:
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        response = Client().get("/sync-stream")
    run = response["X-Run-Id"]
    content = iter(response.streaming_content)
    assert next(content).decode().split()[0] == run
    assert "finish" not in registry.kinds(run)
    response.close()
    assert registry.kinds(run).count("finish") == 1


def test_a_sync_stream_that_fails_ends_the_run_with_its_error() -> None:
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        response = Client().get("/sync-stream-fails")
    run = response["X-Run-Id"]
    content = iter(response.streaming_content)
    assert next(content).decode().split()[0] == run
    with pytest.raises(RuntimeError, match="the stream failed"):
        next(content)
    kind, value, facts = registry.calls[-1]
    assert (kind, value) == ("finish", run)
    assert str(facts["error"]) == "the stream failed"
    assert registry.kinds(run).count("finish") == 1


async def test_an_async_stream_that_fails_ends_the_run_with_its_error() -> None:
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        response = await AsyncClient().get("/async-stream-fails")
    run = response["X-Run-Id"]
    content = aiter(response.streaming_content)
    assert (await anext(content)).decode().split()[0] == run
    with pytest.raises(RuntimeError, match="the stream failed"):
        await anext(content)
    kind, value, facts = registry.calls[-1]
    assert (kind, value) == ("finish", run)
    assert str(facts["error"]) == "the stream failed"
    assert registry.kinds(run).count("finish") == 1


def test_a_close_that_fails_still_ends_the_run_with_its_error() -> None:
    class Failing(StreamingHttpResponse):  # type: ignore[misc]
        def close(self) -> None:
            raise OSError("close failed")

    registry = FakeRegistry()
    response = Failing(iter([b"x"]))
    with RunContext(registry=registry) as context:
        stream_in_run(response, context)
    run = context.run_id.value
    assert registry.kinds(run) == ["start"]
    with pytest.raises(OSError, match="close failed"):
        response.close()
    assert str(registry.calls[-1][2]["error"]) == "close failed"


def test_a_failing_view_is_answered_500_in_its_run() -> None:
    registry = FakeRegistry()
    handler = Seen()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    run_logging.install()
    try:
        with override_settings(AGENT_RUN_ID={"registry": registry}):
            response = Client(raise_request_exception=False).get("/sync-fail")
    finally:
        logger.removeHandler(handler)
    run = response["X-Run-Id"]
    assert response.status_code == 500
    assert registry.kinds(run) == ["start", "finish"]
    assert [line[0] for line in handler.lines] == [run]  # Django's error log is in the run


# --- settings and the app ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ("continue", ImproperlyConfigured, "must be a dict"),
        ({"incomming": "ignore"}, ImproperlyConfigured, "no option 'incomming'"),
        ({"header_name": "X Run"}, ValueError, "settings.AGENT_RUN_ID: header_name"),
        ({"incoming": "trust"}, ValueError, "incoming='trust' is not a mode"),
        ({"on_invalid": "drop"}, ValueError, "on_invalid='drop'"),
        ({"response_header": "yes"}, TypeError, "response_header must be True or False"),
        ({"user": "pk"}, ImproperlyConfigured, "['user'] must be True"),
        ({"logging": "on"}, ImproperlyConfigured, "['logging'] must be True"),
        ({"registry": 42}, ImproperlyConfigured, "['registry'] must be a path"),
        (
            {"registry": "host=db dbname=agents password=s3cret"},
            ImproperlyConfigured,
            "['registry']: a libpq key=value connection string",
        ),
    ],
)
def test_a_bad_setting_is_a_clear_error(value: object, error: type, words: str) -> None:
    with override_settings(AGENT_RUN_ID=value), pytest.raises(error) as info:
        RunIdMiddleware(lambda request: None)
    assert words in str(info.value)
    assert "s3cret" not in str(info.value)


def test_the_app_opens_a_postgresql_url_as_the_middleware_does() -> None:
    """Never connected in the foreground: no server there, and the app starts all the same."""
    with override_settings(AGENT_RUN_ID={"registry": "postgresql://agent@127.0.0.1:1/agents"}):
        apps.get_app_config("agent_run_id").ready()
    registry = get_default()
    try:
        assert type(registry).__name__ == "PostgresRunRegistry"
    finally:
        reset()
        registry.close()  # type: ignore[union-attr]


def test_a_registry_path_needs_the_app_installed(tmp_path: Path) -> None:
    apps_without = [app for app in settings.INSTALLED_APPS if not app.startswith("agent_run")]
    with (
        override_settings(
            AGENT_RUN_ID={"registry": str(tmp_path / "runs.db")}, INSTALLED_APPS=apps_without
        ),
        pytest.raises(ImproperlyConfigured, match=r"add 'agent_run_id\.django' to INSTALLED_APPS"),
    ):
        RunIdMiddleware(lambda request: None)


def test_the_app_is_found_by_its_module_name() -> None:
    config = apps.get_app_config("agent_run_id")
    assert type(config) is RunIdConfig
    assert config.name == "agent_run_id.django"


def test_the_app_installs_logging_and_the_default_registry(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with override_settings(AGENT_RUN_ID={"logging": {"short": True}, "registry": path}):
        apps.get_app_config("agent_run_id").ready()
        registry = get_default()
        try:
            assert isinstance(registry, SQLiteRunRegistry)
            response = Client().get("/sync", headers={"X-Session-Id": "chat-9"})
            run = response["X-Run-Id"]
            record = logging.getLogger("tests.django_project").makeRecord(
                "x", logging.INFO, "f", 1, "m", None, None
            )
            assert record.run_id == "-"  # type: ignore[attr-defined]  # stamped, outside runs
            with RunContext() as inside:
                record = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "m", (), None)
            assert record.run_id == inside.run_id.value[:8]  # type: ignore[attr-defined]
            registry.flush()
            row = registry.get(run)
            assert row is not None
            assert row.session_id == "chat-9"
        finally:
            reset()
            registry.close()  # type: ignore[union-attr]


def test_the_app_makes_a_registry_object_the_default() -> None:
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        apps.get_app_config("agent_run_id").ready()
    assert get_default() is registry


def test_the_app_installs_nothing_by_default() -> None:
    with override_settings(AGENT_RUN_ID={}):
        apps.get_app_config("agent_run_id").ready()
    assert get_default() is None
    assert not hasattr(logging.getLogger("x").makeRecord("x", 20, "f", 1, "m", (), None), "run_id")


def test_without_django_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "django" or m.startswith("django.")]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("agent_run_id.django", "agent_run_id.django.apps"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError) as info:
        importlib.import_module("agent_run_id.django")
    assert str(info.value).startswith("agent_run_id.django needs the django package: pip install")
    assert "agent-run-id[django]" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


# --- real servers ----------------------------------------------------------------------------


def test_a_real_wsgi_server_sync_views_streams_and_one_header(
    users: list[tuple[str, str]], seen: Seen
) -> None:
    user_id, session = users[9]
    with wsgi_server(get_wsgi_application()) as url, httpx.Client(base_url=url) as http:
        plain = http.get("/sync", headers={"X-Run-Id": RUN_A, **cookie(session)})
        assert plain.json()["run_id"] == RUN_A
        assert plain.json()["user_id"] == user_id
        stream = http.get("/sync-stream", headers={"X-Session-Id": "s-9", **cookie(session)})
        run = stream.headers["x-run-id"]
        assert stream.text.splitlines() == [f"{run} s-9 {user_id}"] * 3
        own = http.get("/sets-header")
        assert len(own.headers.get_list("x-run-id")) == 1
        assert is_canonical(own.headers["x-run-id"])
        bad = http.get("/sync", headers={"X-Run-Id": b"\xff-not-a-run"})
        assert is_canonical(bad.headers["x-run-id"])
    chunks = [line for line in seen.lines if "chunk" in line[3]]
    assert [line[:3] for line in chunks] == [(run, "s-9", user_id)] * 3


def test_a_file_response_keeps_the_file_wrapper_and_ends_the_run_at_close() -> None:
    registry = FakeRegistry()
    with override_settings(AGENT_RUN_ID={"registry": registry}):
        application = get_wsgi_application()
    with wsgiref_server(application) as url:
        response = httpx.get(url + "/file")
    assert response.content == b"file body " * 100
    run = response.headers["x-run-id"]
    assert registry.kinds(run) == ["start", "finish"]


def test_a_real_asgi_server_async_and_sync_views_and_async_streams(
    users: list[tuple[str, str]], seen: Seen
) -> None:
    user_id, session = users[10]
    with uvicorn_server(get_asgi_application()) as url, httpx.Client(base_url=url) as http:
        for path in ("/async", "/sync"):
            response = http.get(path, headers={"X-Run-Id": RUN_B, **cookie(session)})
            assert response.headers["x-run-id"] == RUN_B
            assert response.json()["run_id"] == RUN_B
            assert response.json()["user_id"] == user_id
        stream = http.get("/async-stream", headers={"X-Session-Id": "s-10", **cookie(session)})
        run = stream.headers["x-run-id"]
        assert stream.text.splitlines() == [f"{run} s-10 {user_id}"] * 3
        failed = http.get("/async-fail")
        assert failed.status_code == 500
        assert is_canonical(failed.headers["x-run-id"])
        with override_settings(AGENT_RUN_ID={"on_invalid": "reject"}):
            strict = get_asgi_application()
    chunks = [line for line in seen.lines if "chunk" in line[3]]
    assert [line[:3] for line in chunks] == [(run, "s-10", user_id)] * 3
    with uvicorn_server(strict) as url:
        rejected = httpx.get(url + "/async", headers={"X-Run-Id": "nope"})
    assert rejected.status_code == 400
    assert "x-run-id" not in rejected.headers


# --- many at once: zero cross-talk -----------------------------------------------------------


def expected(index: int, users: list[tuple[str, str]]) -> tuple[str, str, str]:
    """The run, session and user of request ``index`` of a concurrency test."""
    return f"{index:08x}-0000-4000-8000-{index:012x}", f"chat-{index}", users[index][0]


def check_no_cross_talk(
    answers: list[dict[str, Any]], seen: Seen, users: list[tuple[str, str]], lines: int
) -> None:
    for index, answer in enumerate(answers):
        run, session, user = expected(index, users)
        assert (answer["run_id"], answer["session_id"], answer["user_id"]) == (run, session, user)
        assert answer["request_run_id"] == answer["header"] == run
    by_run: dict[str, list[tuple[str | None, str | None]]] = {}
    for run, session, user, _ in seen.lines:
        by_run.setdefault(run, []).append((session, user))
    assert len(by_run) == len(answers)
    for index in range(len(answers)):
        run, session, user = expected(index, users)
        assert by_run[run] == [(session, user)] * lines


def headers_of(index: int, users: list[tuple[str, str]], *, login: bool = True) -> dict[str, str]:
    """The headers of request ``index``: its run, its session, and its user's cookie."""
    run, session, _ = expected(index, users)
    headers = {"X-Run-Id": run, "X-Session-Id": session}
    return {**headers, **cookie(users[index][1])} if login else headers


def test_many_threads_through_the_test_client(users: list[tuple[str, str]], seen: Seen) -> None:
    def call(index: int) -> dict[str, Any]:
        path = "/sync" if index % 2 else "/async"
        return body(
            client(users[index][1]).get(path, headers=headers_of(index, users, login=False))
        )

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(call, range(50)))
    check_no_cross_talk(answers, seen, users, lines=2)


async def test_many_tasks_through_the_async_client(
    users: list[tuple[str, str]], seen: Seen
) -> None:
    async def call(index: int) -> dict[str, Any]:
        path = "/async" if index % 2 else "/sync"
        logged_in = aclient(users[index][1])
        return body(await logged_in.get(path, headers=headers_of(index, users, login=False)))

    answers = await asyncio.gather(*(call(index) for index in range(50)))
    check_no_cross_talk(list(answers), seen, users, lines=2)


def test_many_threads_through_a_real_wsgi_server(users: list[tuple[str, str]], seen: Seen) -> None:
    with wsgi_server(get_wsgi_application()) as url:

        def call(index: int) -> dict[str, Any]:
            path = "/sync" if index % 2 else "/sync-stream"
            response = httpx.get(url + path, headers=headers_of(index, users))
            if path == "/sync":
                return response.json()  # type: ignore[no-any-return]
            run, session, user = response.text.splitlines()[0].split()
            return {
                "run_id": run,
                "session_id": session,
                "user_id": user,
                "request_run_id": response.headers["x-run-id"],
                "header": run,
            }

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(call, range(50)))
    for index, answer in enumerate(answers):
        run, session, user = expected(index, users)
        assert (answer["run_id"], answer["session_id"], answer["user_id"]) == (run, session, user)
        assert answer["request_run_id"] == run
    by_run: dict[str, set[tuple[str | None, str | None]]] = {}
    for run, session, user, _ in seen.lines:
        by_run.setdefault(run, set()).add((session, user))
    assert by_run == {expected(i, users)[0]: {expected(i, users)[1:]} for i in range(50)}


async def test_many_tasks_through_a_real_asgi_server(
    users: list[tuple[str, str]], seen: Seen
) -> None:
    with uvicorn_server(get_asgi_application()) as url:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

            async def call(index: int) -> dict[str, Any]:
                path = "/async" if index % 3 else "/sync"
                response = await http.get(path, headers=headers_of(index, users))
                return response.json()  # type: ignore[no-any-return]

            answers = await asyncio.gather(*(call(index) for index in range(60)))
    check_no_cross_talk(list(answers), seen, users, lines=2)


def test_the_example_logs_every_request_with_its_run_session_and_user() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "django_app.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[0] == "Lisbon in May"
    runs = done.stdout.splitlines()[1].split(": ")[1].split(", ")
    assert len(set(runs)) == 3
    lines = [line.split(" ", 3) for line in done.stderr.splitlines()]
    assert [line[0] for line in lines] == [runs[0], runs[1], runs[2], runs[2], runs[2]]
    assert {(line[1], line[2]) for line in lines} == {("session=chat-42", "user=1")}
    assert [line[3] for line in lines] == [
        "planning",
        "searching",
        "token Lisbon",
        "token in",
        "token May",
    ]


def test_the_test_project_is_this_one() -> None:
    assert f"{django_project.__name__}.urls" == settings.ROOT_URLCONF
