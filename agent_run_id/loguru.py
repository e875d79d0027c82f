"""A loguru patcher that puts the current run in ``record["extra"]``.

loguru records are dicts, not ``logging.LogRecord`` objects, so a ``logging.Filter`` cannot stamp
them; this patcher does. Use ``{extra[run_id]}`` in a format.

Example::

    logger.configure(patcher=patch_record, extra={"run_id": "-"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import loguru  # noqa: F401  # checks the package is there
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    from ._optional import missing_extra

    raise missing_extra("loguru", "loguru", "loguru") from exc

from ._context import _current

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["patch_record"]


def patch_record(record: Record) -> None:
    """Set ``run_id``, ``run_id_short``, ``parent_run_id`` and ``root_run_id`` in the extras.

    Values bound by the caller (``logger.bind(run_id=...)``) are kept. Outside any run the fields
    are left unset, so a format may give them defaults with ``logger.configure(extra=...)``.
    """
    frame = _current.get()
    if frame is None:
        return
    run_id = frame.run_id
    extra = record["extra"]
    extra.setdefault("run_id", run_id.value)
    extra.setdefault("run_id_short", run_id.value[:8])
    parent = run_id.parent
    if parent is not None:
        extra.setdefault("parent_run_id", parent.value)
    extra.setdefault("root_run_id", run_id.root.value)
