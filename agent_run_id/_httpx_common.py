"""The one implementation behind ``agent_run_id.httpx`` and ``agent_run_id.httpx2``.

Both packages share their transport and client API, so the code here takes the module it works
for (``httpx`` or ``httpx2``) as a class attribute or an argument and never imports either.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType, TracebackType
from typing import Any, ClassVar, NoReturn, TypeVar

from ._context import current_run_id
from ._hosts import HostAllowList, allow_list
from ._outbound import Added, OutboundHeaders, take_off
from ._propagation import HEADER
from ._run_id import RunId, show_value

__all__ = ["AsyncTransportBase", "Stamp", "TransportBase", "instrument_client"]

# Where a request remembers the headers this library added; httpx hands a request's extensions
# on to the request it builds for a redirect, so the next hop knows what to take off.
_MARK = "agent_run_id.added"

ClientT = TypeVar("ClientT")
SyncT = TypeVar("SyncT", bound="TransportBase")
AsyncT = TypeVar("AsyncT", bound="AsyncTransportBase")
# A header as httpx keeps it: (raw name, lowercase name, value), all bytes.
Triple = tuple[bytes, bytes, bytes]

_NOTHING: Added = ()
# The statuses httpx follows. ``Response.has_redirect_location`` builds a tuple of enum members
# on every call (microseconds); a set lookup first keeps the check to an attribute read.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


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

    __slots__ = ("_last", "fast_type", "hosts", "lower", "outbound")

    def __init__(
        self, hosts: HostAllowList | None, outbound: OutboundHeaders, headers_type: type
    ) -> None:
        self.hosts = hosts
        self.outbound = outbound
        #: The lowercase names, as bytes: one of them in a request makes it the caller's.
        self.lower = frozenset(name.encode("ascii") for name in outbound.lower)
        #: The Headers class whose byte triples are read and extended directly, or None. (Any:
        #: mypy would take a header object checked against it for a plain object.)
        self.fast_type: Any = headers_type if _probe(headers_type) else None
        # The last run, its pairs and their triples, as one tuple read and replaced whole: a run
        # sends many requests in a row, and threads sharing the transport see a consistent set.
        self._last: tuple[RunId | None, Added, tuple[Triple, ...]] = (None, _NOTHING, ())

    def prepare(self, request: Any) -> Added:
        """Give ``request`` the current run's headers just before it is sent.

        Return the pairs added, which ``request.headers`` now holds. TransportBase.handle_request
        has a copy of this method inlined; ``tests/test_httpx.py`` holds the two to the same
        answers.
        """
        extensions = request.extensions
        if _MARK in extensions:
            return self.again(request, extensions[_MARK])
        # The first hop of a request: the hot path, kept to the fewest steps.
        run_id = current_run_id()
        if run_id is None:
            return _NOTHING
        hosts = self.hosts
        if hosts is not None and not hosts.allows(request.url.raw_host.decode("ascii")):
            return _NOTHING
        headers = request.headers
        if type(headers) is not self.fast_type:
            return self.slow(request, headers)
        items: list[Triple] = headers._list
        lower = self.lower
        for item in items:
            if item[1] in lower:
                return _NOTHING  # the caller set one of the names: the request is theirs
        last = self._last
        if last[0] is not run_id:
            last = self._last = self.encode(run_id)
        items.extend(last[2])
        # A new dict, so an extensions mapping the caller shares between requests is not marked.
        marked = dict(extensions)
        marked[_MARK] = last[1]
        request.extensions = marked
        return last[1]

    def again(self, request: Any, before: Added) -> Added:
        """Prepare a later hop of a request that already went out: take off ``before`` first."""
        hosts = self.hosts
        allowed = hosts is None or hosts.allows(request.url.raw_host.decode("ascii"))
        added = self.outbound.apply(request.headers, allowed, before)
        request.extensions = {**request.extensions, _MARK: added}
        return added

    def slow(self, request: Any, headers: Any) -> Added:
        """Prepare a first hop through the public mapping API of ``headers``."""
        added = self.outbound.apply(headers, True)
        if added:
            request.extensions = {**request.extensions, _MARK: added}
        return added

    def encode(self, run_id: RunId) -> tuple[RunId, Added, tuple[Triple, ...]]:
        """Return ``run_id`` with its header pairs and the byte triples that carry them."""
        pairs = self.outbound.pairs(run_id)
        triples = tuple(
            (name.encode("ascii"), name.lower().encode("ascii"), value.encode("ascii"))
            for name, value in pairs
        )
        return run_id, pairs, triples

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Stamp):
            return self.hosts == other.hosts and self.outbound == other.outbound
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"hosts={self.hosts!r}, header_name={self.outbound!r}"


def _check_transport(cls: type, transport: object, base: type, kind: str) -> None:
    if isinstance(transport, base):
        return
    module = cls._module.__name__  # type: ignore[attr-defined]
    raise TypeError(
        f"transport must be a {module}.{base.__name__} such as {module}.{kind}(), got "
        f"{type(transport).__module__}.{type(transport).__qualname__} {show_value(transport)}: "
        f"wrap a transport of the same package (agent_run_id.{module} is for {module})"
    )


def _stamp(
    module: ModuleType, owner: str, hosts: Iterable[str] | None, header_name: object
) -> Stamp:
    """Return the checked options of a transport or hook; ``owner`` names it in messages."""
    return Stamp(allow_list(hosts), OutboundHeaders(header_name, owner), module.Headers)


def _owner(transport: object) -> str:
    return f"{type(transport).__module__}.{type(transport).__qualname__}"


def _wrong_client(self: TransportBase | AsyncTransportBase, *args: object) -> NoReturn:
    """Refuse the other kind of client's call, naming the transport that client needs."""
    module = self._module.__name__
    ours, theirs, right = (
        ("RunIdTransport", "AsyncClient", "AsyncRunIdTransport")
        if isinstance(self, TransportBase)
        else ("AsyncRunIdTransport", "Client", "RunIdTransport")
    )
    raise TypeError(
        f"an agent_run_id.{module}.{ours} was given to an {module}.{theirs}, which needs a "
        f"transport of the other kind: pass transport=agent_run_id.{module}.{right}(...) to an "
        f"{module}.{theirs}"
    )


