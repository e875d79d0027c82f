"""agent_run_id.logging: the session (and, when asked, the user and task) on every record."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, annotate
from agent_run_id._context import LOG_FIELDS, current
from agent_run_id._hooks import add_field_provider, remove_field_provider
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.logging import ALL_FIELDS, DEFAULT_FIELDS, RunIdFilter

FACTS_FORMAT = "%(session_id)s|%(message)s"


class Records(logging.Handler):
    """Keep each record, thread-safely."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock_:
            self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("sessions")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


log = logging.getLogger("sessions")


def stamped(record: logging.LogRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in ALL_FIELDS if hasattr(record, name)}


def test_default_fields_are_the_run_and_its_session(records: Records) -> None:
    run_logging.install()
    with RunContext(session_id="chat-42", user_id="u-7", task="plan") as run:
        log.info("in")
    log.info("out")
    value = run.run_id.value
    assert [stamped(record) for record in records.records] == [
        {
            "run_id": value,
            "run_id_short": value[:8],
            "parent_run_id": "-",
            "root_run_id": value,
            "session_id": "chat-42",
        },
        dict.fromkeys(DEFAULT_FIELDS, "-"),
    ]
    assert (*run_logging.FIELDS, "session_id") == DEFAULT_FIELDS


def test_a_run_without_a_session_shows_the_default(records: Records) -> None:
    run_logging.install(default="none")
    with RunContext():
        log.info("no session")
    assert records.records[0].session_id == "none"  # type: ignore[attr-defined]


def test_user_and_task_only_when_asked(records: Records) -> None:
    run_logging.install(fields=("run_id", "session_id", "user_id", "task"))
    with RunContext(session_id="chat-42", user_id="u-7") as run:
        log.info("in")
    log.info("out")
    assert [stamped(record) for record in records.records] == [
        {"run_id": run.run_id.value, "session_id": "chat-42", "user_id": "u-7", "task": "-"},
        dict.fromkeys(("run_id", "session_id", "user_id", "task"), "-"),
    ]


@pytest.mark.parametrize(
    "fields",
    [(*DEFAULT_FIELDS, "user_id"), ALL_FIELDS, ("run_id", "user_id"), ("task",)],
    ids=["with the user", "all", "two", "one"],
)
def test_each_choice_stamps_exactly_its_fields(records: Records, fields: tuple[str, ...]) -> None:
    run_logging.install(fields=fields)
    with RunContext(session_id="chat-1", user_id="u-1", task="plan") as run:
        log.info("in")
    log.info("out")
    value = run.run_id.value
    known = {
        "run_id": value,
        "run_id_short": value[:8],
        "parent_run_id": "-",
        "root_run_id": value,
        "session_id": "chat-1",
        "user_id": "u-1",
        "task": "plan",
    }
    inside, outside = (stamped(record) for record in records.records)
    assert inside == {name: known[name] for name in fields}
    assert outside == dict.fromkeys(fields, "-")


def test_fields_are_stamped_in_one_order_whatever_the_order_given() -> None:
    given = ("user_id", "run_id", "user_id")
    assert RunIdFilter(fields=given).fields == ("run_id", "user_id")


def test_children_log_the_session_they_inherit(records: Records) -> None:
    run_logging.install(fields=ALL_FIELDS)
    with RunContext(session_id="chat-1"), RunContext(task="search") as child:
        log.info("child")
    record = stamped(records.records[0])
    assert record["run_id"] == child.run_id.value
    assert (record["session_id"], record["task"]) == ("chat-1", "search")


def test_annotate_changes_the_records_that_follow(records: Records) -> None:
    run_logging.install(fields=ALL_FIELDS)
    with RunContext():
        log.info("before")
        assert annotate(user_id="u-9", session_id="chat-9", task="answer")
        log.info("after")
        annotate(session_id="chat-10")
        log.info("later")
    facts = [(r.session_id, r.user_id, r.task) for r in records.records]  # type: ignore[attr-defined]
    assert facts == [("-", "-", "-"), ("chat-9", "u-9", "answer"), ("chat-10", "u-9", "answer")]


