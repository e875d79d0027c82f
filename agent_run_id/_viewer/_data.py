"""What the viewer's pages show, read from a registry through ``RunRegistry`` alone.

A page of runs (filters, and keyset pagination: the next page is the runs started before the
last one shown, never an ``OFFSET``), a run found by id, prefix or external id, and a run's
tree laid out on one time axis. Standard library only: the same data feeds the served pages
and the one-file report.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from agent_run_id._cli._lines import parse_time
from agent_run_id.registry import STATUSES, AmbiguousRunError, RunRecord, RunRegistry
from agent_run_id.registry._record import from_micros, to_micros

__all__ = [
    "PAGE",
    "Filters",
    "Node",
    "Page",
    "Tree",
    "duration_text",
    "error_parts",
    "fields",
    "find_run",
    "layout",
    "list_page",
    "parse_filters",
]

#: Runs on one page of the list.
PAGE = 100
_TIES = 64  # runs started in the same microsecond as the last one shown, fetched beyond a page
_AGO = re.compile(r"(\d{1,9})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_CURSOR = re.compile(r"(\d{1,20}):([0-9a-f-]{36})")
# What no stored id, user or session holds: the registry stores a NUL and a lone surrogate
# escaped (PostgreSQL's text has no NUL, UTF-8 no lone surrogate), so text with one matches
# nothing, and is never sent to a database that would refuse it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Filters:
    """The list's filters as the page's form gives them (text, as typed, for the form)."""

    status: str = ""
    user: str = ""
    session: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    before: str = ""  # the keyset cursor: "<started_at in microseconds>:<run id>"

    def query(self, **changes: str) -> dict[str, str]:
        """Return the filters given (and ``changes``) as URL query parameters."""
        values = {
            "status": self.status,
            "user": self.user,
            "session": self.session,
            "since": self.since,
            "until": self.until,
            **changes,
        }
        return {name: value for name, value in values.items() if value}


@dataclass
class Page:
    """One page of the list: its runs, the cursor of the next page, and what was wrong."""

    runs: list[RunRecord]
    next: str | None
    errors: list[str] = field(default_factory=list)


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Return the filters in ``params`` (a query string's), each cut to a sane length."""
    return Filters(**{name: params.get(name, "").strip()[:200] for name in Filters.__annotations__})


def _when(text: str, what: str, errors: list[str]) -> datetime | None:
    """Return ``text`` as a time: ISO 8601 (UTC if no zone), or ``30m``, ``2h``, ``7d`` ago."""
    if not text:
        return None
    ago = _AGO.fullmatch(text)
    if ago:
        amount, unit = ago.groups()
        with contextlib.suppress(OverflowError):
            return datetime.now(timezone.utc) - timedelta(**{_UNITS[unit]: int(amount)})
    else:
        when = parse_time(text)
        if when is not None:
            return when
    errors.append(f"{what} is not a time: give 2025-06-01, 2025-06-01T12:00Z or 30m, 2h, 7d")
    return None


def list_page(registry: RunRegistry, filters: Filters, size: int = PAGE) -> Page:
    """Return the page of runs ``filters`` asks for, newest first.

    The next page starts before the last run shown: ``until`` its start time, the runs
    started in that same microsecond told apart by their id (the registry orders them by id,
    descending), so that no run is shown twice or skipped.
    """
    errors: list[str] = []
    status = filters.status if filters.status in STATUSES else None
    if filters.status and status is None:
        errors.append(f"status must be one of {', '.join(STATUSES)}")
    since = _when(filters.since, "since", errors)
    until = _when(filters.until, "until", errors)
    after: tuple[int, str] | None = None
    cursor = _CURSOR.fullmatch(filters.before)
    if cursor is not None:
        after = (int(cursor.group(1)), cursor.group(2))
        with contextlib.suppress(OverflowError):
            bound = from_micros(after[0] + 1)
            until = bound if until is None or bound is None or bound < until else until
    if _UNSTORABLE.search(filters.user) or _UNSTORABLE.search(filters.session):
        return Page([], None, errors)  # no run's user or session: nothing to ask the registry
    runs: list[RunRecord] = []
    limit = size + 1 + _TIES
    while True:
        found = registry.find(
            status=status,
            user_id=filters.user or None,
            session_id=filters.session or None,
            since=since,
            until=until,
            limit=limit,
        )
        runs = [r for r in found if after is None or _is_after(r, after)]
        if len(runs) > size or len(found) < limit:
            break
        limit *= 4  # more runs than _TIES started in one microsecond: fetch more of them
    shown = runs[:size]
    more = len(runs) > size
    last = shown[-1] if shown else None
    following = f"{to_micros(last.started_at)}:{last.run_id}" if more and last else None
    return Page(shown, following, errors)


