"""Send the current run with every request an ``aiohttp.ClientSession`` makes.

Example::

    async with aiohttp.ClientSession(trace_configs=[trace_config()]) as session:
        await session.get("https://tools.example.com/search")  # X-Run-Id: <current run>

Security: the run id (its parent and root, and its session) goes to every host the session
talks to unless ``hosts=`` names the ones that may get it. The run's user goes only with
``send_user=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

try:
    import aiohttp
    from yarl import URL
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("aiohttp", "aiohttp", "aiohttp") from exc

from ._context import current_run_id
from ._hosts import HostAllowList, allow_list
from ._outbound import Added, OutboundHeaders
from ._propagation import HEADER

__all__ = ["trace_config"]

# Where the trace context of one request (shared by its redirects) keeps what was added.
_ADDED = "agent_run_id_added"


def _redirect_host(params: aiohttp.TraceRequestRedirectParams) -> str | None:
    """Return the host the redirect goes to, or None when it cannot be told."""
    headers = params.response.headers
    location = headers.get("Location") or headers.get("URI")
    if location is None:
        return None
    try:
        return params.url.join(URL(location)).raw_host
    except ValueError:
        return None


class _Callbacks:
    """The trace callbacks of one :func:`trace_config`, sharing its allowed hosts and names."""

    __slots__ = ("hosts", "outbound")

    def __init__(self, hosts: HostAllowList | None, outbound: OutboundHeaders) -> None:
        self.hosts = hosts
        self.outbound = outbound

    def _allows(self, host: str | None) -> bool:
        return host is not None and (self.hosts is None or self.hosts.allows(host))

    async def on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        # aiohttp awaits this in the task that makes the request, so the run is the caller's;
        # the headers object is the one the request (and its redirects) is sent with.
        if current_run_id() is None:
            return
        added = self.outbound.apply(params.headers, self._allows(params.url.raw_host))
        setattr(context, _ADDED, added)

    async def on_request_redirect(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        # aiohttp sends the next hop with the same headers: take ours off, add them again only
        # when the new host may get them.
        before: Added = getattr(context, _ADDED, ())
        if not before and current_run_id() is None:
            return
        added = self.outbound.apply(params.headers, self._allows(_redirect_host(params)), before)
        setattr(context, _ADDED, added)


def trace_config(
    *, hosts: Iterable[str] | None = None, header_name: str = HEADER, send_user: bool = False
) -> aiohttp.TraceConfig:
    """Return an ``aiohttp.TraceConfig`` that adds the current run to each request.

    Adds ``X-Run-Id`` (or ``header_name``; and ``X-Parent-Run-Id``, ``X-Root-Run-Id`` for a child
    run) when a request starts inside a run, with ``X-Session-Id`` when the run has a session;
    outside any run, and when the request already has one of the run headers (the caller's or
    the session's default), nothing is added, and a session header the caller set stays theirs. On a
    redirect to a host outside ``hosts`` the headers it added are taken off. One session may
    serve many concurrent runs: each request carries the run of the task that makes it.

    Args:
        hosts: host names and ``*.suffix`` patterns that may get the run; None (the default)
            sends it to every host.
        header_name: the header the run id goes under, ``X-Run-Id`` by default; give the one
            your services read (``X-Request-ID``). The lineage and session headers keep their
            names.
        send_user: also send the run's user in ``X-User-Id`` (off by default: it is personal
            data, and LLM providers are third parties; keep ``hosts=`` to your own services).

    Example::

        session = aiohttp.ClientSession(trace_configs=[trace_config(hosts=("*.example.com",))])
        await session.get("https://api.example.com/v1/items")

    Security: without ``hosts=``, every host the session reaches learns the run id, lineage and
    session (and with ``send_user=True``, the user).
    """
    outbound = OutboundHeaders(header_name, "agent_run_id.aiohttp.trace_config", send_user)
    callbacks = _Callbacks(allow_list(hosts), outbound)
    config = aiohttp.TraceConfig()
    config.on_request_start.append(callbacks.on_request_start)
    config.on_request_redirect.append(callbacks.on_request_redirect)
    return config
