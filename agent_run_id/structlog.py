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

from ._context import current_run_id
from ._run_id import lineage_fields
from .logging import LINEAGE

__all__ = ["add_run_id"]


def add_run_id(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``run_id`` (and ``parent_run_id``, ``root_run_id`` for a child run) to the event.

    Keys the caller set on the event (``log.info("step", run_id=...)``) are kept. Outside any
    run nothing is added. Put it before the renderer in the processor chain.
    """
    run_id = current_run_id()
    if run_id is None:
        return event_dict
    for name, value in lineage_fields(run_id, LINEAGE).items():
        event_dict.setdefault(name, value)
    return event_dict
