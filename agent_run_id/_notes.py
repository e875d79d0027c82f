"""The run noted on an exception that escaped it: ``run_id=<id>`` (PEP 678, Python 3.11+).

The writer and the reader of the note, together, so that both count the same notes as ours:
exactly ``run_id=`` and a lowercase canonical id, as the writer makes it. A note of the user's
that merely starts with ``run_id=`` is neither kept as ours nor read as a run.
"""

from __future__ import annotations

import re

from ._run_id import RunId
from ._uuid import CANONICAL_PATTERN

__all__ = ["note_run", "noted_run_id"]

_PREFIX = "run_id="
_OURS = re.compile(f"{_PREFIX}({CANONICAL_PATTERN})")


def note_run(exc: BaseException, run_id: RunId) -> None:
    """Note the innermost run on an exception once, whatever runs it crosses on its way out.

    An exception that already carries our note keeps it: the same raise crossing outer runs
    must keep naming the innermost. (An exception instance cached and raised again in a later
    run therefore keeps naming the first run; telling the two apart needs the traceback, which
    this must not keep alive.)
    """
    add_note = getattr(exc, "add_note", None)  # PEP 678, Python 3.11+
    if add_note is None or not isinstance(exc, Exception):
        return
    if noted_run_id(exc) is not None:
        return
    try:
        add_note(f"{_PREFIX}{run_id.value}")
    except Exception:
        # An exception class that refuses new attributes (a frozen dataclass) refuses the note
        # too; the user's exception must go on as it is, not be replaced by that error.
        return


def noted_run_id(exc: BaseException) -> str | None:
    """Return the id of the run noted on ``exc`` by :func:`note_run`, or None."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str):
            match = _OURS.fullmatch(note)
            if match is not None:
                return match[1]
    return None
