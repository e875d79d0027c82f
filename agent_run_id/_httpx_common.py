"""The one implementation behind ``agent_run_id.httpx`` and ``agent_run_id.httpx2``.

Both packages share their transport and client API, so the code here takes the module it works
for (``httpx`` or ``httpx2``) as a class attribute or an argument and never imports either.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType, TracebackType
from typing import Any, ClassVar, TypeVar

from ._context import _RUN, _current
from ._hosts import HostAllowList, allow_list
from ._outbound import Added, apply, take_off
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, run_headers
from ._run_id import RunId, show_value

__all__ = ["AsyncTransportBase", "TransportBase", "instrument_client", "prepare"]

# Where a request remembers the headers this library added; httpx hands a request's extensions
# on to the request it builds for a redirect, so the next hop knows what to take off.
_MARK = "agent_run_id.added"

ClientT = TypeVar("ClientT")
SyncT = TypeVar("SyncT", bound="TransportBase")
AsyncT = TypeVar("AsyncT", bound="AsyncTransportBase")
_NAMES = (HEADER, PARENT_HEADER, ROOT_HEADER)


_NOTHING: Added = ()
# The statuses httpx follows. ``Response.has_redirect_location`` builds a tuple of enum members
# on every call (microseconds); a set lookup first keeps the check to an attribute read.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def prepare(request: Any, policy: HostAllowList | None) -> Added:
    """Give ``request`` the current run's headers (see ``_outbound``) just before it is sent.

    Return the pairs added, which ``request.headers`` now holds.
    """
    extensions = request.extensions
    before = extensions.get(_MARK)
    if before is None:
        # The first hop of a request: the hot path, kept to the fewest steps.
        frame = _current.get()
        if frame is None:
            return _NOTHING
        if policy is not None and not policy.allows(request.url.raw_host.decode("ascii")):
            return _NOTHING
        headers = request.headers
        fast = _FAST.get(type(headers))
        if fast is None:
            fast = _probe(type(headers))
        added = _add(headers, frame[_RUN]) if fast else apply(headers, True)
        if not added:
            return _NOTHING
    else:
        allowed = policy is None or policy.allows(request.url.raw_host.decode("ascii"))
        added = apply(request.headers, allowed, before)
    # A new dict, so an extensions mapping the caller shares between requests is not marked.
    request.extensions = {**extensions, _MARK: added}
    return added


# httpx and httpx2 keep headers in ``Headers._list`` as (raw name, lowercase name, value) byte
# triples. Reading and appending to it directly costs a fraction of ``in`` and ``[]=``, which
# re-encode and scan on each call; each Headers class is probed once, and one that does not
# keep that layout goes through the public mapping API instead.
_FAST: dict[type, bool] = {}
# Each run header name as httpx keeps it: (raw name, lowercase name).
_ENCODED = {name: (name.encode("ascii"), name.lower().encode("ascii")) for name in _NAMES}
_LOWER = frozenset(lower for _, lower in _ENCODED.values())


def _probe(cls: type) -> bool:
    try:
        probe = cls({"X-Probe": "1"})
        fast = probe._list == [(b"X-Probe", b"x-probe", b"1")] and type(probe._list) is list
        probe._list.append((b"X-Added", b"x-added", b"2"))
        fast = fast and probe.get("x-added") == "2"
    except Exception:
        fast = False
    _FAST[cls] = fast
    return fast


def _add(headers: Any, run_id: RunId) -> Added:
    """Add the run to a Headers' byte triples, following the rule of ``_outbound.apply``."""
    items: list[tuple[bytes, bytes, bytes]] = headers._list
    if not _LOWER.isdisjoint([item[1] for item in items]):
        return apply(headers, True)  # the caller set one of the names: apply adds nothing
    pairs = run_headers(run_id)
    for name, value in pairs:
        raw, lower = _ENCODED[name]
        items.append((raw, lower, value.encode("ascii")))
    return pairs


def _check_transport(cls: type, transport: object, base: type, kind: str) -> None:
    if isinstance(transport, base):
        return
    module = cls._module.__name__  # type: ignore[attr-defined]
    raise TypeError(
        f"transport must be a {module}.{base.__name__} such as {module}.{kind}(), got "
        f"{type(transport).__module__}.{type(transport).__qualname__} {show_value(transport)}: "
        f"wrap a transport of the same package (agent_run_id.{module} is for {module})"
    )


class TransportBase:
    """Send each request through the wrapped transport with the current run's headers."""

    _module: ClassVar[ModuleType]

    def __init__(
        self,
        transport: Any = None,
        *,
        hosts: Iterable[str] | None = None,
    ) -> None:
        module = self._module
        if transport is None:
            transport = module.HTTPTransport()
        _check_transport(type(self), transport, module.BaseTransport, "HTTPTransport")
        self._transport = transport
        self._policy = allow_list(hosts)

    @property
    def transport(self) -> Any:
        """The wrapped transport."""
        return self._transport

    def handle_request(self, request: Any) -> Any:
        """Add the run current now to ``request`` and send it with the wrapped transport."""
        added = prepare(request, self._policy)
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._transport!r}, hosts={self._policy!r})"


class AsyncTransportBase:
    """Send each request through the wrapped async transport with the current run's headers."""

    _module: ClassVar[ModuleType]

    def __init__(
        self,
        transport: Any = None,
        *,
        hosts: Iterable[str] | None = None,
    ) -> None:
        module = self._module
        if transport is None:
            transport = module.AsyncHTTPTransport()
        _check_transport(type(self), transport, module.AsyncBaseTransport, "AsyncHTTPTransport")
        self._transport = transport
        self._policy = allow_list(hosts)

    @property
    def transport(self) -> Any:
        """The wrapped transport."""
        return self._transport

    async def handle_async_request(self, request: Any) -> Any:
        """Add the run current now to ``request`` and send it with the wrapped transport."""
        added = prepare(request, self._policy)
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._transport!r}, hosts={self._policy!r})"


class _Hook:
    """A request event hook of a sync client: the current run's headers on every request."""

    __slots__ = ("policy",)

    def __init__(self, policy: HostAllowList | None) -> None:
        self.policy = policy

    def __call__(self, request: Any) -> None:
        prepare(request, self.policy)


class _AsyncHook(_Hook):
    """A request event hook of an async client: the current run's headers on every request."""

    __slots__ = ()

    async def __call__(self, request: Any) -> None:  # type: ignore[override]
        prepare(request, self.policy)


def instrument_client(module: ModuleType, client: ClientT, hosts: Iterable[str] | None) -> ClientT:
    """Add the run to every request ``client`` sends, through a request event hook."""
    if isinstance(client, module.AsyncClient):
        hook_type: type[_Hook] = _AsyncHook
    elif isinstance(client, module.Client):
        hook_type = _Hook
    else:
        name = module.__name__
        raise TypeError(
            f"client must be a {name}.Client or {name}.AsyncClient, got "
            f"{type(client).__module__}.{type(client).__qualname__}: use agent_run_id.{name} "
            f"only with {name} clients"
        )
    policy = allow_list(hosts)
    event_hooks = client.event_hooks
    for hook in event_hooks["request"]:
        if isinstance(hook, _Hook):
            if hook.policy == policy:
                return client
            raise ValueError(
                f"client is already instrumented with hosts={hook.policy!r}, not "
                f"hosts={policy!r}: instrument each client once"
            )
    # Last among the request hooks: a header that the user's own hooks set is the caller's.
    client.event_hooks = {**event_hooks, "request": [*event_hooks["request"], hook_type(policy)]}
    return client
