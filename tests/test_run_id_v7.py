"""Version-7 run ids: time-ordered, opt-in per call or per process, fork-safe."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone

import pytest

from agent_run_id import RunId
from agent_run_id._run_id import _default_generator
from agent_run_id._uuid import new_v4 as _new_value
from agent_run_id._uuid import new_v7 as _new_value_v7


def _next_millisecond() -> None:
    start = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == start:
        pass


def test_a_v7_id_is_an_rfc_9562_version_7_uuid() -> None:
    for _ in range(1000):
        value = uuid.UUID(RunId.generate(version=7).value)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122


def test_created_at_is_the_time_the_id_was_made_to_the_millisecond() -> None:
    before = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    run = RunId.generate(version=7)
    after = datetime.now(timezone.utc)
    assert run.created_at is not None
    assert before <= run.created_at <= after
    assert run.created_at.tzinfo is timezone.utc
    assert RunId.from_string(run.value.upper()).created_at == run.created_at


def test_v4_ids_have_no_creation_time() -> None:
    assert RunId.generate().created_at is None
    assert RunId.generate(version=4).created_at is None
    assert uuid.UUID(RunId.generate(version=4).value).version == 4


def test_v7_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    ids = []
    for _ in range(20):
        ids.append(RunId.generate(version=7).value)
        _next_millisecond()
    assert sorted(ids) == ids


def test_v7_ids_sort_as_their_creation_times() -> None:
    runs = [RunId.generate(version=7) for _ in range(2000)]
    by_text = sorted(runs, key=lambda r: r.value)
    times = [r.created_at for r in by_text]
    assert times == sorted(times)  # type: ignore[type-var]


def test_v7_ids_of_one_millisecond_differ_by_their_74_random_bits() -> None:
    values = [_new_value_v7() for _ in range(20_000)]
    assert len(set(values)) == len(values)
    # Every random position takes several values: none is a fixed or counted field.
    digits = [v.replace("-", "") for v in values]
    for position in (13, 14, 15, 17, 18, 31):
        assert len({d[position] for d in digits}) > 4, position
    assert {d[16] for d in digits} == set("89ab")


def test_a_v7_child_keeps_its_lineage() -> None:
    parent = RunId.generate()
    child = RunId.generate(parent, version=7)
    assert child.parent == parent
    assert child.root == parent
    assert child.created_at is not None


@pytest.mark.parametrize("bad", [5, 0, "7", 7.5])
def test_another_version_is_refused_with_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="version must be 4 or 7"):
        RunId.generate(version=bad)  # type: ignore[arg-type]


def test_the_environment_picks_the_default_version() -> None:
    assert _default_generator({}) is _new_value
    assert _default_generator({"AGENT_RUN_ID_VERSION": "4"}) is _new_value
    assert _default_generator({"AGENT_RUN_ID_VERSION": " 7 "}) is _new_value_v7


def test_a_bad_version_in_the_environment_warns_and_keeps_version_4(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _default_generator({"AGENT_RUN_ID_VERSION": "uuid7"}) is _new_value
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "'uuid7'; it must be 4 or 7" in record.getMessage()


def test_agent_run_id_version_7_switches_the_whole_process() -> None:
    code = "from agent_run_id import RunId; print(RunId.generate().value)"
    env = {**os.environ, "AGENT_RUN_ID_VERSION": "7"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert uuid.UUID(out.stdout.strip()).version == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        ids = "\n".join(RunId.generate(version=7).value for _ in range(500))
        os.write(write, ids.encode())
        os._exit(0)
    os.close(write)
    mine = {RunId.generate(version=7).value for _ in range(500)}
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    theirs = set(b"".join(chunks).decode().split())
    assert len(theirs) == 500
    assert not mine & theirs


@pytest.mark.parametrize(
    "value",
    [
        "ffffffff-ffff-7fff-bfff-ffffffffffff",  # past the year 9999
        "e677d21f-dc00-7000-8000-000000000000",  # the first millisecond of the year 10000
    ],
)
def test_created_at_of_a_time_beyond_datetime_is_none(value: str) -> None:
    assert RunId.from_string(value).created_at is None


def test_created_at_of_the_last_millisecond_datetime_holds() -> None:
    last = RunId.from_string("e677d21f-dbff-7000-8000-000000000000").created_at
    assert last == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


@pytest.mark.parametrize("variant", "01234567cdef")
def test_created_at_of_a_version_7_digit_without_the_rfc_9562_variant_is_none(
    variant: str,
) -> None:
    run = RunId.generate(version=7)
    other = RunId.from_string(run.value[:19] + variant + run.value[20:])
    assert uuid.UUID(other.value).variant != uuid.RFC_4122
    assert other.created_at is None


def test_created_at_reads_every_rfc_9562_variant_digit() -> None:
    run = RunId.generate(version=7)
    for variant in "89ab":
        same = RunId.from_string(run.value[:19] + variant + run.value[20:])
        assert same.created_at == run.created_at
