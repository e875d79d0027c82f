"""agent_run_id.loguru.patch_record with the real loguru."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from loguru import logger

from agent_run_id import RunContext
from agent_run_id.loguru import patch_record


@pytest.fixture
def lines() -> Iterator[list[str]]:
    out: list[str] = []
    lock = threading.Lock()

    def sink(message: object) -> None:
        with lock:
            out.append(str(message).rstrip("\n"))

    logger.remove()
    logger.configure(patcher=patch_record)
    handler = logger.add(sink, format="{extra[run_id]} {extra[parent_run_id]}|{message}")
    try:
        yield out
    finally:
        logger.remove(handler)
        logger.configure(patcher=None, extra={})


def test_records_carry_the_run_and_defaults_outside(lines: list[str]) -> None:
    with RunContext() as parent, RunContext() as run:
        logger.info("tool call")
    logger.info("idle")
    assert lines == [f"{run.run_id.value} {parent.run_id.value}|tool call", "- -|idle"]


def test_all_fields_are_set(lines: list[str]) -> None:
    seen: list[dict[str, object]] = []
    handler = logger.add(lambda message: seen.append(dict(message.record["extra"])))
    with RunContext() as run:
        logger.info("x")
    assert seen == [
        {
            "run_id": run.run_id.value,
            "run_id_short": run.run_id.short(),
            "parent_run_id": "-",
            "root_run_id": run.run_id.value,
        }
    ]
    logger.info("outside")
    logger.remove(handler)
    assert seen[-1] == dict.fromkeys(
        ("run_id", "run_id_short", "parent_run_id", "root_run_id"), "-"
    )


def test_a_bound_run_id_is_kept(lines: list[str]) -> None:
    with RunContext():
        logger.bind(run_id="bound").info("explicit")
    assert lines[0].startswith("bound ")


def test_logger_patch_works_too() -> None:
    seen: list[object] = []
    handler = logger.add(lambda message: seen.append(message.record["extra"].get("run_id")))
    try:
        with RunContext() as run:
            logger.patch(patch_record).info("patched")
    finally:
        logger.remove(handler)
    assert seen[-1] == run.run_id.value


async def test_concurrent_tasks_log_their_own_run(lines: list[str]) -> None:
    async def agent() -> None:
        async with RunContext() as run:
            for _ in range(3):
                await asyncio.sleep(0)
                logger.info(run.run_id.value)

    await asyncio.gather(*(agent() for _ in range(200)))
    assert len(lines) == 600
    assert all(line.split(" ")[0] == line.split("|")[1] for line in lines)


def test_concurrent_threads_log_their_own_run(lines: list[str]) -> None:
    def agent() -> None:
        for _ in range(20):
            with RunContext() as run:
                logger.info(run.run_id.value)

    threads = [threading.Thread(target=agent) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines) == 320
    assert all(line.split(" ")[0] == line.split("|")[1] for line in lines)
