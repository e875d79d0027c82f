"""A loguru patcher that puts the current run in ``record["extra"]``.

loguru records are dicts, not ``logging.LogRecord`` objects, so a ``logging.Filter`` cannot stamp
them; this patcher does. Use ``{extra[run_id]}`` in a format.

Example::

    logger.configure(patcher=patch_record)
    logger.add(sys.stderr, format="{time} {extra[run_id]} {message}")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import loguru  # noqa: F401  # checks the package is there
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("loguru", "loguru", "loguru") from exc

from ._context import current_run_id
from ._run_id import lineage_fields
from .logging import FIELDS, LINEAGE

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["patch_record"]

_DEFAULT = "-"  # as agent_run_id.logging's default


def patch_record(record: Record) -> None:
    """Set ``run_id``, ``run_id_short``, ``parent_run_id`` and ``root_run_id`` in the extras.

    Outside any run they hold ``"-"``, so a format using them works everywhere. Values bound by
    the caller (``logger.bind(run_id=...)``) are kept.
    """
    extra = record["extra"]
    run_id = current_run_id()
    if run_id is not None:
        extra.setdefault("run_id_short", run_id.short())
        for name, value in lineage_fields(run_id, LINEAGE, own_root=True).items():
            extra.setdefault(name, value)
    for name in FIELDS:
        extra.setdefault(name, _DEFAULT)