class TransportBase:
    """Send each request through the wrapped transport with the current run's headers."""

    _module: ClassVar[ModuleType]

    def __init__(
        self,
        transport: Any = None,
        *,
        hosts: Iterable[str] | None = None,
        header_name: str = HEADER,
    ) -> None:
        module = self._module
        if transport is None:
            transport = module.HTTPTransport()
        _check_transport(type(self), transport, module.BaseTransport, "HTTPTransport")
        self._transport = transport
        self._stamp = _stamp(module, _owner(self), hosts, header_name)

    @property
    def transport(self) -> Any:
        """The wrapped transport."""
        return self._transport

    def handle_request(self, request: Any) -> Any:
        """Add the run current now to ``request`` and send it with the wrapped transport."""
        # Stamp.prepare inlined, the one path benchmarks/count_httpx.py counts; a test in
        # tests/test_httpx.py holds the copy to the same answers as the original.
        stamp = self._stamp
        extensions = request.extensions
        run_id = current_run_id()
        if _MARK in extensions:
            added = stamp.again(request, extensions[_MARK])
        elif run_id is None or (
            stamp.hosts is not None and not stamp.hosts.allows(request.url.raw_host.decode("ascii"))
        ):
            added = _NOTHING
        elif type(request.headers) is not stamp.fast_type:
            added = stamp.slow(request, request.headers)
        else:
            items: list[Triple] = request.headers._list
            lower = stamp.lower
            for item in items:
                if item[1] in lower:
                    added = _NOTHING  # the caller set one of the names: the request is theirs
                    break
            else:
                last = stamp._last
                if last[0] is not run_id:
                    last = stamp._last = stamp.encode(run_id)
                items.extend(last[2])
                added = last[1]
                marked = dict(extensions)
                marked[_MARK] = added
                request.extensions = marked
        response = self._transport.handle_request(request)
        # httpx builds a redirect's next hop from this request's headers once we return, and
        # the next hop may leave through a transport of the client that is not wrapped (a
        # mounts= entry): take ours off now; if it comes back through here, it gets them again.
        if added and response.status_code in _REDIRECTS and response.has_redirect_location:
            take_off(request.headers, added)
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()

    def __enter__(self: SyncT) -> SyncT:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._transport.__exit__(exc_type, exc_value, traceback)

    # What an AsyncClient calls first (entering it, a request, closing it) raises a TypeError
    # that names the async transport, not an AttributeError at the first request.
    handle_async_request = __aenter__ = aclose = _wrong_client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._transport!r}, {self._stamp!r})"


