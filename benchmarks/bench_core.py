"""The core: minting ids, entering runs, and stamping log records.

Aims (issue 2): ``RunId.generate()`` at most 0.6x of ``str(uuid.uuid4())``; a record stamped by
``agent_run_id.logging.install()`` at most 300 ns over an unstamped one, side by side with
asgi-correlation-id's ``CorrelationIdFilter`` (issue 12: at most what that filter costs). The
stamp is a few hundred nanoseconds of a ~10 us record, less than the swing of the record's own
median here: ``count_logging`` counts it in instructions (``make bench-count``).
"""

from __future__ import annotations

import logging
import statistics
import uuid

from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId

from ._aims import aim, elsewhere
from ._timing import compare, report


def bench_ids() -> None:
    medians = compare(
        {
            "str(uuid.uuid4())": lambda: str(uuid.uuid4()),
            "RunId.generate()": RunId.generate,
            "RunId.generate().value": lambda: RunId.generate().value,
        },
        number=20_000,
    )
    report("Minting an id", medians, baseline="str(uuid.uuid4())")
    ratio = medians["RunId.generate()"] / medians["str(uuid.uuid4())"]
    aim("RunId.generate() over str(uuid.uuid4())", ratio, at_most=0.6, unit="x")


def bench_context() -> None:
    run_id = RunId.generate()
    context = RunContext(run_id=run_id)

    def enter_leave() -> None:
        with context:
            pass

    def enter_leave_minting() -> None:
        with RunContext():
            pass

    medians = compare(
        {
            "empty function call": lambda: None,
            "with RunContext(run_id=...)": enter_leave,
            "with RunContext() (mints a run)": enter_leave_minting,
        }
    )
    report("Entering and leaving a run", medians, baseline="empty function call")


class _Sink(logging.Handler):
    """A handler that formats and drops, so the cost is the record and its stamping."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


def _logger(name: str, fmt: str, *filters: logging.Filter) -> logging.Logger:
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = []
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = _Sink()
    handler.setFormatter(logging.Formatter(fmt))
    for log_filter in filters:
        handler.addFilter(log_filter)
    logger.addHandler(handler)
    return logger


def bench_logging(rounds: int = 15) -> None:
    plain = _logger("plain", "%(levelname)s %(message)s")
    peer = _logger("peer", "%(correlation_id)s %(message)s", CorrelationIdFilter())
    ours = _logger("ours", "%(run_id)s %(message)s")
    correlation_id.set(uuid.uuid4().hex)
    factory = logging.getLogRecordFactory()
    unstamped = {
        "plain record": lambda: plain.info("tool call %s", "search_web"),
        "asgi-correlation-id CorrelationIdFilter": lambda: peer.info("tool call %s", "x"),
    }
    samples: dict[str, list[float]] = {name: [] for name in [*unstamped, "install()"]}
    # install() is process-wide: each round times the unstamped cases, then ours with it on.
    with RunContext():
        for _ in range(rounds):
            for name, value in compare(unstamped, rounds=1).items():
                samples[name].append(value)
            run_logging.install()
            try:
                stamped = compare({"install()": lambda: ours.info("tool call %s", "x")}, rounds=1)
            finally:
                run_logging.uninstall()
            samples["install()"].append(stamped["install()"])
    assert logging.getLogRecordFactory() is factory
    medians = {name: statistics.median(values) for name, values in samples.items()}
    report("A logged and formatted record", medians, baseline="plain record")
    elsewhere("install() over a plain record <= 300 ns, and <= CorrelationIdFilter's")


def main() -> None:
    bench_ids()
    bench_context()
    bench_logging()


if __name__ == "__main__":
    main()