def _is_after(record: RunRecord, cursor: tuple[int, str]) -> bool:
    """Whether ``record`` comes after the run at ``cursor`` in the list's order."""
    micros = to_micros(record.started_at)
    return micros < cursor[0] or (micros == cursor[0] and record.run_id < cursor[1])


def find_run(registry: RunRegistry, text: str) -> tuple[RunRecord | None, list[RunRecord]]:
    """Return the run ``text`` names (an id, a prefix, an external id), or the candidates.

    ``(record, [])`` for one run; ``(None, candidates)`` when a prefix or an external id is
    several runs'; ``(None, [])`` for none.
    """
    text = text.strip()
    if not text or _UNSTORABLE.search(text):  # no run's id, prefix or external id
        return None, []
    try:
        return registry.get(text, timeout=0), []
    except AmbiguousRunError as exc:
        candidates = []
        for run in exc.candidates:
            with contextlib.suppress(LookupError):
                candidates.append(registry.get(run, timeout=0))
        return None, candidates
    except (KeyError, ValueError):
        pass
    found = registry.by_external_id(text)
    if len(found) == 1:
        return found[0], []
    return None, found


@dataclass(frozen=True)
class Node:
    """One run of a tree as the timeline draws it: its depth and its bar, in per cent."""

    record: RunRecord
    depth: int
    left: float
    width: float
    running: bool


@dataclass(frozen=True)
class Tree:
    """A run's tree on one time axis: the nodes in depth-first order and the axis's span."""

    nodes: list[Node]
    start: datetime
    span: float  # seconds from the start to the last end (or now, while running)
    ticks: list[tuple[float, str]]  # (per cent, label)

    @property
    def ids(self) -> list[str]:
        """The ids of the tree's runs."""
        return [node.record.run_id for node in self.nodes]


def layout(records: Sequence[RunRecord], now: datetime | None = None) -> Tree:
    """Lay ``records`` (a tree, depth first, as ``RunRegistry.tree`` gives it) on a time axis."""
    now = now or datetime.now(timezone.utc)
    top = records[0]
    start = min(r.started_at for r in records)
    end = max((r.ended_at or now) for r in records)
    span = max((end - start).total_seconds(), 1e-6)
    depth: dict[str | None, int] = {top.parent_id: -1}
    nodes = []
    for r in records:
        level = depth[r.run_id] = depth.get(r.parent_id, -1) + 1
        left = (r.started_at - start).total_seconds() / span * 100
        width = ((r.ended_at or now) - r.started_at).total_seconds() / span * 100
        left = min(max(left, 0.0), 99.5)
        nodes.append(Node(r, level, round(left, 3), round(max(width, 0.4), 3), r.ended_at is None))
    ticks = [(i * 25.0, duration_text(span * i / 4)) for i in range(5)]
    return Tree(nodes, start, span, ticks)


def duration_text(seconds: float | None) -> str:
    """Return a duration as the CLI shows it: ``52.1ms``, ``1.25s``, ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}min"


def error_parts(error: str | None) -> tuple[str, str]:
    """Split ``"Type: message"`` into its type and message (the type empty if none)."""
    if not error:
        return "", ""
    kind, sep, message = error.partition(": ")
    if sep and kind.replace(".", "").replace("_", "").isalnum():
        return kind, message
    return "", error


def fields(record: RunRecord) -> list[tuple[str, Any]]:
    """Return the record's fields as the run page lists them."""
    return [(name, value) for name, value in record.to_json().items()]
