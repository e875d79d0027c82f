"""The session on OpenTelemetry's wire: the propagator's ``x-session-id`` and the baggage key.

``RunIdPropagator`` injects the run's session beside the run headers and extracts it, with the
session rule, into the context, where ``session_from_context`` finds it (else in baggage, under
``agent_run.session_id``, which ``install()`` writes while the run is current). The run's user
never goes on either.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators import textmap
from opentelemetry.sdk.trace import TracerProvider

import agent_run_id
from agent_run_id import RunContext, RunId, _otel_runs
from agent_run_id import otel as run_otel
from agent_run_id._otel_propagation import session_from_baggage_header
from agent_run_id._otel_runs import SESSION_KEY, session_in_baggage, with_run_baggage
from agent_run_id.otel import RunIdPropagator, run_from_context, session_from_context

ID, ROOT = "agent_run.id", "agent_run.root_id"
RUN = RunId.from_string("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")


@pytest.fixture
def installed() -> Iterator[None]:
    """install() with baggage on, no processor (no SDK provider needed)."""
    provider = TracerProvider()
    run_otel.install(tracer_provider=provider, span_processor=False)
    yield
    run_otel.uninstall()
    provider.shutdown()


# The propagator


def test_inject_writes_the_session_beside_the_run_and_never_the_user() -> None:
    carrier: dict[str, str] = {}
    with RunContext(RUN, session_id="chat-42", user_id="user-7"):
        RunIdPropagator().inject(carrier)
    assert carrier == {"x-run-id": RUN.value, "x-session-id": "chat-42"}
    assert "x-session-id" in RunIdPropagator().fields


def test_inject_writes_no_session_for_a_run_without_one() -> None:
    carrier: dict[str, str] = {}
    with RunContext(RUN, user_id="user-7"):
        RunIdPropagator().inject(carrier)
    assert carrier == {"x-run-id": RUN.value}


def test_inject_writes_the_session_annotated_after_the_run_started() -> None:
    carriers: list[dict[str, str]] = [{}, {}]
    with RunContext(RUN):
        RunIdPropagator().inject(carriers[0])
        agent_run_id.annotate(session_id="chat-late")
        RunIdPropagator().inject(carriers[1])
    assert carriers == [
        {"x-run-id": RUN.value},
        {"x-run-id": RUN.value, "x-session-id": "chat-late"},
    ]


def test_a_carrier_holding_the_callers_session_keeps_it_and_gets_the_run() -> None:
    carrier = {"X-Session-Id": "theirs"}
    with RunContext(RUN, session_id="chat-42"):
        RunIdPropagator().inject(carrier)
    assert carrier == {"X-Session-Id": "theirs", "x-run-id": RUN.value}


def test_a_carrier_holding_the_callers_run_header_gets_no_session_either() -> None:
    carrier = {"X-Run-Id": "mine"}
    with RunContext(RUN, session_id="chat-42"):
        RunIdPropagator().inject(carrier)
    assert carrier == {"X-Run-Id": "mine"}


class PairSetter(textmap.Setter[list[tuple[str, str]]]):
    """A setter for a carrier that is no mapping: a list of pairs, as some transports keep."""

    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


def test_a_carrier_that_is_no_mapping_gets_the_session_too() -> None:
    carrier: list[tuple[str, str]] = [("x-session-id", "unread")]
    with RunContext(RUN, session_id="chat-42"):
        RunIdPropagator().inject(carrier, setter=PairSetter())
    assert carrier[1:] == [("x-run-id", RUN.value), ("x-session-id", "chat-42")]


def test_extract_round_trips_the_session_with_the_run() -> None:
    carrier: dict[str, str] = {}
    with RunContext(RUN, session_id="chat-42"):
        RunIdPropagator().inject(carrier)
    context = RunIdPropagator().extract(carrier, context=Context())
    assert run_from_context(context) == RUN
    assert session_from_context(context) == "chat-42"
    # And out again: outside any run, what arrived is forwarded, session included.
    forwarded: dict[str, str] = {}
    RunIdPropagator().inject(forwarded, context=context)
    assert forwarded == carrier


@pytest.mark.parametrize(
    "value",
    [
        "chat 42",
        "a,b",
        "x" * 129,
        "chat-42\r\nX-Evil: 1",
        "jürgen",
        "",
        ["chat-1", "chat-2"],
        ["chat-1", "chat-1"],  # repeated: joined with a comma, which no session id holds
    ],
)
def test_extract_takes_no_session_that_breaks_the_rule(value: object) -> None:
    context = Context()
    extracted = RunIdPropagator().extract({"X-Run-Id": RUN.value, "X-Session-Id": value}, context)
    assert run_from_context(extracted) == RUN
    assert session_from_context(extracted) is None


def test_extract_reads_the_session_in_any_case_and_without_a_run() -> None:
    for name in ("X-SESSION-ID", "x-session-id", "X-Session-Id"):
        extracted = RunIdPropagator().extract({name: " chat-42 "}, context=Context())
        assert session_from_context(extracted) == "chat-42"
        assert run_from_context(extracted) is None


def test_extract_without_a_session_leaves_the_context_as_it_was() -> None:
    context = Context()
    assert RunIdPropagator().extract({"X-Session-Id": "a b"}, context=context) is context
    assert session_from_context(context) is None
    assert session_from_context() is None


def test_environment_carriers_take_the_session_to_a_subprocess() -> None:
    envcarrier = pytest.importorskip("opentelemetry.propagators._envcarrier")
    env: dict[str, str] = {}
    with RunContext(RUN, session_id="chat-42"):
        RunIdPropagator().inject(env, setter=envcarrier.EnvironmentSetter())
    assert env == {"X_RUN_ID": RUN.value, "X_SESSION_ID": "chat-42"}
    script = (
        "import os\n"
        "from opentelemetry.propagators._envcarrier import EnvironmentGetter\n"
        "from agent_run_id.otel import RunIdPropagator, session_from_context\n"
        "ctx = RunIdPropagator().extract(os.environ, getter=EnvironmentGetter())\n"
        "print(session_from_context(ctx))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["chat-42"]


async def test_200_concurrent_tasks_inject_their_own_session() -> None:
    async def one(i: int) -> bool:
        async with RunContext(session_id=f"chat-{i}") as run:
            await asyncio.sleep(0)
            carrier: dict[str, str] = {}
            RunIdPropagator().inject(carrier)
            return carrier == {"x-run-id": run.run_id.value, "x-session-id": f"chat-{i}"}

    assert all(await asyncio.gather(*(one(i) for i in range(200))))


def test_50_threads_inject_their_own_session() -> None:
    barrier = threading.Barrier(50)

    def one(i: int) -> bool:
        with RunContext(session_id=f"chat-{i}") as run:
            barrier.wait(timeout=10)
            carrier: dict[str, str] = {}
            RunIdPropagator().inject(carrier)
            return carrier == {"x-run-id": run.run_id.value, "x-session-id": f"chat-{i}"}

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(one, range(50)))


# Baggage


def test_the_session_is_in_baggage_while_the_run_is_current(installed: None) -> None:
    with RunContext(RUN, session_id="chat-42", user_id="user-7"):
        assert baggage.get_all() == {ID: RUN.value, ROOT: RUN.value, SESSION_KEY: "chat-42"}
        with RunContext() as child:  # inherits the session
            assert baggage.get_all()[SESSION_KEY] == "chat-42"
            assert baggage.get_all()[ID] == child.run_id.value
        with RunContext(session_id="chat-43"):
            assert baggage.get_all()[SESSION_KEY] == "chat-43"
    assert baggage.get_all() == {}


def test_a_run_without_a_session_drops_the_one_that_arrived_in_baggage() -> None:
    arrived = with_run_baggage(Context(), RunId.generate(), "chat-old")
    replaced = with_run_baggage(arrived, RUN)
    assert baggage.get_all(replaced) == {ID: RUN.value, ROOT: RUN.value}


@pytest.mark.parametrize("key", ["found", "not found"])
@pytest.mark.parametrize("session", [None, "chat-1"])
@pytest.mark.parametrize("enclosing", ["none", "root", "child with a session"])
def test_a_runs_members_alone_are_replaced_as_beside_other_entries(
    enclosing: str, session: str | None, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick path (a run's members alone in baggage) gives what the general one gives.

    With the baggage's context key found (one step), and without it (member by member).
    """
    assert _otel_runs.BAGGAGE_CONTEXT_KEY is not None, (
        "the OpenTelemetry API no longer keeps baggage as a dict under one context key: "
        "with_run_baggage sets a run's members one at a time, at twice the cost"
    )
    if key == "not found":
        monkeypatch.setattr(_otel_runs, "BAGGAGE_CONTEXT_KEY", None)
    context = Context()
    if enclosing == "root":
        context = with_run_baggage(context, RunId.generate())
    elif enclosing == "child with a session":
        context = with_run_baggage(context, RunId.generate(RunId.generate()), "chat-0")
    for run in (RUN, RUN.child()):
        alone = baggage.get_all(with_run_baggage(context, run, session))
        beside = baggage.get_all(
            with_run_baggage(baggage.set_baggage("tenant", "acme", context), run, session)
        )
        assert list(beside.items()) == [("tenant", "acme"), *alone.items()]
        assert alone[ID] == run.value


