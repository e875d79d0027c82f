"""A structlog processor that adds the current run to every event.

Example::

    structlog.configure(processors=[add_run_id, structlog.processors.JSONRenderer()])
"""

from __future__ import annotations

try:
    from structlog.typing import EventDict, WrappedLogger
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("structlog", "structlog", "structlog") from exc

from ._context import _RUN, _current
from ._run_id import RunId

__all__ = ["add_run_id"]


def add_run_id(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``run_id`` (and ``parent_run_id``, ``root_run_id`` for a child run) to the event.

    Keys the caller set on the event (``log.info("step", run_id=...)``) are kept. Outside any
    run nothing is added. Put it before the renderer in the processor chain.
    """
    frame = _current.get()
    if frame is None:
        return event_dict
    run_id: RunId = frame[_RUN]
    event_dict.setdefault("run_id", run_id.value)
    parent = run_id.parent
    if parent is not None:
        event_dict.setdefault("parent_run_id", parent.value)
    root = run_id.root
    if root is not run_id:
        event_dict.setdefault("root_run_id", root.value)
    return event_dict
