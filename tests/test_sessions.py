"""Sessions, late annotation and the view of the current run (the core of issue 14)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import agent_run_id
from agent_run_id import RunContext, RunId, annotate, current_run, headers
from agent_run_id._session import MAX_SESSION, parse_session_id
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.registry import SQLiteRunRegistry, set_default
from agent_run_id.wsgi import RunIdMiddleware as WsgiRunIdMiddleware

RUN = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"


def test_a_child_run_inherits_the_session_unless_given_its_own() -> None:
    with RunContext(session_id="chat-1", user_id="bob") as parent:
        with RunContext() as child:
            view = current_run()
            assert view is not None
            assert view.session_id == "chat-1"
            assert view.user_id is None  # the user is the run's own, not inherited
            assert view.parent == parent.run_id
            with RunContext(session_id="chat-2"):
                assert current_run().session_id == "chat-2"  # type: ignore[union-attr]
        assert child.run_id.parent == parent.run_id
    assert current_run() is None


@pytest.mark.parametrize(
    "bad", ["a,b", "a b", "x" * (MAX_SESSION + 1), "line\r", "", "é", "tab\there"]
)
def test_a_bad_session_id_is_refused_naming_it_and_the_rule(bad: str) -> None:
    with pytest.raises(ValueError, match=r"session_id .* is not a session id: pass 1 to 128"):
        RunContext(session_id=bad)
    with RunContext(), pytest.raises(ValueError, match="session_id"):
        annotate(session_id=bad)
    assert parse_session_id(bad) is None


def test_a_session_id_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="session_id must be a str"):
        RunContext(session_id=42)  # type: ignore[arg-type]


def test_the_longest_session_and_odd_printable_characters_are_taken() -> None:
    for good in ("x" * MAX_SESSION, "thread_9:abc/def?x=1", "A-b.C~d!"):
        assert RunContext(session_id=good).session_id == good
        assert parse_session_id(f" {good}\t") == good


def test_annotate_outside_a_run_does_nothing_and_says_so() -> None:
    assert annotate(user_id="bob", session_id="s") is False
    assert current_run() is None


def test_annotate_sets_the_facts_from_then_on_and_keeps_what_it_is_not_given() -> None:
    with RunContext(name="agent", task="plan", metadata={"a": 1}) as run:
        before = current_run()
        assert annotate(user_id="bob", session_id="chat-9", plan="gold") is True
        assert annotate(task=None, region="eu") is True
        view = current_run()
        assert view is not None
        assert (view.id, view.name, view.task) == (run.run_id.value, "agent", "plan")
        assert (view.user_id, view.session_id) == ("bob", "chat-9")
        assert dict(view.metadata) == {"a": 1, "plan": "gold", "region": "eu"}
        assert before is not None
        assert before.user_id is None  # a view taken before is not changed
        assert headers()["X-Session-Id"] == "chat-9"
    with pytest.raises(TypeError, match="user_id must be a str"):
        annotate(user_id=3)  # type: ignore[arg-type]


def test_the_view_is_read_only() -> None:
    with RunContext(session_id="s"):
        view = current_run()
        assert view is not None
        with pytest.raises(AttributeError):
            view.user_id = "mallory"  # type: ignore[misc]
        with pytest.raises(TypeError):
            view.metadata["x"] = 1  # type: ignore[index]
        assert "session_id='s'" in repr(view)


def test_annotate_fills_in_the_registry_row_without_ending_it_twice(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    with RunContext(registry=registry) as run:
        annotate(user_id="bob", session_id="chat-1", task="book")
        with RunContext() as child:
            pass
    record = registry.get(run.run_id)
    assert (record.status, record.user_id, record.session_id, record.task) == (
        "ok",
        "bob",
        "chat-1",
        "book",
    )
    assert registry.get(child.run_id).session_id == "chat-1"
    assert [r.run_id for r in registry.find(session_id="chat-1")] == [
        child.run_id.value,
        run.run_id.value,
    ]
    registry.close()


def test_environ_and_session_from_env_carry_the_session() -> None:
    with RunContext(session_id="chat-7"):
        env = agent_run_id.environ()
    assert env["AGENT_RUN_SESSION_ID"] == "chat-7"
    assert agent_run_id.session_from_env(env) == "chat-7"
    assert agent_run_id.session_from_env({"AGENT_RUN_SESSION_ID": " chat-7\t"}) == "chat-7"
    with pytest.raises(ValueError, match=r"\$AGENT_RUN_SESSION_ID 'bad value' is not a session"):
        agent_run_id.session_from_env({"AGENT_RUN_SESSION_ID": "bad value"})
    assert agent_run_id.session_from_env({}) is None
    assert agent_run_id.session_from_env({"AGENT_RUN_SESSION_ID": " "}) is None


def session_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        view = current_run()
        assert view is not None
        await asyncio.sleep(0)
        user = dict(scope["headers"]).get(b"x-user", b"").decode() or None
        annotate(user_id=user)
        await asyncio.sleep(0)
        after = current_run()
        assert after is not None
        seen.append({"run": after.id, "session": after.session_id, "user": after.user_id})
        body = f"{after.session_id} {after.user_id}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_asgi_takes_the_session_header_and_200_requests_never_mix() -> None:
    seen: list[dict[str, Any]] = []
    app = RunIdMiddleware(session_app(seen))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:

        async def one(i: int) -> httpx.Response:
            return await http.get("/", headers={"X-Session-Id": f"chat-{i}", "X-User": f"u{i}"})

        answers = await asyncio.gather(*(one(i) for i in range(200)))
        bad = await http.get("/", headers={"X-Session-Id": "has space, comma"})
    for i, answer in enumerate(answers):
        assert answer.text == f"chat-{i} u{i}"
        assert "x-session-id" not in answer.headers  # nothing echoed
    assert bad.text == "None None"
    assert "space" not in str(bad.headers)
    assert len({entry["run"] for entry in seen}) == 201


def test_wsgi_takes_the_session_header_and_50_threads_never_mix() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        annotate(user_id=environ.get("HTTP_X_USER"))
        view = current_run()
        assert view is not None
        start_response("200 OK", [])
        return [f"{view.session_id} {view.user_id}".encode()]

    middleware = WsgiRunIdMiddleware(app)
    results: dict[int, str] = {}

    def one(i: int) -> None:
        environ = {"HTTP_X_SESSION_ID": f" s{i} ", "HTTP_X_USER": f"u{i}"}
        body = middleware(environ, lambda *args: None)
        results[i] = b"".join(body).decode()
        body.close()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: f"s{i} u{i}" for i in range(50)}
    body = middleware({"HTTP_X_SESSION_ID": "a,b"}, lambda *args: None)
    assert b"".join(body) == b"None None"


def test_a_run_id_view_has_its_lineage() -> None:
    with RunContext(run_id=RunId(RUN)) as outer, RunContext():
        view = current_run()
        assert view is not None
        assert view.parent == outer.run_id
        assert view.root == outer.run_id
        assert view.run_id.parent == outer.run_id


@pytest.mark.parametrize(
    ("key", "fix"),
    [("name", "RunContext"), ("metadata", r"\*\*metadata"), ("user", "user_id"), ("run_id", "")],
)
def test_annotate_refuses_keywords_that_are_not_metadata(key: str, fix: str) -> None:
    with RunContext(), pytest.raises(TypeError, match=f"{key}=, which is not metadata.*{fix}"):
        annotate(**{key: "x"})


def test_threads_of_one_run_annotating_at_once_keep_every_change() -> None:
    with RunContext():
        barrier = threading.Barrier(8)

        def one(i: int) -> None:
            barrier.wait()
            annotate(**{f"k{i}": i})

        threads = [
            threading.Thread(target=agent_run_id.in_current_run(one), args=(i,)) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        view = current_run()
        assert view is not None
        assert dict(view.metadata) == {f"k{i}": i for i in range(8)}


def test_a_later_annotation_replaces_the_registry_rows_and_a_late_registry_gets_no_row(
    tmp_path: Path,
) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    with RunContext(registry=registry, name="agent") as run:
        annotate(user_id="anon", step="auth")
        annotate(user_id="u-42", session_id="chat-2", plan="x")
    record = registry.get(run.run_id)
    assert (record.user_id, record.session_id) == ("u-42", "chat-2")
    assert dict(record.metadata) == {"name": "agent", "step": "auth", "plan": "x"}
    with RunContext() as late:
        set_default(registry)
        annotate(user_id="late")
    registry.flush()
    with pytest.raises(KeyError):
        registry.get(late.run_id)
    registry.close()
