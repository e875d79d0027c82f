"""What is known of a run beyond its id: session, user, task, name, metadata; and its view.

A run's facts start with its ``RunContext``'s options and the session inherited from the run it
was entered in (not the user: a nested run works for whoever it is entered for), and grow with
``annotate()``. They are kept with the run's frame, so
every task and thread inside the run sees the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._external import NO_EXTERNAL_IDS
from ._run_id import RunId

__all__ = ["NO_METADATA", "Facts", "RunView"]

#: The metadata of a run given none: one shared, read-only mapping.
NO_METADATA: Mapping[str, Any] = MappingProxyType({})


class Facts:
    """The facts of one run: changed only by entering it and by ``annotate()``."""

    __slots__ = ("external_ids", "metadata", "name", "session_id", "task", "user_id")

    def __init__(
        self,
        session_id: str | None,
        user_id: str | None,
        task: str | None,
        name: str | None,
        metadata: Mapping[str, Any],
        external_ids: Mapping[str, str] = NO_EXTERNAL_IDS,
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.task = task
        self.name = name
        self.metadata = metadata
        # The ids other systems gave the run; replaced, never changed, as metadata is.
        self.external_ids = external_ids


class RunView:
    """A read-only view of a run as it is known now: its id and lineage, and its facts.

    Returned by ``agent_run_id.current_run()``; a later ``annotate()`` is not reflected in a
    view taken before it. Cheap to take (integrations take one per span or log event): the
    facts are read, never copied, since ``annotate()`` replaces them rather than change them.
    """

    __slots__ = ("_facts", "_run")

    def __init__(self, run_id: RunId, facts: Facts | None) -> None:
        self._run = run_id
        self._facts: _Known = (
            _NO_FACTS
            if facts is None
            else (
                facts.session_id,
                facts.user_id,
                facts.task,
                facts.name,
                facts.metadata,
                facts.external_ids,
            )
        )

    @property
    def run_id(self) -> RunId:
        """The run, as a RunId (with its lineage)."""
        return self._run

    @property
    def id(self) -> str:
        """The run's id, in canonical form."""
        return self._run.value

    @property
    def parent(self) -> RunId | None:
        """The run this one was started by, if known."""
        return self._run.parent

    @property
    def root(self) -> RunId:
        """The first run of the tree (this run for a root run)."""
        return self._run.root

    @property
    def session_id(self) -> str | None:
        """The session (conversation, thread) the run belongs to, if known."""
        return self._facts[0]

    @property
    def user_id(self) -> str | None:
        """The user the run works for, if known."""
        return self._facts[1]

    @property
    def task(self) -> str | None:
        """A short summary of the run's task, if given."""
        return self._facts[2]

    @property
    def name(self) -> str | None:
        """What runs here (an agent's or function's name), if given."""
        return self._facts[3]

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Any other facts given to the run or annotated, read-only."""
        return MappingProxyType(self._facts[4])

    @property
    def external_ids(self) -> Mapping[str, str]:
        """The ids other systems gave the run (``system -> id``), read-only."""
        return MappingProxyType(self._facts[5])

    def __repr__(self) -> str:
        return (
            f"RunView(id={self.id!r}, session_id={self.session_id!r}, "
            f"user_id={self.user_id!r}, task={self.task!r}, name={self.name!r})"
        )


_Known = tuple[str | None, str | None, str | None, str | None, Mapping[str, Any], Mapping[str, str]]
_NO_FACTS: _Known = (None, None, None, None, NO_METADATA, NO_EXTERNAL_IDS)
