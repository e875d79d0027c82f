"""The core's fast paths for the inbound middleware behave exactly like the general ones."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_run_id import RunContext, RunId, add_run_observer, current_run, current_run_id
from agent_run_id._context import (
    FINISHERS,
    LOG_FIELDS,
    PREVIOUS,
    RUN,
    Frame,
    current,
    deactivate,
    enter_unwatched,
    new_frame,
)
from agent_run_id._propagation import run_from_wire
from agent_run_id._run_id import make_run_id
from agent_run_id._uuid import CANONICAL_SHAPE, CANONICAL_TABLE, MAX, NIL, parse_wire_id
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.registry import SQLiteRunRegistry, set_default

VALUE = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"


@pytest.mark.parametrize("raw", [VALUE, VALUE.upper(), VALUE.replace("-", "").upper()])
def test_parse_wire_id_gives_the_canonical_form_of_both_wire_forms(raw: str) -> None:
    assert parse_wire_id(raw) == VALUE
    assert parse_wire_id(raw.encode()) == VALUE


# Bytes near the canonical shape: hex digits of both cases, hyphens and a few others.
_NEAR_IDS = st.one_of(
    st.binary(max_size=40),
    st.text("0123456789abcdefABCDEF-g ", min_size=30, max_size=38).map(str.encode),
    st.uuids().map(lambda value: str(value).encode()),
    st.sampled_from([NIL, MAX, MAX.upper()]),
)


@given(_NEAR_IDS)
def test_the_quick_canonical_check_takes_exactly_what_parse_wire_id_keeps(raw: bytes) -> None:
    quick = raw.translate(CANONICAL_TABLE) == CANONICAL_SHAPE and raw != NIL and raw != MAX
    assert quick == (parse_wire_id(raw) == raw.decode("latin-1"))


def test_run_from_wire_without_lineage_is_a_root_run_equal_to_a_parsed_one() -> None:
    run = run_from_wire(VALUE.upper().encode())
    assert run == RunId(VALUE)
    assert run is not None
    assert (run.value, run.parent, run.root) == (VALUE, None, run)
    assert run_from_wire(b"nope") is None


def test_a_run_context_still_checks_options_when_any_is_given() -> None:
    with pytest.raises(TypeError, match="task must be a str"):
        RunContext(name="agent", task=3)  # type: ignore[arg-type]
    assert RunContext(run_id=RunId(VALUE)).metadata == {}
    assert RunContext(metadata={"a": 1}).metadata == {"a": 1}


def test_a_run_context_left_while_another_is_current_finds_its_own_frame() -> None:
    ended: list[tuple[str, BaseException | None]] = []
    add_run_observer(lambda run, context: lambda exc: ended.append((context.name or "", exc)))
    outer, inner = RunContext(name="outer"), RunContext(name="inner")
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # not the current frame: found by walking the chain
    assert ended == [("outer", None)]
    assert inner.run_id.parent == outer.run_id


def test_a_run_context_left_in_another_context_leaves_that_context_alone() -> None:
    context = RunContext(run_id=RunId(VALUE))
    context.__enter__()
    contextvars.Context().run(context.__exit__, None, None, None)
    assert current_run_id() == RunId(VALUE)  # this context keeps its own value


# --- the ASGI middleware's inlined copies, held to their originals ----------------------------


def _asgi_made(headers: list[tuple[bytes, bytes]]) -> tuple[Frame, RunIdMiddleware]:
    """The frame current inside an app behind the middleware's fast path, and the middleware."""
    seen: list[Frame] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        frame = current.get()
        assert frame is not None
        seen.append(frame)

    middleware = RunIdMiddleware(app)
    asyncio.run(middleware({"type": "http", "headers": headers}, None, None))  # type: ignore[arg-type]
    return seen[0], middleware


def _slots(run: RunId) -> dict[str, object]:
    missing = [name for name in RunId.__slots__ if not hasattr(run, name)]
    assert missing == [], (
        f"asgi.RunIdMiddleware.__call__ builds a RunId inline without {missing}: make it store "
        "every slot _run_id.make_run_id stores"
    )
    return {name: getattr(run, name) for name in RunId.__slots__}


@pytest.mark.parametrize(
    "headers", [[], [(b"x-run-id", VALUE.encode())]], ids=["new run", "canonical id"]
)
def test_the_asgi_fast_path_builds_what_new_frame_and_make_run_id_build(
    headers: list[tuple[bytes, bytes]],
) -> None:
    frame, middleware = _asgi_made(headers)
    run = frame[RUN]
    assert frame == new_frame(run, middleware._owner, None), (
        "asgi.RunIdMiddleware.__call__'s inlined frame differs from _context.new_frame: "
        "update the list literal there"
    )
    assert type(run) is RunId
    assert _slots(run) == _slots(make_run_id(run.value, None, None))
    if headers:
        assert run.value == VALUE


# --- enter_unwatched: a run per request without a RunContext, where nothing would see it -------


def _view(run: Any) -> tuple[object, ...]:
    fields = ("run_id", "parent", "root", "session_id", "user_id", "task", "name", "metadata")
    return tuple(getattr(run, name) for name in (*fields, "external_ids"))


@pytest.mark.parametrize(("name", "session"), [("tools/call t", "chat-1"), (None, None)])
def test_enter_unwatched_makes_the_run_a_run_context_makes(
    name: str | None, session: str | None
) -> None:
    run = RunId(VALUE)
    with RunContext():  # a run current where the request comes in: never the new run's parent
        before = current.get()
        token = enter_unwatched(run, RunContext(), name, session)
        assert token is not None
        quick, frame = current_run(), current.get()
        deactivate(token)
        assert current.get() is before
    aside = current.set(None)  # RunContext's own run, entered from no run, as a request's is
    with RunContext(run_id=run, name=name, session_id=session):
        full, full_frame = current_run(), current.get()
    current.reset(aside)
    assert _view(quick) == _view(full)
    # The frames' own parts: entered from no run, nothing to finish, log fields not worked out.
    assert [frame[PREVIOUS], frame[FINISHERS], frame[LOG_FIELDS]] == [None, None, None]
    assert [full_frame[PREVIOUS], full_frame[FINISHERS]] == [None, None]


def test_enter_unwatched_declines_when_a_registry_or_an_observer_would_see_the_run(
    tmp_path: Path,
) -> None:
    run = RunId(VALUE)
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    try:
        assert enter_unwatched(run, RunContext(registry=registry), "t", None) is None
        set_default(registry)
        assert enter_unwatched(run, RunContext(), "t", None) is None
        set_default(None)
        add_run_observer(lambda run, context: None)
        assert enter_unwatched(run, RunContext(), "t", None) is None
        assert current_run_id() is None
    finally:
        registry.close()