class AsyncTransportBase:
    """Send each request through the wrapped async transport with the current run's headers."""

    _module: ClassVar[ModuleType]

    def __init__(
        self,
        transport: Any = None,
        *,
        hosts: Iterable[str] | None = None,
        header_name: str = HEADER,
    ) -> None:
        module = self._module
        if transport is None:
            transport = module.AsyncHTTPTransport()
        _check_transport(type(self), transport, module.AsyncBaseTransport, "AsyncHTTPTransport")
        self._transport = transport
        self._stamp = _stamp(module, _owner(self), hosts, header_name)

    @property
    def transport(self) -> Any:
        """The wrapped transport."""
        return self._transport

    async def handle_async_request(self, request: Any) -> Any:
        """Add the run current now to ``request`` and send it with the wrapped transport."""
        added = self._stamp.prepare(request)
        response = await self._transport.handle_async_request(request)
        # See TransportBase.handle_request.
        if added and response.status_code in _REDIRECTS and response.has_redirect_location:
            take_off(request.headers, added)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()

    async def __aenter__(self: AsyncT) -> AsyncT:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)

    # See TransportBase: what a sync Client calls first raises a TypeError naming RunIdTransport.
    handle_request = __enter__ = close = _wrong_client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._transport!r}, {self._stamp!r})"


class _Hook:
    """A request event hook of a sync client: the current run's headers on every request."""

    __slots__ = ("stamp",)

    def __init__(self, stamp: Stamp) -> None:
        self.stamp = stamp

    def __call__(self, request: Any) -> None:
        self.stamp.prepare(request)


class _AsyncHook(_Hook):
    """A request event hook of an async client: the current run's headers on every request."""

    __slots__ = ()

    async def __call__(self, request: Any) -> None:  # type: ignore[override]
        self.stamp.prepare(request)


def instrument_client(
    module: ModuleType, client: ClientT, hosts: Iterable[str] | None, header_name: object
) -> ClientT:
    """Add the run to every request ``client`` sends, through a request event hook."""
    name = module.__name__
    if isinstance(client, module.AsyncClient):
        hook_type: type[_Hook] = _AsyncHook
    elif isinstance(client, module.Client):
        hook_type = _Hook
    else:
        raise TypeError(
            f"client must be a {name}.Client or {name}.AsyncClient, got "
            f"{type(client).__module__}.{type(client).__qualname__}: use agent_run_id.{name} "
            f"only with {name} clients"
        )
    stamp = _stamp(module, f"agent_run_id.{name}.instrument", hosts, header_name)
    event_hooks = client.event_hooks
    for hook in event_hooks["request"]:
        if isinstance(hook, _Hook):
            if hook.stamp == stamp:
                return client
            raise ValueError(
                f"client is already instrumented with {hook.stamp!r}, not {stamp!r}: "
                "instrument each client once"
            )
    # Last among the request hooks: a header that the user's own hooks set is the caller's.
    client.event_hooks = {**event_hooks, "request": [*event_hooks["request"], hook_type(stamp)]}
    return client
