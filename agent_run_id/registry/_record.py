"""RunRecord: what the registry knows about one run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

__all__ = ["RUNNING", "STATUSES", "RunRecord", "Status", "from_micros", "to_micros"]

Status = Literal["running", "ok", "error"]
RUNNING: Status = "running"
#: The statuses a run can have, in the order a run goes through them.
STATUSES: tuple[Status, ...] = ("running", "ok", "error")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


# Times are stored as integer microseconds since the Unix epoch: exact both ways, so a record's
# own started_at given back as since= or until= finds it (or leaves it) exactly.
def from_micros(micros: int | None) -> datetime | None:
    """Return the aware UTC datetime of a time in microseconds since the epoch, None for None."""
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def to_micros(when: datetime) -> int:
    """Return an aware datetime as microseconds since the epoch."""
    return (when - _EPOCH) // _MICRO


@dataclass(frozen=True)
class RunRecord:
    """One run as the registry recorded it: its lineage, status, times, user, task and place.

    ``status`` is ``"running"`` from the start until the run ends, then ``"ok"``, or ``"error"``
    when an exception escaped it (``error`` then holds its type and message). A run whose process
    died stays ``"running"``: ``RunRegistry.find(stale=True)`` lists those.

    Attributes:
        run_id: the run's id in canonical form.
        parent_id: the id of the run that started it, None for a root run.
        root_id: the id of the first run of its tree (its own id for a root run).
        status: ``"running"``, ``"ok"`` or ``"error"``.
        started_at: when the run started (aware, UTC).
        ended_at: when it ended (aware, UTC), None while running.
        duration: its length in seconds, None while running.
        user_id: the user it worked for, if known.
        session_id: the session (conversation, thread) it belongs to, if known.
        task: a short summary of its task, if given.
        error: ``"Type: message"`` of the exception that escaped it, if any.
        host: the host name of the machine it ran on.
        pid: the id of the process it ran in.
        metadata: any other JSON-able facts given to its RunContext.
        external_ids: the ids other systems gave it (``system -> id``, such as
            ``{"langsmith_run": "..."}``), set with ``annotate(external_ids=...)`` and by the
            framework integrations.
    """

    run_id: str
    parent_id: str | None
    root_id: str
    status: Status
    started_at: datetime
    ended_at: datetime | None = None
    duration: float | None = None
    user_id: str | None = None
    session_id: str | None = None
    task: str | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    # Left out of the hash: a dict is unhashable, and run_id alone already tells records apart.
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    external_ids: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON-able dict: field names as here, times in ISO 8601."""
        data = asdict(self)
        for name in ("started_at", "ended_at"):
            value = data[name]
            data[name] = None if value is None else value.isoformat()
        data["metadata"] = dict(self.metadata)
        data["external_ids"] = dict(self.external_ids)
        return data
