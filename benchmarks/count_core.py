"""Per-call cost of ``annotate()`` against entering a ``RunContext``, counted by callgrind.

``python -m benchmarks.count_core`` (run by ``make bench-count``). Each case runs inside one
run (the request's, say) with no observer and no registry: entering and leaving
a child ``RunContext()``, and ``annotate()`` with a user and a session, and with a user alone.
For information, entering and leaving a child run with ``agent_run_id.otel.install()`` (its
baggage on, no SDK): the run's members put in OpenTelemetry baggage at each entry. The counts
come from ``_callgrind``: each case in its own process, twice, so start-up and imports cancel out.

Aim (issue 14): ``annotate()`` costs at most what entering a ``RunContext`` (and leaving it) does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import agent_run_id.otel
from agent_run_id import RunContext, annotate

from ._aims import aim
from ._callgrind import count_per_operation, find_valgrind

CALLS = 20_000


def _enter() -> None:
    with RunContext():
        pass


def _annotate_both() -> None:
    annotate(user_id="user-42", session_id="chat-42")


def _annotate_user() -> None:
    annotate(user_id="user-42")


def _nothing() -> None:
    return None


ENTER = "enter and leave RunContext()"
ENTER_OTEL = "the same, with otel.install()"
BOTH = "annotate(user_id=, session_id=)"
USER = "annotate(user_id=)"
CASES: dict[str, Callable[[], None]] = {
    "a call of a function doing nothing": _nothing,
    ENTER: _enter,
    ENTER_OTEL: _enter,
    BOTH: _annotate_both,
    USER: _annotate_user,
}


def _call(case: str, calls: int) -> None:
    """Make ``calls`` calls of ``case`` (after a warm-up of 200) inside one run."""
    call = CASES[case]
    if case == ENTER_OTEL:  # baggage on, no SDK: the run's members put in baggage at each entry
        agent_run_id.otel.install(span_processor=False)
    try:
        with RunContext():
            for _ in range(200 + calls):
                call()
    finally:
        agent_run_id.otel.uninstall()


def main() -> None:
    """Print each case's instructions per call and the verdict of the aim."""
    valgrind = find_valgrind("count_core")
    if valgrind is None:
        return
    counts = count_per_operation(valgrind, "count_core", CASES, CALLS)
    print(f"\nA call inside a run: instructions (callgrind, {CALLS:,} calls)")
    print(f"  {'case':<40} {'count':>9}")
    for case, count in counts.items():
        print(f"  {case:<40} {count:>9,.0f}")
    aim(
        "annotate(user_id=, session_id=) over entering a RunContext",
        counts[BOTH] / counts[ENTER],
        at_most=1.0,
        unit="x",
    )


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _call(sys.argv[1], int(sys.argv[2]))
    else:
        main()
