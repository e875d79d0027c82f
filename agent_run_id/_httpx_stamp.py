"""The rule of ``_outbound`` applied to an ``httpx`` or ``httpx2`` request, on the fast path.

Used by the transports (``_httpx_transports``) and the request event hooks
(``_httpx_instrument``). It takes the module it works for (``httpx`` or ``httpx2``) as an argument
and never imports either.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from ._context import current_run_id, current_session_id
from ._hosts import HostAllowList, allow_list
from ._outbound import NOTHING, Added, OutboundHeaders
from ._run_id import RunId

__all__ = ["MARK", "Last", "Stamp", "Triple", "new_stamp"]

#: Where a request remembers the headers this library added; httpx hands a request's extensions
#: on to the request it builds for a redirect, so the next hop knows what to take off.
MARK = "agent_run_id.added"

#: A header as httpx keeps it: (raw name, lowercase name, value), all bytes.
Triple = tuple[bytes, bytes, bytes]

#: The last run sent: its id, session and user, its header pairs and their byte triples.
Last = tuple[RunId | None, str | None, str | None, Added, tuple[Triple, ...]]


# httpx and httpx2 keep headers in ``Headers._list`` as byte triples. Reading and extending it
# directly costs a fraction of ``in`` and ``[]=``, which re-encode and scan on each call; the
# package's Headers class is probed once, and headers of another class, or of one that does not
# keep that layout, go through the public mapping API instead.
def _probe(cls: type) -> bool:
    try:
        probe = cls({"X-Probe": "1"})
        fast = probe._list == [(b"X-Probe", b"x-probe", b"1")] and type(probe._list) is list
        probe._list.append((b"X-Added", b"x-added", b"2"))
        return bool(fast and probe.get("x-added") == "2")
    except Exception:
        return False


class Stamp:
    """What one transport or client hook adds to each request, by the rule of ``_outbound``.

    Holds the hosts that may get the run, the header names, and the last run's headers ready to
    append.
    """

    __slots__ = ("fast_type", "hosts", "last", "lower", "outbound", "send_user")

    def __init__(
        self, hosts: HostAllowList | None, outbound: OutboundHeaders, headers_type: type
    ) -> None:
        self.hosts = hosts
        self.outbound = outbound
        #: The lowercase names, as bytes: a request with one of them takes the slow path, where
        #: the caller's run header makes it theirs and their session or user header stays.
        self.lower = frozenset(name.encode("ascii") for name in outbound.lower)
        self.send_user = outbound.send_user
        #: The Headers class whose byte triples are read and extended directly, or None. (Any:
        #: mypy would take a header object checked against it for a plain object.)
        self.fast_type: Any = headers_type if _probe(headers_type) else None
        #: The last run (with its session and user), its pairs and their triples, as one tuple
        #: read and replaced whole: a run sends many requests in a row, and threads sharing the
        #: transport see a consistent set. annotate() can change the session or user in a run.
        self.last: Last = (None, None, None, NOTHING, ())

    def prepare(self, request: Any) -> Added:
        """Give ``request`` the current run's headers just before it is sent.

        Return the pairs added, which ``request.headers`` now holds. TransportBase.handle_request
        has a copy of this method inlined; ``tests/test_httpx.py`` and
        ``tests/test_outbound_session.py`` hold the two to the same answers.
        """
        extensions = request.extensions
        if MARK in extensions:
            return self.again(request, extensions[MARK])
        # The first hop of a request: the hot path, kept to the fewest steps.
        run_id = current_run_id()
        if run_id is None:
            return NOTHING
        hosts = self.hosts
        if hosts is not None and not hosts.allows(request.url.raw_host.decode("ascii")):
            return NOTHING
        headers = request.headers
        if type(headers) is not self.fast_type:
            return self.slow(request, headers)
        items: list[Triple] = headers._list
        lower = self.lower
        for item in items:
            if item[1] in lower:
                return self.slow(request, headers)  # the caller set one of the names
        session_id = current_session_id()
        user_id = self.outbound.user() if self.send_user else None
        last = self.last
        if last[0] is not run_id or last[1] is not session_id or last[2] is not user_id:
            last = self.last = self.encode(run_id, session_id, user_id)
        items.extend(last[4])
        # A new dict, so an extensions mapping the caller shares between requests is not marked.
        marked = dict(extensions)
        marked[MARK] = last[3]
        request.extensions = marked
        return last[3]

    def again(self, request: Any, before: Added) -> Added:
        """Prepare a later hop of a request that already went out: take off ``before`` first."""
        hosts = self.hosts
        allowed = hosts is None or hosts.allows(request.url.raw_host.decode("ascii"))
        added = self.outbound.apply(request.headers, allowed, before)
        request.extensions = {**request.extensions, MARK: added}
        return added

    def slow(self, request: Any, headers: Any) -> Added:
        """Prepare a first hop through the public mapping API of ``headers``.

        For headers of another class, and for a request that has one of the names already.
        """
        added = self.outbound.apply(headers, True)
        if added:
            request.extensions = {**request.extensions, MARK: added}
        return added

    def encode(self, run_id: RunId, session_id: str | None, user_id: str | None) -> Last:
        """Return the run with its header pairs and the byte triples that carry them."""
        pairs = self.outbound.pairs(run_id, session_id, user_id)
        triples = tuple(
            (name.encode("ascii"), name.lower().encode("ascii"), value.encode("ascii"))
            for name, value in pairs
        )
        return run_id, session_id, user_id, pairs, triples

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Stamp):
            return self.hosts == other.hosts and self.outbound == other.outbound
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"hosts={self.hosts!r}, {self.outbound.options}"


def new_stamp(
    module: ModuleType,
    owner: str,
    hosts: Iterable[str] | None,
    header_name: object,
    send_user: object = False,
) -> Stamp:
    """Return the checked options of a transport or hook; ``owner`` names it in messages."""
    outbound = OutboundHeaders(header_name, owner, send_user)
    return Stamp(allow_list(hosts), outbound, module.Headers)