def test_annotate_in_another_thread_while_fields_are_worked_out(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """annotate() between reading the facts and caching the fields: the stale cache is dropped."""
    run_logging.install()
    original = run_logging.field_values
    calls: list[int] = []

    def racing(*args: Any, **kwargs: Any) -> tuple[str, ...]:
        values = original(*args, **kwargs)
        if not calls:  # the first time only: as if annotate() ran in another thread right now
            calls.append(1)
            inside = contextvars.copy_context()  # the run, as a task or thread started in it has
            thread = threading.Thread(
                target=inside.run, args=(annotate,), kwargs={"session_id": "late"}
            )
            thread.start()
            thread.join()
        return values

    monkeypatch.setattr(run_logging, "field_values", racing)
    with RunContext():
        log.info("racing")
        frame = current.get()
        assert frame is not None
        assert frame[LOG_FIELDS] is None  # the fields cached with the old facts were dropped
        log.info("next")
    assert [r.session_id for r in records.records] == ["-", "late"]  # type: ignore[attr-defined]


def test_extra_naming_a_fact_field_wins(records: Records) -> None:
    run_logging.install(fields=ALL_FIELDS)
    with RunContext(session_id="chat-1", user_id="u-1"):
        log.info("given", extra={"user_id": "someone", "session_id": "theirs", "task": "t"})
    record = stamped(records.records[0])
    assert (record["session_id"], record["user_id"], record["task"]) == ("theirs", "someone", "t")


def test_the_handler_filter_takes_fields_too() -> None:
    handler = Records()
    handler.addFilter(RunIdFilter(fields=("run_id", "user_id")))
    logger = logging.getLogger("filtered.sessions")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with RunContext(user_id="u-1") as run:
            logger.info("in")
            logger.info("given", extra={"user_id": "mine"})
        logger.info("out")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert [stamped(record) for record in handler.records] == [
        {"run_id": run.run_id.value, "user_id": "u-1"},
        {"run_id": run.run_id.value, "user_id": "mine"},
        {"run_id": "-", "user_id": "-"},
    ]


def test_the_handler_filter_leaves_a_record_stamped_by_install() -> None:
    run_logging.install(fields=ALL_FIELDS)
    with RunContext(session_id="chat-1", user_id="u-1"):
        record = log.makeRecord("sessions", logging.INFO, __file__, 1, "m", (), None)
    before = stamped(record)
    assert RunIdFilter(fields=ALL_FIELDS).filter(record)  # outside the run: nothing to add
    assert stamped(record) == before
    assert before["user_id"] == "u-1"


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ("run_id", TypeError, "fields must be a tuple of field names such as"),
        (None, TypeError, "fields must be a tuple of field names"),
        (("run_id", "userid"), ValueError, r"fields: 'userid' is not a log field: choose from"),
        (("run_id", 3), ValueError, "fields: 3 is not a log field"),
        ((), ValueError, "fields must name at least one field"),
    ],
)
def test_bad_fields_are_refused(fields: Any, error: type[Exception], message: str) -> None:
    run_logging.install()
    before = run_logging.DEFAULT_FIELDS
    with pytest.raises(error, match=message):
        run_logging.install(fields=fields)
    with pytest.raises(error, match=message):
        RunIdFilter(fields=fields)
    assert before == DEFAULT_FIELDS


def test_a_bad_fields_option_leaves_the_installed_options(records: Records) -> None:
    run_logging.install(fields=("run_id", "session_id"))
    with pytest.raises(ValueError, match="'bogus'"):
        run_logging.install(fields=("bogus",))
    with RunContext(session_id="chat-3"):
        log.info("still")
    assert stamped(records.records[0])["session_id"] == "chat-3"


