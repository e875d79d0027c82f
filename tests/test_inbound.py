"""The inbound policy shared by the ASGI and WSGI middleware: options and the run of a request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id._hooks import add_incoming_fallback, remove_incoming_fallback
from agent_run_id._inbound import InboundPolicy
from agent_run_id.asgi import RunIdMiddleware as AsgiMiddleware
from agent_run_id.wsgi import RunIdMiddleware as WsgiMiddleware

from ._inbound_helpers import RUN_A, RUN_B, RUN_C, captured

MIDDLEWARES = [AsgiMiddleware, WsgiMiddleware]


def no_headers(request: object) -> Callable[[str], str | None]:
    return lambda name: None


def policy(**options: Any) -> InboundPolicy:
    settings: dict[str, Any] = {
        "header_name": "X-Run-Id",
        "incoming": "continue",
        "on_invalid": "replace",
        "response_header": True,
    }
    settings.update(options)
    return InboundPolicy(owner="test", header_getter=no_headers, **settings)


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize(
    ("option", "value", "error", "shown"),
    [
        ("header_name", "", ValueError, "''"),
        ("header_name", "X Run Id", ValueError, "'X Run Id'"),
        ("header_name", "X-Run-Id\r\n", ValueError, "'X-Run-Id\\\\r\\\\n'"),
        ("header_name", b"X-Run-Id", ValueError, "b'X-Run-Id'"),
        ("incoming", "trust", ValueError, "'trust'"),
        ("incoming", None, TypeError, "None"),
        ("on_invalid", "drop", ValueError, "'drop'"),
        ("response_header", "yes", TypeError, "'yes'"),
    ],
)
def test_a_bad_option_is_refused_naming_it_and_its_value(
    middleware: Any, option: str, value: object, error: type[Exception], shown: str
) -> None:
    with pytest.raises(error, match=option) as caught:
        middleware(lambda *args: None, **{option: value})
    message = str(caught.value)
    assert shown.replace("\\\\", "\\") in message
    assert middleware.__module__ in message
    assert "pass" in message or "must be" in message


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        AsgiMiddleware(lambda *args: None, "X-Run-Id")  # type: ignore[misc]


def test_continue_takes_the_incoming_run_in_canonical_form() -> None:
    run = policy().run_for({}, RUN_A.upper().encode())
    assert run == RunId(RUN_A)
    assert run is not None
    assert run.parent is None
    assert run.root is run


def test_continue_takes_32_hex_digits_normalized() -> None:
    run = policy().run_for({}, RUN_A.replace("-", ""))
    assert run is not None
    assert run.value == RUN_A


def test_continue_keeps_the_incoming_lineage() -> None:
    run = policy().run_for({}, RUN_A, RUN_B, RUN_C)
    assert run is not None
    assert run.value == RUN_A
    assert run.parent == RunId(RUN_B)
    assert run.root == RunId(RUN_C)


def test_invalid_lineage_is_dropped_and_the_run_kept() -> None:
    run = policy().run_for({}, RUN_A, b"nope", RUN_A)
    assert run is not None
    assert run.value == RUN_A
    assert run.parent is None
    assert run.root is run


def test_child_starts_a_child_of_the_incoming_run() -> None:
    run = policy(incoming="child").run_for({}, RUN_A, None, RUN_C)
    assert run is not None
    assert run.value not in (RUN_A, RUN_C)
    assert run.parent == RunId(RUN_A)
    assert run.root == RunId(RUN_C)


def test_ignore_starts_a_new_root_run_whatever_came() -> None:
    with captured("agent_run_id") as log:
        for raw in (RUN_A, b"garbage"):
            run = policy(incoming="ignore", on_invalid="reject").run_for({}, raw, RUN_B, RUN_C)
            assert run is not None
            assert run.value not in (RUN_A, RUN_B, RUN_C)
            assert run.parent is None
            assert run.root is run
    assert log.lines == []


def test_no_header_starts_a_new_root_run_even_inside_a_current_run() -> None:
    with RunContext() as stale:
        for mode in ("continue", "child"):
            run = policy(incoming=mode).run_for({}, None)
            assert run is not None
            assert run != stale.run_id
            assert run.parent is None
            assert run.root is run


BAD_VALUES = [
    b"not-a-run",
    RUN_A.encode() + b"0",
    RUN_A.encode() + b"\r\nSet-Cookie: x=1",
    RUN_A[:-1].encode() + b"\x00",
    RUN_A[:-1].encode() + "é".encode(),
    b"{" + RUN_A.encode() + b"}",
    b"urn:uuid:" + RUN_A.encode(),
    b"x" * 10_000,
    (RUN_A + "," + RUN_B).encode(),
    (RUN_A + ", garbage").encode(),
]


@pytest.mark.parametrize("raw", BAD_VALUES)
def test_an_invalid_value_is_replaced_and_noted_once_at_debug_level(raw: bytes) -> None:
    with captured("agent_run_id") as log:
        run = policy().run_for({}, raw)
    assert run is not None
    assert run.value not in (RUN_A, RUN_B)
    assert run.parent is None
    assert len(log.lines) == 1
    message = log.lines[0][1]
    assert "X-Run-Id" in message
    assert run.value in message
    assert "\r" not in message
    assert "\n" not in message
    assert "\x00" not in message
    assert len(message) < 200


def test_the_replacement_note_is_debug_not_warning() -> None:
    with captured("agent_run_id", logging.INFO) as log:
        policy().run_for({}, b"garbage")
        policy(on_invalid="reject").run_for({}, b"garbage")
    assert log.lines == []


@pytest.mark.parametrize("raw", BAD_VALUES)
def test_reject_refuses_an_invalid_value(raw: bytes) -> None:
    with captured("agent_run_id") as log:
        assert policy(on_invalid="reject").run_for({}, raw) is None
    assert len(log.lines) == 1
    assert "rejected" in log.lines[0][1]


BLANK_VALUES = [b"", b" ", b"\t", b" \t ", b",", b" , ,\t", "", "  "]


@pytest.mark.parametrize("raw", BLANK_VALUES)
@pytest.mark.parametrize("on_invalid", ["replace", "reject"])
def test_an_empty_or_blank_header_counts_as_absent(raw: bytes | str, on_invalid: str) -> None:
    """Clients that template an unset id send an empty header: it is no header, never a 400."""
    with captured("agent_run_id") as log:
        run = policy(on_invalid=on_invalid).run_for({}, raw, raw, raw)
    assert run is not None
    assert run.parent is None
    assert run.root is run
    assert log.lines == []


@pytest.mark.parametrize(
    "raw",
    [f"{RUN_A}  ", f"  {RUN_A}", f"{RUN_A}\t", f"\t {RUN_A} ", f" {RUN_A.replace('-', '')} "],
)
@pytest.mark.parametrize("as_bytes", [True, False])
def test_spaces_and_tabs_around_a_valid_id_are_dropped(raw: str, as_bytes: bool) -> None:
    """Optional whitespace (RFC 9110), which werkzeug's server keeps, is not part of the id."""
    value: bytes | str = raw.encode() if as_bytes else raw
    with captured("agent_run_id") as log:
        run = policy(on_invalid="reject").run_for({}, value, f" {RUN_B}\t", f"{RUN_C} ")
    assert run is not None
    assert run.value == RUN_A
    assert run.parent == RunId(RUN_B)
    assert run.root == RunId(RUN_C)
    assert log.lines == []


