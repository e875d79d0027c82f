"""The one rule every outbound wrapper applies to a request's headers just before it is sent.

- No run current: nothing is added.
- A request that already carries any of the run id header (``X-Run-Id``, or the wrapper's
  ``header_name``), ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` belongs to the caller: nothing is
  added, so no header the caller set is ever overwritten and the caller's lineage is never mixed
  with the run's.
- Otherwise the run id header is added, with ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` when the
  run has a parent, if the host is allowed; and ``X-Session-Id`` when the run has a session, and
  ``X-User-Id`` when the run has a user and the wrapper was given ``send_user=True`` (the user is
  personal data: it never leaves the process by default), each unless the caller set it.
- What was added is remembered by the caller of :meth:`OutboundHeaders.apply` (in the request's
  extensions, a header subclass or the trace context), because clients copy a request's headers
  into the redirected request: on the next hop, the headers added before are taken off first, so
  a redirect to a host outside the allow-list loses them while the caller's headers stay.
- A wrapper that sees the redirect response come back takes its headers off the request right
  then (:func:`take_off`), before the client builds the next hop from it: the next hop may leave
  through a transport or adapter that is not this library's, which would send them on as they
  are. A wrapper that does handle the next hop adds them again if that host is allowed.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from ._context import current_run, current_run_id, current_session_id
from ._propagation import (
    HEADER,
    PARENT_HEADER,
    ROOT_HEADER,
    SESSION_HEADER,
    check_header_name,
    run_headers,
)
from ._run_id import RunId
from ._session import parse_session_id
from ._show import show_value

__all__ = [
    "NOTHING",
    "USER_HEADER",
    "Added",
    "OutboundHeaders",
    "check_send_user",
    "current_user_id",
    "take_off",
]

#: The header that carries the run's user, sent only by a wrapper given ``send_user=True``.
USER_HEADER = "X-User-Id"

#: The headers a wrapper added to a request, as ``(name, value)`` pairs.
Added = tuple[tuple[str, str], ...]

#: No headers added: what a wrapper gets outside any run, or for a request that is the caller's.
NOTHING: Added = ()
_LINEAGE = frozenset({PARENT_HEADER.lower(), ROOT_HEADER.lower()})
_FACTS = frozenset({SESSION_HEADER.lower(), USER_HEADER.lower()})


def check_send_user(send_user: object, owner: str) -> bool:
    """Return ``send_user`` if it is True or False, else raise TypeError starting with ``owner``."""
    if not isinstance(send_user, bool):
        raise TypeError(
            f"{owner}: send_user must be True or False, got {show_value(send_user)}: pass "
            "send_user=True to send the run's user in X-User-Id (personal data), else leave it out"
        )
    return send_user


def current_user_id() -> str | None:
    """Return the user of the current run if it can go in a header, else None.

    None outside any run, for a run without a user, and for a user id that is not 1 to 128
    printable ASCII characters without spaces or commas (the session id's rule): a header
    cannot carry it, and the request must not fail for it.
    """
    run = current_run()
    user_id = None if run is None else run.user_id
    if user_id is None or parse_session_id(user_id) != user_id:
        return None
    return user_id


class OutboundHeaders:
    """The header names one outbound wrapper sends the run under, checked once when made.

    ``header_name`` carries the run id (``X-Run-Id`` by default); the lineage headers and
    ``X-Session-Id`` keep their names; ``send_user`` adds ``X-User-Id``. Raises ValueError, its
    message starting with ``owner`` (the dotted name of the class or function given the
    option), for a name that is no HTTP header name or is a lineage or session name, and
    TypeError for a ``send_user`` that is not a bool.
    """

    __slots__ = ("_last", "header", "lower", "names", "send_user")

    def __init__(self, header_name: object, owner: str, send_user: object = False) -> None:
        header = check_header_name(header_name, owner)
        if header.lower() in _LINEAGE | _FACTS:
            kind = "a lineage" if header.lower() in _LINEAGE else "the session or user"
            raise ValueError(
                f"{owner}: header_name {header!r} is {kind} header, which keeps its name: pass "
                f"the name the run id goes under, such as {HEADER!r} or 'X-Request-ID'"
            )
        self.header = header
        self.send_user = check_send_user(send_user, owner)
        #: The three names, the run id's first: any of them set by the caller makes it theirs.
        self.names = (header, PARENT_HEADER, ROOT_HEADER)
        #: Every name a request may get, in lower case: the three, the session's, the user's.
        self.lower = frozenset(name.lower() for name in self.names) | {SESSION_HEADER.lower()}
        if self.send_user:
            self.lower |= {USER_HEADER.lower()}
        # The last run's pairs: a run sends many requests in a row. One tuple, read and replaced
        # whole, so threads sharing a wrapper never pair one run with another's headers. Keyed
        # on the session and user too: annotate() changes them within a run.
        self._last: tuple[RunId | None, str | None, str | None, Added] = (
            None,
            None,
            None,
            NOTHING,
        )

    @property
    def options(self) -> str:
        """The options as messages and reprs show them: ``header_name=...``, ``send_user=``."""
        shown = f"header_name={self.header!r}"
        return f"{shown}, send_user=True" if self.send_user else shown

    def pairs(
        self, run_id: RunId, session_id: str | None = None, user_id: str | None = None
    ) -> Added:
        """Return the ``(name, value)`` pairs that carry ``run_id``, its session and its user.

        ``user_id`` is sent only if ``send_user`` is True.
        """
        if not self.send_user:
            user_id = None
        last = self._last
        if last[0] is not run_id or last[1] is not session_id or last[2] is not user_id:
            pairs = run_headers(run_id, self.header)
            if session_id is not None:
                pairs += ((SESSION_HEADER, session_id),)
            if user_id is not None:
                pairs += ((USER_HEADER, user_id),)
            last = self._last = (run_id, session_id, user_id, pairs)
        return last[3]

    def user(self) -> str | None:
        """Return the current run's user if this wrapper sends it, else None."""
        return current_user_id() if self.send_user else None

    def apply(
        self, headers: MutableMapping[str, str], allowed: bool, before: Added = NOTHING
    ) -> Added:
        """Take off the headers added ``before``, add the current run's if ``allowed``; return them.

        ``headers`` is the client's case-insensitive header mapping, changed in place.
        """
        take_off(headers, before)
        if not allowed:
            return NOTHING
        run_id = current_run_id()
        if run_id is None:
            return NOTHING
        # One name the caller set makes the request's lineage theirs: any header added would mix.
        header, parent, root = self.names
        if header in headers or parent in headers or root in headers:
            return NOTHING
        pairs = self.pairs(run_id, current_session_id(), self.user())
        if SESSION_HEADER in headers or (self.send_user and USER_HEADER in headers):
            # The caller set X-Session-Id (or X-User-Id): theirs stays, the run's ids go on.
            pairs = tuple(pair for pair in pairs if pair[0] not in headers)
        for name, value in pairs:
            headers[name] = value
        return pairs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OutboundHeaders):
            return self.lower == other.lower  # header names ignore case; the user's is in
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.lower)

    def __reduce__(self) -> tuple[type[OutboundHeaders], tuple[str, str, bool]]:
        # Pickled with the adapters of a requests session: the options alone, not the last run.
        return type(self), (self.header, type(self).__name__, self.send_user)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


def take_off(headers: MutableMapping[str, str], added: Added) -> None:
    """Remove the ``added`` pairs from ``headers``, each only while it still has the added value.

    A value that differs was set by the caller after the library added its own, and stays.
    """
    for name, value in added:
        if headers.get(name) == value:
            del headers[name]
