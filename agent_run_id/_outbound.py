"""The one rule every outbound wrapper applies to a request's headers just before it is sent.

- No run current: nothing is added.
- A request that already carries any of the run id header (``X-Run-Id``, or the wrapper's
  ``header_name``), ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` belongs to the caller: nothing is
  added, so no header the caller set is ever overwritten and the caller's lineage is never mixed
  with the run's.
- Otherwise the run id header is added, with ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` when the
  run has a parent, if the host is allowed.
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

from ._context import current_run_id
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, check_header_name, run_headers
from ._run_id import RunId

__all__ = ["NOTHING", "Added", "OutboundHeaders", "take_off"]

#: The headers a wrapper added to a request, as ``(name, value)`` pairs.
Added = tuple[tuple[str, str], ...]

#: No headers added: what a wrapper gets outside any run, or for a request that is the caller's.
NOTHING: Added = ()
_LINEAGE = frozenset({PARENT_HEADER.lower(), ROOT_HEADER.lower()})


class OutboundHeaders:
    """The header names one outbound wrapper sends the run under, checked once when made.

    ``header_name`` carries the run id (``X-Run-Id`` by default); the lineage headers keep their
    names. Raises ValueError, its message starting with ``owner`` (the dotted name of the class
    or function given the option), for a name that is no HTTP header name or is a lineage name.
    """

    __slots__ = ("_last", "header", "lower", "names")

    def __init__(self, header_name: object, owner: str) -> None:
        header = check_header_name(header_name, owner)
        if header.lower() in _LINEAGE:
            raise ValueError(
                f"{owner}: header_name {header!r} is a lineage header, which keeps its name: "
                f"pass the name the run id goes under, such as {HEADER!r} or 'X-Request-ID'"
            )
        self.header = header
        #: The three names, the run id's first: any of them set by the caller makes it theirs.
        self.names = (header, PARENT_HEADER, ROOT_HEADER)
        self.lower = frozenset(name.lower() for name in self.names)
        # The last run's pairs: a run sends many requests in a row. One tuple, read and replaced
        # whole, so threads sharing a wrapper never pair one run with another's headers.
        self._last: tuple[RunId | None, Added] = (None, NOTHING)

    def pairs(self, run_id: RunId) -> Added:
        """Return the ``(name, value)`` pairs that carry ``run_id`` under these names."""
        last = self._last
        if last[0] is not run_id:
            last = self._last = (run_id, run_headers(run_id, self.header))
        return last[1]

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
        pairs = self.pairs(run_id)
        for name, value in pairs:
            headers[name] = value
        return pairs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OutboundHeaders):
            return self.lower == other.lower  # header names ignore case
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.lower)

    def __reduce__(self) -> tuple[type[OutboundHeaders], tuple[str, str]]:
        # Pickled with the adapters of a requests session: the name alone, not the last run.
        return type(self), (self.header, type(self).__name__)

    def __repr__(self) -> str:
        return repr(self.header)


def take_off(headers: MutableMapping[str, str], added: Added) -> None:
    """Remove the ``added`` pairs from ``headers``, each only while it still has the added value.

    A value that differs was set by the caller after the library added its own, and stays.
    """
    for name, value in added:
        if headers.get(name) == value:
            del headers[name]
