"""What is known of a run beyond its id: session, user, task, name, metadata; and its view.

A run's facts start with its ``RunContext``'s options, the session and the user inherited from
the run it was entered in, and grow with ``annotate()``. They are kept with the run's frame, so
every task and thread inside the run sees the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._run_id import RunId

__all__ = ["NO_METADATA", "Facts", "RunView"]

#: The metadata of a run given none: one shared, read-only mapping.
NO_METADATA: Mapping[str, Any] = MappingProxyType({})


class Facts:
    """The facts of one run: changed only by entering it and by ``annotate()``."""

    __slots__ = ("metadata", "name", "session_id", "task", "user_id")

    def __init__(
        self,
        session_id: str | None,
        user_id: str | None,
        task: str | None,
        name: str | None,
        metadata: Mapping[str, Any],
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.task = task
        self.name = name
        self.metadata = metadata


class RunView:
    """A read-only view of a run as it is known now: its id and lineage, and its facts.

    Returned by ``agent_run_id.current_run()``; a later ``annotate()`` is not reflected in a
    view taken before it.
    """

    __slots__ = ("metadata", "name", "run_id", "session_id", "task", "user_id")

    def __init__(self, run_id: RunId, facts: Facts | None) -> None:
        self.run_id = run_id
        if facts is None:
            self.session_id = self.user_id = self.task = self.name = None
            self.metadata: Mapping[str, Any] = NO_METADATA
        else:
            self.session_id = facts.session_id
            self.user_id = facts.user_id
            self.task = facts.task
            self.name = facts.name
            self.metadata = MappingProxyType(dict(facts.metadata))

    @property
    def id(self) -> str:
        """The run's id, in canonical form."""
        return self.run_id.value

    @property
    def parent(self) -> RunId | None:
        """The run this one was started by, if known."""
        return self.run_id.parent

    @property
    def root(self) -> RunId:
        """The first run of the tree (this run for a root run)."""
        return self.run_id.root

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "metadata"):  # set in __init__ last: from then on, read-only
            raise AttributeError(f"RunView is read-only: annotate() changes the run, not {name}")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return (
            f"RunView(id={self.id!r}, session_id={self.session_id!r}, "
            f"user_id={self.user_id!r}, task={self.task!r}, name={self.name!r})"
        )
