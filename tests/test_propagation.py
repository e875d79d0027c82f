"""headers(), environ(), the wire rule for incoming ids, and incoming fallbacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agent_run_id
from agent_run_id import HEADER, RunContext, RunId, environ, headers
from agent_run_id._hooks import add_incoming_fallback, remove_incoming_fallback, run_from_fallbacks
from agent_run_id._propagation import run_from_wire
from agent_run_id._uuid import parse_wire_id


def test_headers_outside_a_run_are_empty() -> None:
    assert headers() == {}
    assert environ() == {}


def test_headers_of_a_root_run() -> None:
    with RunContext() as run:
        assert headers() == {"X-Run-Id": run.run_id.value}
        assert HEADER == "X-Run-Id"


def test_headers_of_a_child_run_carry_the_lineage() -> None:
    with RunContext() as root, RunContext() as parent, RunContext() as run:
        assert headers() == {
            "X-Run-Id": run.run_id.value,
            "X-Parent-Run-Id": parent.run_id.value,
            "X-Root-Run-Id": root.run_id.value,
        }


def test_headers_are_a_fresh_dict_each_time() -> None:
    with RunContext():
        first = headers()
        first["X-Run-Id"] = "changed"
        assert headers()["X-Run-Id"] != "changed"


async def test_headers_follow_each_task_s_run() -> None:
    async def agent() -> bool:
        async with RunContext() as run:
            await asyncio.sleep(0)
            return headers() == {"X-Run-Id": run.run_id.value}

    assert all(await asyncio.gather(*(agent() for _ in range(300))))


def test_environ_round_trips_through_a_subprocess() -> None:
    with RunContext() as parent, RunContext() as run:
        env = {**os.environ, **environ()}
    script = (
        "from agent_run_id import RunId; r = RunId.from_env(); "
        "print(r.value, r.parent.value, r.root.value)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [run.run_id.value, parent.run_id.value, parent.run_id.value]


def test_environ_of_a_root_run_clears_the_lineage_this_process_inherited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented recipe must not hand a child the grandparent's parent and root."""
    monkeypatch.setenv("AGENT_PARENT_RUN_ID", str(uuid.uuid4()))
    monkeypatch.setenv("AGENT_ROOT_RUN_ID", str(uuid.uuid4()))
    with RunContext() as run:
        assert environ() == {
            "AGENT_RUN_ID": run.run_id.value,
            "AGENT_PARENT_RUN_ID": "",
            "AGENT_ROOT_RUN_ID": "",
            "AGENT_RUN_SESSION_ID": "",
        }
        env = {**os.environ, **environ()}
    script = (
        "from agent_run_id import RunId; r = RunId.from_env(); "
        "print(r.value, r.parent, r.root.value)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [run.run_id.value, "None", run.run_id.value]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908", "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"),
        (b"0B6F5D3E-2C1A-4E8B-9F7D-5A4C3B2A1908", "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"),
        (b"0b6f5d3e2c1a4e8b9f7d5a4c3b2a1908", "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"),
        ("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908", "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"),
        (b"", None),
        (None, None),
        (b"{0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908}", None),
        (b"urn:uuid:0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908", None),
        (b"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908\r\nX-Evil: 1", None),
        (b"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a190\x00", None),
        ("\u0661" * 32, None),
        (b"\xd9\xa1" * 16, None),
        (b"a" * 10_000, None),
        (b" 0b6f5d3e2c1a4e8b9f7d5a4c3b2a1908", "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"),
        ("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908 \t", "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"),
        (b" \t ", None),
        (b"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908\n", None),  # only spaces and tabs are optional
        (b"\xa00b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908", None),
        (b"00000000-0000-0000-0000-000000000000", None),
        (b"0" * 32, None),
        (b"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", None),
    ],
)
def test_the_wire_rule(raw: bytes | str | None, expected: str | None) -> None:
    assert parse_wire_id(raw) == expected


@given(st.binary(max_size=64))
def test_the_wire_rule_never_raises_and_only_returns_canonical_ids(raw: bytes) -> None:
    value = parse_wire_id(raw)
    assert value is None or str(uuid.UUID(value)) == value


def test_run_from_wire_keeps_valid_lineage_and_drops_the_rest() -> None:
    run, parent, root = (str(uuid.uuid4()) for _ in range(3))
    full = run_from_wire(run.encode(), parent.encode(), root.encode())
    assert full is not None
    assert full.value == run
    assert full.parent is not None
    assert full.parent.value == parent
    assert full.root.value == root
    no_lineage = run_from_wire(run, b"garbage", b"\xff")
    assert no_lineage is not None
    assert no_lineage.parent is None
    assert no_lineage.root is no_lineage
    self_parent = run_from_wire(run, run, run)
    assert self_parent is not None
    assert self_parent.parent is None
    assert self_parent.root is self_parent
    assert run_from_wire(b"bad", parent, root) is None


def test_root_alone_travels_in_headers() -> None:
    """A run whose parent is unknown but whose root arrived keeps sending the root on."""
    root = RunId.generate()
    with RunContext(run_id=RunId(str(uuid.uuid4()), root=root)) as run:
        assert headers() == {"X-Run-Id": run.run_id.value, "X-Root-Run-Id": root.value}


def test_incoming_fallbacks_are_asked_in_order_and_failures_skipped() -> None:
    found = RunId.generate()
    asked: list[str] = []

    def broken(get: Callable[[str], str | None]) -> RunId | None:
        raise RuntimeError("bad baggage")

    def nothing(get: Callable[[str], str | None]) -> RunId | None:
        asked.append("nothing")
        return None

    def from_baggage(get: Callable[[str], str | None]) -> RunId | None:
        asked.append(get("baggage") or "")
        return found

    assert run_from_fallbacks(lambda name: None) is None
    for fallback in (broken, nothing, from_baggage, nothing):
        add_incoming_fallback(fallback)
    try:
        assert run_from_fallbacks({"baggage": "agent_run.id=x"}.get) is found
        assert asked == ["nothing", "agent_run.id=x"]
    finally:
        for fallback in (broken, nothing, from_baggage):
            remove_incoming_fallback(fallback)
    assert run_from_fallbacks(lambda name: None) is None


def test_the_root_package_exports_the_propagation_helpers() -> None:
    assert agent_run_id.PARENT_HEADER == "X-Parent-Run-Id"
    assert agent_run_id.ROOT_HEADER == "X-Root-Run-Id"
