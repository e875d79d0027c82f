"""agent_run_id.logging: install() stamps every record at creation; RunIdFilter on handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, annotate
from agent_run_id._hooks import add_field_provider, remove_field_provider
from agent_run_id.logging import RunIdFilter


class ListHandler(logging.Handler):
    """Keep each record and its formatted line."""

    def __init__(self, fmt: str = "%(run_id)s|%(message)s") -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(fmt))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self.lock_:
            self.records.append(record)
            self.lines.append(line)


@pytest.fixture
def root_handler() -> Iterator[ListHandler]:
    """A handler on the root logger, as logging.basicConfig would set up."""
    handler = ListHandler()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_install_stamps_records_of_any_logger(root_handler: ListHandler) -> None:
    run_logging.install()
    library = logging.getLogger("some.library.module")
    access = logging.getLogger("uvicorn.access")
    with RunContext() as run:
        library.info("tool call")
        access.info("GET /agent 200")
    library.info("outside")
    value = run.run_id.value
    assert root_handler.lines == [f"{value}|tool call", f"{value}|GET /agent 200", "-|outside"]


def test_without_install_a_root_logger_filter_misses_child_loggers(
    root_handler: ListHandler,
) -> None:
    """Why install() exists: the seed's root-logger filter never sees propagated records."""
    root_handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    run_filter = RunIdFilter()
    root.addFilter(run_filter)
    try:
        with RunContext():
            root.info("from root")
            logging.getLogger("child").info("from child")
    finally:
        root.removeFilter(run_filter)
    stamped = [hasattr(record, "run_id") for record in root_handler.records]
    assert stamped == [True, False]


def test_all_stamped_fields(root_handler: ListHandler) -> None:
    run_logging.install()
    with RunContext() as root, RunContext() as parent, RunContext() as run:
        logging.getLogger("x").info("deep")
    record = root_handler.records[0]
    assert record.run_id == run.run_id.value  # type: ignore[attr-defined]
    assert record.run_id_short == run.run_id.short()  # type: ignore[attr-defined]
    assert record.parent_run_id == parent.run_id.value  # type: ignore[attr-defined]
    assert record.root_run_id == root.run_id.value  # type: ignore[attr-defined]


def test_outside_a_run_every_field_has_the_default(root_handler: ListHandler) -> None:
    run_logging.install(default="no-run")
    root_handler.setFormatter(
        logging.Formatter("%(run_id)s %(run_id_short)s %(parent_run_id)s %(root_run_id)s")
    )
    logging.getLogger("x").warning("idle")
    assert root_handler.lines == ["no-run no-run no-run no-run"]


def test_short_option_and_reinstall_changes_options(root_handler: ListHandler) -> None:
    run_logging.install(short=True)
    run_logging.install(short=True)  # idempotent
    with RunContext() as run:
        logging.getLogger("x").info("a")
        run_logging.install()  # new options, no second factory in the chain
        logging.getLogger("x").info("b")
    assert root_handler.lines == [f"{run.run_id.short()}|a", f"{run.run_id.value}|b"]
    assert run_logging._previous is logging.LogRecord


def test_root_run_has_itself_as_root_and_no_parent(root_handler: ListHandler) -> None:
    run_logging.install()
    with RunContext() as run:
        logging.getLogger("x").info("a")
    record = root_handler.records[0]
    assert record.root_run_id == run.run_id.value  # type: ignore[attr-defined]
    assert record.parent_run_id == "-"  # type: ignore[attr-defined]


def test_extra_naming_a_stamped_field_wins_and_never_crashes(root_handler: ListHandler) -> None:
    """Logger.makeRecord refuses extra keys a factory set; ours must yield to the caller's."""
    run_logging.install()
    logger = logging.getLogger("some.library")
    with RunContext() as run:
        try:
            raise TimeoutError("tool timed out")
        except TimeoutError:
            logger.exception("job failed", extra={"run_id": "job-17", "user": "u1"})
        logger.info("stamped")
    explicit, stamped = root_handler.records
    assert root_handler.lines[0].startswith("job-17|job failed")
    assert explicit.user == "u1"  # type: ignore[attr-defined]
    assert explicit.run_id_short == run.run_id.short()  # type: ignore[attr-defined]
    assert stamped.run_id == run.run_id.value  # type: ignore[attr-defined]
    with pytest.raises(KeyError, match="message"):  # logging's own rule for its own keys stays
        logger.info("refused", extra={"message": "x"})