def test_the_baggage_header_carries_the_session_to_the_next_service(installed: None) -> None:
    carrier: dict[str, str] = {}
    with RunContext(RUN, session_id="chat/42;x=1"):
        W3CBaggagePropagator().inject(carrier)
    context = W3CBaggagePropagator().extract(carrier, context=Context())
    assert session_from_context(context) == "chat/42;x=1"
    assert run_from_context(context) == RUN
    assert session_from_baggage_header(carrier.get) == "chat/42;x=1"


def test_session_in_baggage_takes_only_a_valid_session() -> None:
    assert session_in_baggage({SESSION_KEY: "chat-42"}) == "chat-42"
    assert session_in_baggage({SESSION_KEY: "a b"}) is None
    assert session_in_baggage({SESSION_KEY: 42}) is None
    assert session_in_baggage({}) is None
    assert session_from_baggage_header({}.get) is None
    assert session_from_baggage_header({"baggage": f"{SESSION_KEY}=a%2Cb"}.get) is None


async def test_concurrent_tasks_each_carry_their_own_session_in_baggage(installed: None) -> None:
    async def one(i: int) -> bool:
        async with RunContext(session_id=f"chat-{i}"):
            await asyncio.sleep(0)
            return baggage.get_baggage(SESSION_KEY) == f"chat-{i}" == session_from_context()

    assert all(await asyncio.gather(*(one(i) for i in range(200))))
