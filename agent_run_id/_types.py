"""The shapes the core speaks: ASGI and WSGI (so it imports no framework), and a run registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._run_id import RunId

__all__ = [
    "ASGIApp",
    "Environ",
    "Message",
    "Receive",
    "Registry",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Environ = dict[str, Any]
# start_response(status, headers, exc_info=None) -> write: the optional third argument is why
# this is not spelled with a fixed parameter list.
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class Registry(Protocol):
    """What the core calls to record a run: ``agent_run_id.registry.RunRegistry`` is one.

    Both calls must return quickly and never raise into the run (the SQLite registry queues the
    write for a thread of its own).
    """

    def start(
        self,
        run_id: RunId,
        *,
        user_id: str | None = ...,
        task: str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        session_id: str | None = ...,
    ) -> None:
        """Record that ``run_id`` started, with what is known of it.

        Called again with what ``annotate()`` added (and with ``session_id=`` when the run has a
        session): a registry keeps the start it has and fills in the fields it lacks.
        """

    def finish(self, run_id: RunId, *, error: BaseException | None = ...) -> None:
        """Record that ``run_id`` ended, with the exception that escaped it (None: it did not)."""