def test_install_chains_again_over_a_replacing_factory_with_fields_chosen(
    records: Records,
) -> None:
    run_logging.install(fields=("task",))
    logging.setLogRecordFactory(logging.LogRecord)
    run_logging.install(fields=("task",))
    assert logging.getLogRecordFactory() is run_logging._stamp
    with RunContext(task="chained"):
        log.info("x")
    assert stamped(records.records[0]) == {"task": "chained"}


# --- annotate() in a FastAPI dependency --------------------------------------------------------


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RunIdMiddleware)

    def current_user() -> str:  # sync: FastAPI runs it in a worker thread
        annotate(user_id="u-42", session_id="chat-42")
        return "u-42"

    async def current_task() -> str:
        annotate(task="answer")
        return "answer"

    @app.get("/chat")
    async def chat(user: str = Depends(current_user), task: str = Depends(current_task)) -> str:
        await asyncio.sleep(0)
        log.info("handling %s", user)
        return task

    return app


async def test_annotate_in_a_fastapi_dependency_reaches_records_in_the_handler(
    records: Records,
) -> None:
    run_logging.install(fields=ALL_FIELDS)
    transport = httpx.ASGITransport(app=fastapi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/chat")
    assert response.status_code == 200
    (record,) = records.records
    assert record.run_id == response.headers["x-run-id"]  # type: ignore[attr-defined]
    facts = (record.session_id, record.user_id, record.task)  # type: ignore[attr-defined]
    assert facts == ("chat-42", "u-42", "answer")


# --- zero cross-talk ---------------------------------------------------------------------------


def check_no_cross_talk(handler: Records, expected: int) -> None:
    assert len(handler.records) == expected
    for record in handler.records:
        user, session, run = record.args  # type: ignore[misc]
        assert (record.user_id, record.session_id, record.run_id) == (user, session, run)  # type: ignore[attr-defined]


async def test_concurrent_tasks_log_their_own_user_and_session(records: Records) -> None:
    run_logging.install(fields=ALL_FIELDS)

    async def agent(number: int) -> None:
        async with RunContext(session_id=f"chat-{number}") as run:
            await asyncio.sleep(0)
            annotate(user_id=f"user-{number}")
            for _ in range(3):
                await asyncio.sleep(0)
                log.info("%s %s %s", f"user-{number}", f"chat-{number}", run.run_id.value)
                # A child: the session inherited, the user given, its own run.
                async with RunContext(user_id=f"user-{number}"):
                    await asyncio.sleep(0)
                    child = current.get()
                    assert child is not None
                    log.info("%s %s %s", f"user-{number}", f"chat-{number}", child[0].value)

    await asyncio.gather(*(agent(number) for number in range(200)))
    check_no_cross_talk(records, 200 * 6)


def test_concurrent_threads_log_their_own_user_and_session(records: Records) -> None:
    run_logging.install(fields=ALL_FIELDS)
    barrier = threading.Barrier(50)

    def agent(number: int) -> None:
        barrier.wait()
        for turn in range(10):
            session = f"chat-{number}-{turn}"
            with RunContext(session_id=session) as run:
                annotate(user_id=f"user-{number}")
                log.info("%s %s %s", f"user-{number}", session, run.run_id.value)

    threads = [threading.Thread(target=agent, args=(number,)) for number in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_no_cross_talk(records, 50 * 10)


def test_the_handler_filter_fills_in_fields_and_providers_around_given_ones() -> None:
    def provider() -> dict[str, object]:
        return {"trace_hint": "t-1"}

    add_field_provider(provider)
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.run_id = "given"
        with RunContext(session_id="chat-5"):
            assert RunIdFilter().filter(record)
    finally:
        remove_field_provider(provider)
    assert (record.run_id, record.session_id) == ("given", "chat-5")  # type: ignore[attr-defined]
    assert record.trace_hint == "t-1"  # type: ignore[attr-defined]
