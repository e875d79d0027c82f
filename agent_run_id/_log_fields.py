"""The fields a log output carries for a run: their names, the ``fields=`` rule, their values.

One place for every log integration of the package (``logging``, ``structlog``, ``loguru``) and
the CLI, so that the same names mean the same values everywhere. ``agent_run_id.logging``
exports the names.
"""

from __future__ import annotations

from typing import TypeVar

from ._facts import Facts, RunView
from ._run_id import RunId, lineage_fields
from ._show import show_value

__all__ = [
    "ALL_FIELDS",
    "DEFAULT_FIELDS",
    "FACT_FIELDS",
    "FIELDS",
    "LINEAGE",
    "check_fields",
    "field_values",
]

#: The names of a run's id and lineage in every log output (stdlib, structlog, loguru, the CLI).
LINEAGE = ("run_id", "parent_run_id", "root_run_id")
#: The names of what is known of a run in every log output: its session, its user, its task.
FACT_FIELDS = ("session_id", "user_id", "task")
#: The run's own fields: its id, the id's 8-character form and its lineage.
FIELDS = (LINEAGE[0], "run_id_short", LINEAGE[1], LINEAGE[2])
#: Every field a log output can carry, to choose from with ``fields=``.
ALL_FIELDS = FIELDS + FACT_FIELDS
#: The fields stamped unless ``fields=`` says otherwise: the run's own and its session. The user
#: id is personal data, stamped only when asked for.
DEFAULT_FIELDS = (*FIELDS, FACT_FIELDS[0])

_Default = TypeVar("_Default", str, None)


def check_fields(fields: object, choices: tuple[str, ...] = ALL_FIELDS) -> tuple[str, ...]:
    """Return the field names of a ``fields=`` option in the order of ``choices``, or raise.

    For every log integration of the package, so that each takes the same names. A name given
    twice counts once.
    """
    if isinstance(fields, str) or not isinstance(fields, tuple | list | set | frozenset):
        raise TypeError(
            f"fields must be a tuple of field names such as {DEFAULT_FIELDS!r}, "
            f"got {show_value(fields)}"
        )
    for name in fields:
        if name not in choices:
            raise ValueError(
                f"fields: {show_value(name)} is not a log field: choose from {', '.join(choices)}"
            )
    if not fields:
        raise ValueError(f"fields must name at least one field, such as {choices[:1]!r}")
    return tuple(name for name in choices if name in fields)


def field_values(
    run_id: RunId,
    facts: Facts | RunView | None,
    names: tuple[str, ...],
    default: _Default,
    *,
    short: bool = False,
    own_root: bool = True,
) -> tuple[str | _Default, ...]:
    """Return the values of the fields ``names`` for a run with ``facts``: the one rule of them.

    ``default`` stands for what the run lacks: a parent, a session, a user, a task (and its root
    with ``own_root=False``, for a root run). ``short`` puts the 8-character form in ``run_id``.
    """
    lineage = lineage_fields(run_id, LINEAGE, own_root=own_root)
    run, parent, root = LINEAGE
    value = lineage[run]
    known: dict[str, str | None] = {
        run: value[:8] if short else value,
        FIELDS[1]: value[:8],
        parent: lineage.get(parent),
        root: lineage.get(root),
    }
    if facts is not None:
        known.update(zip(FACT_FIELDS, (facts.session_id, facts.user_id, facts.task), strict=True))
    return tuple(default if (found := known.get(name)) is None else found for name in names)
