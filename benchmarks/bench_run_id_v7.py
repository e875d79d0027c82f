"""Minting ids: RunId.generate() (version 4 and 7) beside str(uuid.uuid4())."""

from __future__ import annotations

import uuid

from agent_run_id import RunId

from ._timing import compare, report

NUMBER = 20_000  # ids a sample
ROUNDS = 15


def main() -> None:
    cases = {
        "str(uuid.uuid4())": lambda: str(uuid.uuid4()),
        "RunId.generate()": RunId.generate,
        "RunId.generate(version=4)": lambda: RunId.generate(version=4),
        "RunId.generate(version=7)": lambda: RunId.generate(version=7),
    }
    if hasattr(uuid, "uuid7"):  # Python 3.14+
        cases["str(uuid.uuid7())"] = lambda: str(uuid.uuid7())  # type: ignore[attr-defined]
    report(
        "Minting a run id",
        compare(cases, number=NUMBER, rounds=ROUNDS),
        baseline="str(uuid.uuid4())",
    )


if __name__ == "__main__":
    main()
