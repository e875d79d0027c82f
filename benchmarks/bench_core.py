"""The core: minting ids and entering runs (stamping log records: see ``count_logging``).

Aims (issue 2): ``RunId.generate()`` at most 0.6x of ``str(uuid.uuid4())``; a record stamped by
``agent_run_id.logging.install()`` at most 300 ns over an unstamped one, side by side with
asgi-correlation-id's ``CorrelationIdFilter`` (issue 12: at most what that filter costs). The
stamp is a few hundred nanoseconds of a ~10 us record, less than the swing of the record's own
median here (install() is process-wide, so its rounds cannot interleave with the others'):
``count_logging`` counts it in instructions (``make bench-count``) instead.
"""

from __future__ import annotations

import uuid

from agent_run_id import RunContext, RunId

from ._aims import aim, elsewhere
from ._timing import compare, report

NUMBER = 20_000  # calls a sample
ROUNDS = 15


def bench_ids() -> None:
    medians = compare(
        {
            "str(uuid.uuid4())": lambda: str(uuid.uuid4()),
            "RunId.generate()": RunId.generate,
            "RunId.generate().value": lambda: RunId.generate().value,
        },
        number=NUMBER,
        rounds=ROUNDS,
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
        },
        number=NUMBER,
        rounds=ROUNDS,
    )
    report("Entering and leaving a run", medians, baseline="empty function call")


def bench_logging() -> None:
    """Point to ``count_logging``: timed here, the stamp swung from -820 ns to +1,000 ns."""
    print("\nA logged and formatted record")
    elsewhere("install() over a plain record <= 300 ns, and <= CorrelationIdFilter's")


def main() -> None:
    bench_ids()
    bench_context()
    bench_logging()


if __name__ == "__main__":
    main()