def test_uninstall_restores_make_record(root_handler: ListHandler) -> None:
    original = logging.Logger.makeRecord
    run_logging.install()
    run_logging.install()
    assert logging.Logger.makeRecord is not original
    run_logging.uninstall()
    assert logging.Logger.makeRecord is original
    # without install(), logging refuses nothing it did not refuse before
    root_handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("x").info("plain", extra={"run_id": "mine"})
    assert root_handler.records[0].run_id == "mine"  # type: ignore[attr-defined]


def test_install_chains_the_previous_factory(root_handler: ListHandler) -> None:
    previous = logging.getLogRecordFactory()

    def tracing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.otelTraceID = "abc"
        return record

    logging.setLogRecordFactory(tracing_factory)
    try:
        run_logging.install()
        with RunContext() as run:
            logging.getLogger("x").info("both")
        record = root_handler.records[0]
        assert record.otelTraceID == "abc"  # type: ignore[attr-defined]
        assert record.run_id == run.run_id.value  # type: ignore[attr-defined]
        run_logging.uninstall()
        assert logging.getLogRecordFactory() is tracing_factory
    finally:
        logging.setLogRecordFactory(previous)


def test_uninstall_restores_the_factory_and_is_safe_twice() -> None:
    before = logging.getLogRecordFactory()
    run_logging.uninstall()  # never installed: a no-op
    run_logging.install()
    assert logging.getLogRecordFactory() is not before
    run_logging.uninstall()
    run_logging.uninstall()
    assert logging.getLogRecordFactory() is before


def test_uninstall_when_another_library_wrapped_us(root_handler: ListHandler) -> None:
    """Ours stays in the chain as a pass-through; theirs keeps working; install() turns it on."""
    root_handler.setFormatter(logging.Formatter("%(message)s"))
    run_logging.install()
    ours = logging.getLogRecordFactory()

    def wrapper(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = ours(*args, **kwargs)
        record.wrapped = True
        return record

    logging.setLogRecordFactory(wrapper)
    try:
        run_logging.uninstall()
        assert logging.getLogRecordFactory() is wrapper
        with RunContext() as run:
            logging.getLogger("x").info("passed through")
            run_logging.install()
            logging.getLogger("x").info("stamped again")
        first, second = root_handler.records
        assert first.wrapped  # type: ignore[attr-defined]
        assert second.wrapped  # type: ignore[attr-defined]
        assert not hasattr(first, "run_id")
        assert second.run_id == run.run_id.value  # type: ignore[attr-defined]
        assert logging.getLogRecordFactory() is wrapper  # installed once, not twice
    finally:
        logging.setLogRecordFactory(run_logging._previous)
        run_logging._installed = False


def test_the_run_survives_a_queue_listener() -> None:
    """The listener thread sees no run; the record carries the one current when it was made."""
    run_logging.install()
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    sink = ListHandler()
    sink.addFilter(RunIdFilter())  # in the listener thread: must not overwrite the stamp
    listener = logging.handlers.QueueListener(records, sink)
    logger = logging.getLogger("queued")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.handlers.QueueHandler(records)
    logger.addHandler(handler)
    listener.start()
    try:
        with RunContext() as run:
            logger.info("queued line")
    finally:
        listener.stop()
        logger.removeHandler(handler)
        logger.propagate = True
    assert sink.lines == [f"{run.run_id.value}|queued line"]


async def test_concurrent_tasks_stamp_their_own_run(root_handler: ListHandler) -> None:
    run_logging.install()
    root_handler.setFormatter(logging.Formatter("%(run_id)s|%(message)s"))
    logger = logging.getLogger("agent")

    async def agent() -> None:
        async with RunContext() as run:
            for _ in range(3):
                await asyncio.sleep(0)
                logger.info("%s", run.run_id.value)

    await asyncio.gather(*(agent() for _ in range(500)))
    assert len(root_handler.lines) == 1500
    for line in root_handler.lines:
        stamped, logged = line.split("|")
        assert stamped == logged


def test_concurrent_threads_stamp_their_own_run(root_handler: ListHandler) -> None:
    run_logging.install()
    logger = logging.getLogger("agent")

    def agent() -> None:
        for _ in range(50):
            with RunContext() as run:
                logger.info("%s", run.run_id.value)

    threads = [threading.Thread(target=agent) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(root_handler.lines) == 800
    assert all(line.split("|")[0] == line.split("|")[1] for line in root_handler.lines)


def test_handler_filter_stamps_without_install() -> None:
    handler = ListHandler("%(run_id)s %(run_id_short)s %(parent_run_id)s|%(message)s")
    handler.addFilter(RunIdFilter(short=True, default="none"))
    logger = logging.getLogger("filtered")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        with RunContext() as parent, RunContext() as run:
            logger.info("in")
            logger.info("explicit", extra={"run_id": "given"})
        logger.info("out")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    short = run.run_id.short()
    assert handler.lines == [
        f"{short} {short} {parent.run_id.value}|in",
        f"given {short} {parent.run_id.value}|explicit",  # the caller's field is kept
        "none none none|out",
    ]


def test_seed_filter_on_the_root_logger_works_as_written(root_handler: ListHandler) -> None:
    """The user's snippet: logging.getLogger().addFilter(RunIdFilter()) stamps root records."""
    root = logging.getLogger()
    root.addFilter(RunIdFilter())
    try:
        with RunContext() as run:
            logging.info("agent_started")
    finally:
        root.removeFilter(root.filters[-1])
    assert root_handler.lines == [f"{run.run_id.value}|agent_started"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"short": "yes"}, "short must be True or False, got 'yes'"),
        ({"default": None}, "default must be a str"),
    ],
)
def test_bad_options_are_type_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        run_logging.install(**kwargs)
    with pytest.raises(TypeError, match=message):
        RunIdFilter(**kwargs)