@pytest.mark.parametrize("raw", [f"{RUN_A},", f",{RUN_A}", f"{RUN_A}, ,{RUN_A}", f" ,{RUN_A},\t,"])
def test_empty_elements_of_a_repeated_header_are_skipped(raw: str) -> None:
    """As HTTP reads lists (RFC 9110, section 5.6.1)."""
    run = policy(on_invalid="reject").run_for({}, raw.encode())
    assert run is not None
    assert run.value == RUN_A


def test_reject_lets_a_request_without_the_header_through() -> None:
    run = policy(on_invalid="reject").run_for({}, None)
    assert run is not None
    assert run.parent is None


@pytest.mark.parametrize(
    "raw", [f"{RUN_A},{RUN_A}", f"{RUN_A}, {RUN_A.upper()}", f"{RUN_A},\t{RUN_A.replace('-', '')}"]
)
def test_a_repeated_header_with_one_value_counts_once(raw: str) -> None:
    for value in (raw, raw.encode()):
        run = policy().run_for({}, value, f"{RUN_B},{RUN_B}".encode())
        assert run is not None
        assert run.value == RUN_A
        assert run.parent == RunId(RUN_B)


def test_the_reject_body_names_the_header() -> None:
    body = policy(header_name="X-Agent-Run").reject_body
    assert b'"detail"' in body
    assert b"X-Agent-Run" in body


def test_a_callable_picks_the_mode_per_request() -> None:
    seen: list[object] = []

    def trust_internal(request: Any) -> str:
        seen.append(request)
        return "continue" if request.get("internal") else "ignore"

    chooser = policy(incoming=trust_internal)
    inside, outside = {"internal": True}, {"internal": False}
    run = chooser.run_for(inside, RUN_A)
    assert run is not None
    assert run.value == RUN_A
    run = chooser.run_for(outside, RUN_A)
    assert run is not None
    assert run.value != RUN_A
    assert seen == [inside, outside]


def test_a_callable_returning_no_mode_fails_loudly() -> None:
    with pytest.raises(ValueError, match="returned 'yes'"):
        policy(incoming=lambda request: "yes").run_for({}, RUN_A)


@pytest.fixture
def fallback() -> Iterator[list[Any]]:
    asked: list[Any] = []

    def from_baggage(get_header: Callable[[str], str | None]) -> RunId | None:
        asked.append(get_header)
        return RunId(RUN_B)

    add_incoming_fallback(from_baggage)
    try:
        yield asked
    finally:
        remove_incoming_fallback(from_baggage)


def test_a_fallback_gives_the_run_when_the_header_is_absent(fallback: list[Any]) -> None:
    run = policy().run_for({}, None)
    assert run == RunId(RUN_B)
    assert len(fallback) == 1
    child = policy(incoming="child").run_for({}, None)
    assert child is not None
    assert child.parent == RunId(RUN_B)


def test_a_fallback_gives_the_run_when_the_header_is_invalid(fallback: list[Any]) -> None:
    assert policy().run_for({}, b"garbage") == RunId(RUN_B)
    assert policy(on_invalid="reject").run_for({}, b"garbage") is None
    assert len(fallback) == 1


def test_the_header_wins_over_a_fallback(fallback: list[Any]) -> None:
    assert policy().run_for({}, RUN_A) == RunId(RUN_A)
    assert policy(incoming="ignore").run_for({}, None) != RunId(RUN_B)
    assert fallback == []
    assert current_run_id() is None
