"""Per-record cost of stamping stdlib log records, in instructions counted by valgrind's callgrind.

``python -m benchmarks.count_logging`` (run by ``make bench-count``). Each case logs records
through one logger whose one handler formats each record and drops it, with a format naming the
case's field: an unstamped record, one stamped by asgi-correlation-id's ``CorrelationIdFilter``
on the handler (as its docs install it), one stamped by ``agent_run_id.logging.install()`` and one
by our ``RunIdFilter`` on the handler. The counts come from ``_callgrind``: each case in its own
process, twice, so start-up and imports cancel out. A case's overhead is its count over the
unstamped record's.

Aims: a record stamped by ``install()`` costs at most what one stamped by ``CorrelationIdFilter``
does (ours/theirs <= 1.0), inside a run (an id set) and outside one (issue 12); and at most 300 ns
over an unstamped record (issue 2). Nanoseconds are estimated from the counts at this machine's
pace: the unstamped record's wall time (timed here, before counting) over its instructions, times
a case's instructions over it. The record is ~10 us, long enough to time steadily; the few hundred
nanoseconds of a stamp alone are not.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable

from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId

from ._aims import aim
from ._callgrind import count_per_operation, find_valgrind
from ._timing import compare

RECORDS = 5_000


class _Sink(logging.Handler):
    """A handler that formats and drops, so the cost is the record and its stamping."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


def _logger(fmt: str, *filters: logging.Filter) -> logging.Logger:
    logger = logging.getLogger("count")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = _Sink()
    handler.setFormatter(logging.Formatter(fmt))
    for log_filter in filters:
        handler.addFilter(log_filter)
    logger.addHandler(handler)
    return logger


def _plain() -> logging.Logger:
    return _logger("%(levelname)s %(message)s")


def _peer() -> logging.Logger:
    return _logger("%(correlation_id)s %(message)s", CorrelationIdFilter())


def _installed() -> logging.Logger:
    run_logging.install()
    return _logger("%(run_id)s %(message)s")


def _run_id_filter() -> logging.Logger:
    return _logger("%(run_id)s %(message)s", run_logging.RunIdFilter())


PLAIN = "unstamped record"
PEER = "CorrelationIdFilter on the handler"
OURS = "install()"
PEER_OUTSIDE = "CorrelationIdFilter, no id set"
OURS_OUTSIDE = "install(), outside any run"
#: Each case: how its logger is set up, and whether the record is logged with an id (inside a
#: run, and with asgi-correlation-id's id set).
CASES: dict[str, tuple[Callable[[], logging.Logger], bool]] = {
    PLAIN: (_plain, True),
    PEER: (_peer, True),
    OURS: (_installed, True),
    "RunIdFilter on the handler": (_run_id_filter, True),
    PEER_OUTSIDE: (_peer, False),
    OURS_OUTSIDE: (_installed, False),
}


def _log(case: str, records: int) -> None:
    """Log ``records`` records of ``case`` (after a warm-up of 200) in this process."""
    make, with_id = CASES[case]
    logger = make()
    if with_id:
        correlation_id.set(uuid.uuid4().hex)
        context = RunContext(RunId.generate())
        context.__enter__()
    for _ in range(200 + records):
        logger.info("tool call %s", "search_web")


def _seconds_per_plain_record() -> float:
    """Return the wall time of an unstamped record in this process, in its quickest round.

    The quickest, not the median: other work on the machine only ever slows a round down.
    """
    logger = _plain()
    record = {PLAIN: lambda: logger.info("tool call %s", "search_web")}
    return min(compare(record, number=2_000, rounds=1)[PLAIN] for _ in range(21))


def main() -> None:
    """Print each case's instructions per record, its overhead, our ratios and the verdicts."""
    valgrind = find_valgrind("count_logging")
    if valgrind is None:
        return
    seconds = _seconds_per_plain_record()  # before the counts take the cores
    counts = count_per_operation(valgrind, "count_logging", CASES, RECORDS)
    over = {case: count - counts[PLAIN] for case, count in counts.items()}
    ns = {case: value * seconds * 1e9 / counts[PLAIN] for case, value in over.items()}
    print(f"\nA logged and formatted record: instructions (callgrind, {RECORDS:,} records)")
    print(f"  an unstamped record takes {seconds * 1e9:,.0f} ns here (quickest of 21 rounds)")
    print(f"  {'case':<40} {'count':>9} {'over unstamped':>15} {'~ns over':>9}")
    for case, count in counts.items():
        print(f"  {case:<40} {count:>9,.0f} {over[case]:>15,.0f} {ns[case]:>9,.0f}")
    inside = over[OURS] / over[PEER]
    aim("install() over CorrelationIdFilter, in a run", inside, at_most=1.0, unit="x")
    outside = over[OURS_OUTSIDE] / over[PEER_OUTSIDE]
    aim("install() over CorrelationIdFilter, no run or id", outside, at_most=1.0, unit="x")
    aim("install() over an unstamped record, ~ns", ns[OURS], at_most=300, unit=" ns", digits=0)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _log(sys.argv[1], int(sys.argv[2]))
    else:
        main()
