"""The transports behind ``agent_run_id.httpx`` and ``agent_run_id.httpx2``, sync and async.

Both packages share their transport API, so a subclass names the module it works for
(``class RunIdTransport(TransportBase, httpx.BaseTransport, module=httpx)``) and the code here
never imports either. Each base refuses the calls of the other kind of client with a TypeError
that names the transport that client needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType, TracebackType
from typing import Any, ClassVar, NoReturn, TypeVar

from ._context import current_run_id, current_session_id
from ._httpx_stamp import MARK, Triple, new_stamp
from ._outbound import NOTHING, take_off
from ._propagation import HEADER
from ._show import show_value

__all__ = ["AsyncTransportBase", "TransportBase"]

SyncT = TypeVar("SyncT", bound="TransportBase")
AsyncT = TypeVar("AsyncT", bound="AsyncTransportBase")

# The statuses httpx follows. ``Response.has_redirect_location`` builds a tuple of enum members
# on every call (microseconds); a set lookup first keeps the check to an attribute read.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _check_transport(package: ModuleType, transport: object, base: type, kind: str) -> None:
    if isinstance(transport, base):
        return
    module = package.__name__
    raise TypeError(
        f"transport must be a {module}.{base.__name__} such as {module}.{kind}(), got "
        f"{type(transport).__module__}.{type(transport).__qualname__} {show_value(transport)}: "
        f"wrap a transport of the same package (agent_run_id.{module} is for {module})"
    )


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


class _Wrapper:
    """What both transport bases share: the wrapped transport, its check, the stamp."""

    _module: ClassVar[ModuleType]
    # The names, in the httpx module, of the default transport made when none is given and of
    # the base class a wrapped transport must have.
    _default: ClassVar[str]
    _kind: ClassVar[str]

    def __init_subclass__(cls, *, module: ModuleType | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if module is not None:  # a user's subclass keeps the module of its base
            cls._module = module

    def __init__(
        self,
        transport: Any = None,
        *,
        hosts: Iterable[str] | None = None,
        header_name: str = HEADER,
        send_user: bool = False,
    ) -> None:
        module = self._module
        if transport is None:
            transport = getattr(module, self._default)()
        _check_transport(module, transport, getattr(module, self._kind), self._default)
        self._transport = transport
        self._stamp = new_stamp(module, _owner(self), hosts, header_name, send_user)

    @property
    def transport(self) -> Any:
        """The wrapped transport."""
        return self._transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._transport!r}, {self._stamp!r})"


class TransportBase(_Wrapper):
    """Send each request through the wrapped transport with the current run's headers."""

    _default = "HTTPTransport"
    _kind = "BaseTransport"

    def handle_request(self, request: Any) -> Any:
        """Add the run current now to ``request`` and send it with the wrapped transport."""
        # Stamp.prepare inlined, the one path benchmarks/count_httpx.py counts; a test in
        # tests/test_httpx.py holds the copy to the same answers as the original.
        stamp = self._stamp
        extensions = request.extensions
        run_id = current_run_id()
        if MARK in extensions:
            added = stamp.again(request, extensions[MARK])
        elif run_id is None or (
            stamp.hosts is not None and not stamp.hosts.allows(request.url.raw_host.decode("ascii"))
        ):
            added = NOTHING
        elif type(request.headers) is not stamp.fast_type:
            added = stamp.slow(request, request.headers)
        else:
            items: list[Triple] = request.headers._list
            lower = stamp.lower
            for item in items:
                if item[1] in lower:
                    added = stamp.slow(request, request.headers)  # the caller set one of them
                    break
            else:
                session_id = current_session_id()
                user_id = stamp.outbound.user() if stamp.send_user else None
                last = stamp.last
                if last[0] is not run_id or last[1] is not session_id or last[2] is not user_id:
                    last = stamp.last = stamp.encode(run_id, session_id, user_id)
                items.extend(last[4])
                added = last[3]
                marked = dict(extensions)
                marked[MARK] = added
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


class AsyncTransportBase(_Wrapper):
    """Send each request through the wrapped async transport with the current run's headers."""

    _default = "AsyncHTTPTransport"
    _kind = "AsyncBaseTransport"

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
