"""RunRegistry: the interface every registry backend implements, and its shared rules."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from agent_run_id._run_id import RunId
from agent_run_id._show import show_value
from agent_run_id._uuid import canonical

from ._record import STATUSES, RunRecord, Status

__all__ = ["MIN_PREFIX", "AmbiguousRunError", "RunRegistry", "check_find", "parse_run", "preorder"]

#: The fewest characters of a run id that ``get`` takes as a prefix.
MIN_PREFIX = 8
_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]*")


class AmbiguousRunError(LookupError):
    """A run id prefix matches several runs; ``candidates`` holds (some of) their ids."""

    def __init__(self, prefix: str, candidates: Iterable[str]) -> None:
        self.prefix = prefix
        self.candidates = tuple(candidates)
        shown = ", ".join(self.candidates)
        super().__init__(
            f"run id prefix {prefix!r} matches several runs: {shown}; give more characters"
        )


def parse_run(run: object) -> tuple[str, bool]:
    """Return ``(id, is_prefix)`` for a run given as a RunId, a full id or a prefix.

    Raises TypeError or ValueError naming the argument for anything else.
    """
    if isinstance(run, RunId):
        return run.value, False
    if not isinstance(run, str):
        raise TypeError(f"run must be a RunId or a str, got {type(run).__name__}")
    text = run.strip()
    full = canonical(text)
    if full is not None:
        return full, False
    prefix = text.lower()
    if len(prefix) < MIN_PREFIX or not _PREFIX.fullmatch(prefix) or len(prefix) > 36:
        raise ValueError(
            f"run {show_value(run)} is neither a run id nor a prefix of one: give the full id "
            f"or at least its first {MIN_PREFIX} characters"
        )
    return prefix, True


def check_find(
    status: object, limit: object, since: object, until: object, stale: object = False
) -> None:
    """Raise ValueError/TypeError for a bad ``find`` argument, naming it."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)} or None, got {status!r}")
    if stale and status not in (None, "running"):
        raise ValueError(
            f"stale=True finds runs still marked running, so status={status!r} would find "
            "none: leave status out"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    for what, value in (("since", since), ("until", until)):
        if value is None:
            continue
        if not isinstance(value, datetime):
            raise TypeError(f"{what} must be a datetime or None, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(
                f"{what} must be an aware datetime, got {value!r}: add tzinfo=datetime.timezone.utc"
            )


def preorder(records: Iterable[RunRecord], top: str) -> list[RunRecord]:
    """Return the tree under ``top`` depth first, each run's children in start order."""
    by_parent: dict[str | None, list[RunRecord]] = {}
    found: dict[str, RunRecord] = {}
    for record in sorted(records, key=lambda r: (r.started_at, r.run_id)):
        found[record.run_id] = record
        by_parent.setdefault(record.parent_id, []).append(record)
    if top not in found:
        return []
    ordered: list[RunRecord] = []
    stack = [found[top]]
    while stack:
        record = stack.pop()
        ordered.append(record)
        stack.extend(reversed(by_parent.get(record.run_id, ())))
    return ordered


class RunRegistry(ABC):
    """Where runs are recorded: their start, their end, and look-ups by id, status, user, time.

    The interface every backend implements (``SQLiteRunRegistry`` is the embedded default).
    Writes never raise for a failing store: a backend keeps the agent running and logs. Reads
    raise: ``KeyError`` for an unknown run, :class:`AmbiguousRunError` (a ``LookupError``) for
    a prefix that matches several runs.

    Record runs by giving a registry to ``RunContext(registry=...)``, or to every run of the
    process with :func:`agent_run_id.registry.set_default`.
    """

    @abstractmethod
    def start(
        self,
        run_id: RunId,
        *,
        user_id: str | None = None,
        task: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        """Record that ``run_id`` started now, in this process."""

    @abstractmethod
    def annotate(
        self,
        run_id: RunId,
        *,
        user_id: str | None = None,
        task: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        """Record what ``agent_run_id.annotate()`` learned of a running run.

        The values given are the run's facts as they are now: they replace the recorded ones;
        those left None keep theirs. A run this registry never saw start gets no record.
        ``external_ids`` (``system -> id``) are added to the run's: an id given again, to
        another run, moves to it.
        """

    @abstractmethod
    def finish(self, run_id: RunId, *, error: BaseException | None = None) -> None:
        """Record that ``run_id`` ended now: ``"ok"``, or ``"error"`` when ``error`` is given."""

    @abstractmethod
    def get(self, run: RunId | str, *, timeout: float | None = 1.0) -> RunRecord:
        """Return the run given by a RunId, its full id, or a unique prefix of 8+ characters.

        A buffering backend first waits for the writes queued before the call, ``timeout``
        seconds at most (None: no limit), then reads what is stored. It blocks: from async
        code, call it in a thread, never on the event loop::

            record = await asyncio.to_thread(registry.get, run_id)

        Raises KeyError for an unknown run, AmbiguousRunError (a LookupError) listing the
        candidates when a prefix matches several runs.
        """

    @abstractmethod
    def find(
        self,
        *,
        status: Status | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        stale: bool = False,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Return up to ``limit`` runs, newest first, that match every filter given.

        ``since`` (inclusive) and ``until`` (exclusive) bound the start time, as aware
        datetimes. ``stale=True`` keeps only runs still marked running that were started on
        this host by a process that no longer exists; with a ``status`` other than
        ``"running"`` it raises ValueError.
        """

    @abstractmethod
    def by_external_id(self, external_id: str, *, system: str | None = None) -> list[RunRecord]:
        """Return the runs that carry ``external_id`` (of ``system``, or of any), newest first.

        The id another system gave a run (``annotate(external_ids=...)``, or a framework
        integration), such as an OpenAI trace id or a LangSmith run id. Empty when none does.
        """

    @abstractmethod
    def children(self, run: RunId | str) -> list[RunRecord]:
        """Return the runs whose parent is ``run``, in start order."""

    @abstractmethod
    def tree(self, run: RunId | str) -> list[RunRecord]:
        """Return ``run`` and all its descendants, depth first, children in start order."""

    def flush(self) -> None:  # noqa: B027 - optional: only buffering backends need it
        """Write whatever is buffered; a no-op for a backend that writes at once."""

    def close(self) -> None:  # noqa: B027 - optional
        """Write what is buffered and release the backend's resources."""