def test_make_record_wrapped_after_us_stays_wrapped(root_handler: ListHandler) -> None:
    """uninstall() never drops a wrapper another library put around ours; ours passes through."""
    run_logging.install()
    ours = logging.Logger.makeRecord
    seen: list[str] = []

    def theirs(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        seen.append("theirs")
        return ours(self, *args, **kwargs)

    logging.Logger.makeRecord = theirs  # type: ignore[method-assign]
    try:
        run_logging.uninstall()
        assert logging.Logger.makeRecord is theirs
        root_handler.setFormatter(logging.Formatter("%(run_id)s|%(message)s"))
        logging.getLogger("x").info("through both", extra={"run_id": "given"})
        assert root_handler.lines == ["given|through both"]
        assert seen == ["theirs"]
    finally:
        logging.Logger.makeRecord = run_logging._make_record  # type: ignore[method-assign]
        run_logging._patched = False


def test_a_make_record_taken_while_installed_still_works_after_uninstall() -> None:
    """A bound makeRecord grabbed (or a call in flight) while installed outlives uninstall()."""
    run_logging.install()
    make_record = logging.getLogger("x").makeRecord
    run_logging.uninstall()
    record = make_record("x", logging.INFO, "f.py", 1, "m", (), None, extra={"run_id": "r"})
    assert record.run_id == "r"  # type: ignore[attr-defined]


def test_filter_options_are_read_only() -> None:
    run_filter = RunIdFilter(short=True, default="none")
    assert (run_filter.short, run_filter.default) == (True, "none")
    with pytest.raises(AttributeError):
        run_filter.short = False  # type: ignore[misc]


def test_install_again_after_another_library_reset_the_factory(root_handler: ListHandler) -> None:
    """setLogRecordFactory(LogRecord) by someone else drops ours: install() chains it again."""
    run_logging.install()
    logging.setLogRecordFactory(logging.LogRecord)
    run_logging.install()
    assert logging.getLogRecordFactory() is run_logging._stamp
    with RunContext() as run:
        logging.getLogger("x").info("stamped")
    assert root_handler.lines == [f"{run.run_id.value}|stamped"]


def test_install_chains_ours_on_a_factory_that_replaced_it(root_handler: ListHandler) -> None:
    run_logging.install()

    def theirs(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = logging.LogRecord(*args, **kwargs)
        record.theirs = True
        return record

    logging.setLogRecordFactory(theirs)
    run_logging.install()
    with RunContext() as run:
        logging.getLogger("x").info("both")
    (record,) = root_handler.records
    assert record.theirs  # type: ignore[attr-defined]
    assert root_handler.lines == [f"{run.run_id.value}|both"]
    run_logging.uninstall()
    assert logging.getLogRecordFactory() is theirs
    logging.setLogRecordFactory(logging.LogRecord)


def test_install_over_a_wrapper_of_ours_probes_once_and_chains_nothing(
    root_handler: ListHandler,
) -> None:
    run_logging.install()
    ours = logging.getLogRecordFactory()
    made: list[str] = []

    def wrapper(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(args[0])
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(wrapper)
    try:
        run_logging.install(short=True)
        assert logging.getLogRecordFactory() is wrapper
        assert made == ["agent_run_id.probe"]  # the probe record, never handled
        assert root_handler.records == []
    finally:
        logging.setLogRecordFactory(ours)


def test_a_make_record_replaced_before_install_is_chained(root_handler: ListHandler) -> None:
    """Over another library's makeRecord, ours wraps it: theirs runs, and extra= still wins."""
    original = logging.Logger.makeRecord
    seen: list[str] = []

    def theirs(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        seen.append("theirs")
        return original(self, *args, **kwargs)

    logging.Logger.makeRecord = theirs  # type: ignore[method-assign]
    try:
        run_logging.install()
        assert logging.Logger.makeRecord is run_logging._make_record_letting_extra_win
        root_handler.setFormatter(logging.Formatter("%(run_id)s|%(message)s"))
        with RunContext() as run:
            logging.getLogger("x").info("stamped")
            logging.getLogger("x").info("given", extra={"run_id": "job-17", "user": "u1"})
        assert root_handler.lines == [f"{run.run_id.value}|stamped", "job-17|given"]
        assert root_handler.records[1].user == "u1"  # type: ignore[attr-defined]
        assert seen == ["theirs", "theirs"]
        run_logging.uninstall()
        assert logging.Logger.makeRecord is theirs
    finally:
        run_logging.uninstall()
        logging.Logger.makeRecord = original  # type: ignore[method-assign]


_TIMING = frozenset({"created", "msecs", "relativeCreated"})


def _trace_hint() -> dict[str, object]:
    return {"trace_hint": "t-1"}


def _made_both_ways(inline_first: bool) -> tuple[dict[str, object], dict[str, object]]:
    """A record from makeRecord's inlined stamp and one stamped by _stamp_fields, untimed."""
    args = ("x", logging.INFO, "f.py", 1, "m %s", ("a",), None)

    def inline() -> dict[str, object]:
        assert logging.getLogRecordFactory() is run_logging._stamp  # the inlined path is taken
        record = run_logging._make_stamped_record(logging.getLogger("x"), *args)
        return {k: v for k, v in record.__dict__.items() if k not in _TIMING}

    def reference() -> dict[str, object]:
        record = logging.LogRecord(*args, None, None)
        run_logging._stamp_fields(record)
        return {k: v for k, v in record.__dict__.items() if k not in _TIMING}

    if inline_first:  # the first works the run's fields out, the second finds them cached
        made = inline()
        return made, reference()
    expected = reference()
    return inline(), expected


@pytest.mark.parametrize("inline_first", [True, False])
@pytest.mark.parametrize(
    "state",
    [
        "outside a run",
        "root run",
        "child run",
        "session",
        "annotated",
        "fields chosen",
        "fields chosen, outside a run",
        "short",
        "options changed",
        "provider",
        "off",
    ],
)
def test_make_record_stamps_as_stamp_fields_does(state: str, inline_first: bool) -> None:
    """_make_stamped_record writes _stamp_fields out inline: both make the same record."""
    fields = run_logging.ALL_FIELDS if state.startswith("fields chosen") else None
    run_logging.install(
        short=state == "short", default="none", fields=fields or run_logging.DEFAULT_FIELDS
    )
    if state == "provider":
        add_field_provider(_trace_hint)
    if state == "off":  # uninstalled under a wrapper, which later puts ours back in place
        logging.setLogRecordFactory(lambda *args: run_logging._stamp(*args))
        run_logging.uninstall()
        logging.setLogRecordFactory(run_logging._stamp)
    runs = {"outside a run": 0, "fields chosen, outside a run": 0, "root run": 1}.get(state, 2)
    try:
        with contextlib.ExitStack() as stack:
            for _ in range(runs):
                stack.enter_context(RunContext(session_id="chat-1", user_id="u-1"))
            if state == "options changed":  # the run's fields are cached for other options
                _made_both_ways(inline_first)
                run_logging.install(short=True)
            if state == "annotated":  # the run's fields are cached with the facts before
                _made_both_ways(inline_first)
                annotate(session_id="chat-2")
            made, expected = _made_both_ways(inline_first)
    finally:
        remove_field_provider(_trace_hint)
        run_logging.uninstall()
    assert logging.getLogRecordFactory() is logging.LogRecord
    assert made == expected
    assert ("session_id" in made) is (state != "off")
    assert ("user_id" in made) is (fields is not None)
    assert ("trace_hint" in made) is (state == "provider")
    if state == "annotated":
        assert made["session_id"] == "chat-2"


@pytest.mark.parametrize("given", run_logging.DEFAULT_FIELDS)
def test_handler_filter_keeps_any_one_field_given_and_stamps_the_rest(given: str) -> None:
    """A field the record has (given in extra=, or stamped) is kept; the others are stamped."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    setattr(record, given, "given")
    with RunContext() as root, RunContext() as run:
        assert RunIdFilter().filter(record)
    value, root_value = run.run_id.value, root.run_id.value
    stamps = dict(
        zip(
            run_logging.DEFAULT_FIELDS,
            (value, value[:8], root_value, root_value, "-"),
            strict=True,
        )
    )
    names = run_logging.DEFAULT_FIELDS
    expected = {name: "given" if name == given else stamps[name] for name in names}
    assert {name: getattr(record, name) for name in names} == expected
