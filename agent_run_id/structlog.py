"""structlog processors that add the current run (and its session) to every event.

Example::

    structlog.configure(processors=[add_run_id, structlog.processors.JSONRenderer()])
    # or, with the user too (personal data: only when asked):
    structlog.configure(processors=[RunIdProcessor(fields=(*DEFAULT_FIELDS, "user_id")), ...])
"""

from __future__ import annotations

try:
    from structlog.typing import EventDict, WrappedLogger
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("structlog", "structlog", "structlog") from exc

from ._context import current_run
from ._log_fields import FACT_FIELDS, LINEAGE, check_fields, field_values

__all__ = ["DEFAULT_FIELDS", "RunIdProcessor", "add_run_id"]

#: What :func:`add_run_id` adds: the run, its lineage and its session (the names stdlib records
#: and loguru use; ``agent_run_id.logging.ALL_FIELDS`` lists every one to choose from).
DEFAULT_FIELDS = (*LINEAGE, FACT_FIELDS[0])


class RunIdProcessor:
    """A structlog processor adding the chosen fields of the current run to each event.

    Only what the run has is added: ``parent_run_id`` for a child run, ``root_run_id`` for a
    run that is not its own root, ``session_id``, ``user_id`` and ``task`` when the run has
    them; outside any run nothing. Keys the caller set on the event are kept.

    Args:
        fields: the fields to add, from ``agent_run_id.logging.ALL_FIELDS`` (``run_id``,
            ``run_id_short``, ``parent_run_id``, ``root_run_id``, ``session_id``, ``user_id``,
            ``task``); by default :data:`DEFAULT_FIELDS`. ``user_id`` is personal data: add it
            when your logs may hold it.

    Example::

        structlog.configure(processors=[RunIdProcessor(fields=(*DEFAULT_FIELDS, "user_id"))])
    """

    def __init__(self, *, fields: tuple[str, ...] = DEFAULT_FIELDS) -> None:
        self.fields = check_fields(fields)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Add the run's fields to ``event_dict`` (put it before the renderer)."""
        run = current_run()
        if run is None:
            return event_dict
        names = self.fields
        values = field_values(run.run_id, run, names, None, own_root=False)
        for name, value in zip(names, values, strict=True):
            if value is not None:
                event_dict.setdefault(name, value)
        return event_dict

    def __repr__(self) -> str:
        return f"RunIdProcessor(fields={self.fields!r})"


_default = RunIdProcessor()


def add_run_id(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``run_id`` (and ``parent_run_id``, ``root_run_id``, ``session_id`` when it has them).

    The processor with :data:`DEFAULT_FIELDS`; use :class:`RunIdProcessor` to choose others.
    Keys the caller set on the event (``log.info("step", run_id=...)``) are kept. Outside any
    run nothing is added. Put it before the renderer in the processor chain.
    """
    return _default(logger, method_name, event_dict)
