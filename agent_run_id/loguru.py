"""A loguru patcher that puts the current run (and its session) in ``record["extra"]``.

loguru records are dicts, not ``logging.LogRecord`` objects, so a ``logging.Filter`` cannot stamp
them; this patcher does. Use ``{extra[run_id]}`` and ``{extra[session_id]}`` in a format.

Example::

    logger.configure(patcher=patch_record)
    logger.add(sys.stderr, format="{time} {extra[run_id]} {extra[session_id]} {message}")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import loguru  # noqa: F401  # checks the package is there
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("loguru", "loguru", "loguru") from exc

from ._context import current_run
from ._log_fields import DEFAULT_FIELDS, check_fields, field_values

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["RunIdPatcher", "patch_record"]

_DEFAULT = "-"  # as agent_run_id.logging's default


class RunIdPatcher:
    """A loguru patcher setting the chosen fields of the current run in ``record["extra"]``.

    Outside any run, and for what the run lacks (a parent, a session), they hold ``"-"``, so a
    format using them works everywhere. Values bound by the caller (``logger.bind(run_id=...)``)
    are kept.

    Args:
        fields: the fields to set, from ``agent_run_id.logging.ALL_FIELDS``; by default
            ``DEFAULT_FIELDS`` (the run's, and its session), as stdlib records. ``user_id`` is
            personal data: add it when your logs may hold it.

    Example::

        logger.configure(patcher=RunIdPatcher(fields=(*DEFAULT_FIELDS, "user_id")))
    """

    def __init__(self, *, fields: tuple[str, ...] = DEFAULT_FIELDS) -> None:
        self.fields = check_fields(fields)
        self._outside = (_DEFAULT,) * len(self.fields)

    def __call__(self, record: Record) -> None:
        """Set the run's fields in ``record["extra"]``."""
        extra = record["extra"]
        names = self.fields
        run = current_run()
        values = self._outside if run is None else field_values(run.run_id, run, names, _DEFAULT)
        for name, value in zip(names, values, strict=True):
            extra.setdefault(name, value)

    def __repr__(self) -> str:
        return f"RunIdPatcher(fields={self.fields!r})"


_default = RunIdPatcher()


def patch_record(record: Record) -> None:
    """Set ``run_id``, ``run_id_short``, ``parent_run_id``, ``root_run_id`` and ``session_id``.

    :class:`RunIdPatcher` with the default fields; use it to choose others (``user_id``).
    Outside any run they hold ``"-"``, so a format using them works everywhere. Values bound by
    the caller (``logger.bind(run_id=...)``) are kept.
    """
    _default(record)
