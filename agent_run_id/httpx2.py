"""Send the current run with every request an ``httpx2`` client makes.

Example::

    client = httpx2.Client(transport=RunIdTransport(hosts=("api.openai.com",)))
    OpenAI(http_client=client)  # every LLM request carries X-Run-Id

Security: the run id (its parent and root, and its session) goes to every host the client talks
to unless ``hosts=`` names the ones that may get it. Ids are not secrets, but they tie requests
together. The run's user goes only with ``send_user=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

try:
    import httpx2
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("httpx2", "httpx2", "httpx2") from exc

from ._httpx_instrument import instrument_client
from ._httpx_transports import AsyncTransportBase, TransportBase
from ._propagation import HEADER

__all__ = ["AsyncRunIdTransport", "RunIdTransport", "instrument"]

ClientT = TypeVar("ClientT", httpx2.Client, httpx2.AsyncClient)


class RunIdTransport(TransportBase, httpx2.BaseTransport, module=httpx2):
    """Wrap an httpx2 transport so each request carries the run current when it is sent.

    Adds ``X-Run-Id`` (or ``header_name``; and ``X-Parent-Run-Id``, ``X-Root-Run-Id`` for a
    child run) to each request made inside a run, with ``X-Session-Id`` when the run has a
    session; outside any run, and when the request already has one of the run headers (the
    caller's), nothing is added, and a session header the caller set stays theirs. It is for a
    sync ``httpx2.Client``: an ``AsyncClient`` needs :class:`AsyncRunIdTransport`, and raises
    TypeError saying so when entered or at its first request. When a response redirects, the
    headers it added are taken off the request before httpx2 builds the next hop from it, and
    added again only when that hop comes back through this transport to an allowed host (so a
    hop through a ``mounts=`` transport that is not wrapped carries none). ``close()`` and the
    context manager reach the wrapped transport. A client's ``proxy=`` and ``mounts=`` get
    transports of their own, which this one does not wrap (and given ``transport=``, httpx2
    ignores proxies from the environment): wrap the proxied transport,
    ``RunIdTransport(httpx2.HTTPTransport(proxy=...))``, or use :func:`instrument`.

    Args:
        transport: the transport to send through; a new ``httpx2.HTTPTransport()`` by default
            (give your own to set retries, limits, TLS or a proxy).
        hosts: host names and ``*.suffix`` patterns that may get the run; None (the default)
            sends it to every host.
        header_name: the header the run id goes under, ``X-Run-Id`` by default; give the one
            your services read (``X-Request-ID``), as the inbound middleware's ``header_name``.
            The lineage and session headers keep their names.
        send_user: also send the run's user in ``X-User-Id`` (off by default: it is personal
            data, and LLM providers are third parties; keep ``hosts=`` to your own services).

    Example::

        client = httpx2.Client(transport=RunIdTransport(httpx2.HTTPTransport(retries=2)))
        client.get("https://tools.example.com/search")  # X-Run-Id: <current run>

    Security: without ``hosts=``, every host the client reaches (redirect targets included)
    learns the run id, its lineage and its session (and with ``send_user=True``, its user).
    """


class AsyncRunIdTransport(AsyncTransportBase, httpx2.AsyncBaseTransport, module=httpx2):
    """Wrap an async httpx2 transport so each request carries the run current when it is sent.

    The async twin of :class:`RunIdTransport`, for ``httpx2.AsyncClient`` (a sync ``Client`` given
    it raises TypeError naming :class:`RunIdTransport`); ``aclose()`` and ``async with`` reach the
    wrapped transport. One client may serve many concurrent runs: each request carries the run
    of the task that sends it.

    Args:
        transport: the transport to send through; a new ``httpx2.AsyncHTTPTransport()`` by
            default.
        hosts: host names and ``*.suffix`` patterns that may get the run; None sends it to
            every host.
        header_name: the header the run id goes under, ``X-Run-Id`` by default.
        send_user: also send the run's user in ``X-User-Id`` (off by default: personal data).

    Example::

        client = httpx2.AsyncClient(transport=AsyncRunIdTransport(hosts=("*.example.com",)))
        await client.get("https://api.example.com/v1/items")

    Security: without ``hosts=``, every host the client reaches learns the run id, lineage and
    session (and with ``send_user=True``, the user).
    """


def instrument(
    client: ClientT,
    *,
    hosts: Iterable[str] | None = None,
    header_name: str = HEADER,
    send_user: bool = False,
) -> ClientT:
    """Make an existing ``httpx2.Client`` or ``AsyncClient`` send the current run; return it.

    For a client made elsewhere, whose transport you cannot pass. Adds a request event hook (the
    last one), so every transport of the client is covered, mounts and proxies included.
    Calling it again with the same options does nothing; with other ones it raises
    ValueError. Replacing ``client.event_hooks`` afterwards removes the hook. ``hosts``,
    ``header_name`` and ``send_user`` work as in :class:`RunIdTransport`.

    Example::

        client = instrument(vendor_sdk.http_client, hosts=("api.vendor.com",))

    Security: without ``hosts=``, every host the client reaches learns the run id, lineage and
    session (and with ``send_user=True``, the user).
    """
    return instrument_client(httpx2, client, hosts, header_name, send_user)
