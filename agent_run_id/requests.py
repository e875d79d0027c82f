"""Send the current run with every request a ``requests`` session makes.

Example::

    session = instrument(requests.Session(), hosts=("tools.example.com",))
    session.get("https://tools.example.com/search")  # X-Run-Id: <current run>

Security: the run id (its parent and root, and its session) goes to every host the session
talks to unless ``hosts=`` names the ones that may get it. The run's user goes only with
``send_user=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

try:
    import requests
    from requests.adapters import BaseAdapter, HTTPAdapter
    from requests.models import REDIRECT_STATI
    from requests.structures import CaseInsensitiveDict
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("requests", "requests", "requests") from exc

from ._context import current_run_id
from ._hosts import HostAllowList, allow_list
from ._outbound import Added, OutboundHeaders, take_off
from ._propagation import HEADER

__all__ = ["RunIdAdapter", "instrument"]

SessionT = TypeVar("SessionT", bound=requests.Session)

# The statuses requests follows; checked first, since ``Response.is_redirect`` starts with a
# case-insensitive header lookup.
_REDIRECTS = frozenset(REDIRECT_STATI)


class _RunHeaders(CaseInsensitiveDict[str]):
    """Request headers that remember which ones this library added.

    requests builds a redirected request from ``request.copy()``, which copies the headers with
    ``headers.copy()``: keeping the record there lets the next hop take our headers off.
    """

    added: Added = ()

    def copy(self) -> _RunHeaders:
        duplicate = _RunHeaders(self)
        duplicate.added = self.added
        return duplicate


def _prepare(
    request: requests.PreparedRequest, hosts: HostAllowList | None, outbound: OutboundHeaders
) -> Added:
    """Give ``request`` the current run's headers under ``outbound``'s names; return them."""
    headers = request.headers
    before = headers.added if isinstance(headers, _RunHeaders) else ()
    if not before and current_run_id() is None:
        return ()
    url = request.url
    host = urlsplit(url).hostname if isinstance(url, str) else None
    allowed = hosts is None or (host is not None and hosts.allows(host))
    added = outbound.apply(headers, allowed, before)
    if added or before:
        if not isinstance(headers, _RunHeaders):
            headers = request.headers = _RunHeaders(headers)
        headers.added = added
    return added


def _send(send: Any, adapter: Any, request: Any, args: Any, kwargs: Any) -> Any:
    """Send ``request`` with ``send`` after adding the run, as both adapters do."""
    added = _prepare(request, adapter._hosts, adapter._outbound)
    response = send(request, *args, **kwargs)
    # Session.resolve_redirects builds the next hop from a copy of this very request, and that
    # hop may leave through an adapter that is not this library's: take ours off now. If it
    # goes through one of ours, that adapter adds them again for an allowed host.
    if added and response.status_code in _REDIRECTS and response.is_redirect:
        take_off(request.headers, added)
    return response


class RunIdAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that adds the run current when each request is sent.

    Adds ``X-Run-Id`` (or ``header_name``; and ``X-Parent-Run-Id``, ``X-Root-Run-Id`` for a
    child run) inside a run, with ``X-Session-Id`` when the run has a session; outside any run,
    and when the request already has one of the run headers (the caller's), nothing is added,
    and a session header the caller set stays theirs. Takes every ``HTTPAdapter`` argument
    (``max_retries``, pool sizes). When a response redirects, the headers it added are taken off
    before requests builds the next hop, which leaves through the adapter of its new URL: mount
    this one on both ``http://`` and ``https://`` so that every hop to an allowed host gets the
    run again.

    Args:
        hosts: host names and ``*.suffix`` patterns that may get the run; None (the default)
            sends it to every host.
        header_name: the header the run id goes under, ``X-Run-Id`` by default; give the one
            your services read (``X-Request-ID``). The lineage and session headers keep their
            names.
        send_user: also send the run's user in ``X-User-Id`` (off by default: it is personal
            data, and LLM providers are third parties; keep ``hosts=`` to your own services).

    Example::

        session.mount("https://", RunIdAdapter(max_retries=3, hosts=("*.example.com",)))
        session.mount("http://", RunIdAdapter(max_retries=3, hosts=("*.example.com",)))

    Security: without ``hosts=``, every host the session reaches learns the run id, lineage and
    session (and with ``send_user=True``, the user).
    """

    # What HTTPAdapter pickles; the allowed hosts go along. requests declares it as a plain list.
    __attrs__ = [*HTTPAdapter.__attrs__, "_hosts", "_outbound"]  # noqa: RUF012

    def __init__(
        self,
        *args: Any,
        hosts: Iterable[str] | None = None,
        header_name: str = HEADER,
        send_user: bool = False,
        **kwargs: Any,
    ) -> None:
        self._hosts = allow_list(hosts)
        self._outbound = OutboundHeaders(
            header_name, "agent_run_id.requests.RunIdAdapter", send_user
        )
        super().__init__(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        """Add the run current now to ``request`` and send it."""
        return _send(super().send, self, request, args, kwargs)


# The wrapper's own state; every other attribute, read or written, is the wrapped adapter's.
_OWN_STATE = frozenset({"adapter", "_hosts", "_outbound"})
_OWN = _OWN_STATE | {"send", "close"}


class _WrappedAdapter(BaseAdapter):
    """One of the user's adapters, kept as it is (retries, pools, TLS), adding the run.

    Reads and writes of any other attribute (``max_retries``, ``poolmanager``, methods such as
    ``init_poolmanager``) go to the wrapped adapter, so changing a setting on the mounted
    adapter changes the one that sends.
    """

    def __init__(
        self, adapter: BaseAdapter, hosts: HostAllowList | None, outbound: OutboundHeaders
    ) -> None:
        # No BaseAdapter or HTTPAdapter __init__: the wrapper holds no settings of its own.
        object.__setattr__(self, "adapter", adapter)
        object.__setattr__(self, "_hosts", hosts)
        object.__setattr__(self, "_outbound", outbound)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        return _send(self.adapter.send, self, request, args, kwargs)

    def close(self) -> None:
        self.adapter.close()

    def __getattribute__(self, name: str) -> Any:
        if name in _OWN or name.startswith("__"):
            return object.__getattribute__(self, name)
        # Even names HTTPAdapter defines: the wrapped adapter's own overrides must answer.
        return getattr(object.__getattribute__(self, "adapter"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN_STATE:
            object.__setattr__(self, name, value)
        else:
            setattr(self.adapter, name, value)

    # HTTPAdapter pickles its settings by name; the wrapper pickles what it wraps instead.
    def __getstate__(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "_hosts": self._hosts, "_outbound": self._outbound}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        options = f"hosts={self._hosts!r}, {self._outbound.options}"
        return f"<agent_run_id {self.adapter!r} {options}>"


class _WrappedHTTPAdapter(_WrappedAdapter, HTTPAdapter):
    """A wrapped ``HTTPAdapter``: still an ``HTTPAdapter`` to ``isinstance`` checks."""


def instrument(
    session: SessionT,
    *,
    hosts: Iterable[str] | None = None,
    header_name: str = HEADER,
    send_user: bool = False,
) -> SessionT:
    """Make ``session`` send the current run with every request; return the session.

    Each adapter mounted now keeps its settings and gains the run; ``http://`` and ``https://``
    get a :class:`RunIdAdapter` if nothing is mounted there. Calling it again with the same
    options does nothing; with other ones it raises ValueError. Adapters mounted afterwards
    are not covered: mount :class:`RunIdAdapter` for those. ``hosts``, ``header_name`` and
    ``send_user`` work as in :class:`RunIdAdapter`.

    Example::

        session = instrument(requests.Session(), hosts=("tools.example.com",))

    Security: without ``hosts=``, every host the session reaches learns the run id, lineage and
    session (and with ``send_user=True``, the user).
    """
    if not isinstance(session, requests.Session):
        raise TypeError(
            f"session must be a requests.Session, got {type(session).__qualname__}: "
            "pass the session your code sends with"
        )
    host_list = allow_list(hosts)
    outbound = OutboundHeaders(header_name, "agent_run_id.requests.instrument", send_user)
    for prefix, adapter in list(session.adapters.items()):
        if isinstance(adapter, (RunIdAdapter, _WrappedAdapter)):
            if adapter._hosts != host_list or adapter._outbound != outbound:
                raise ValueError(
                    f"the adapter for {prefix!r} already sends the run with "
                    f"hosts={adapter._hosts!r}, {adapter._outbound.options}, not "
                    f"hosts={host_list!r}, {outbound.options}: instrument a session once"
                )
            continue
        wrapper = _WrappedHTTPAdapter if isinstance(adapter, HTTPAdapter) else _WrappedAdapter
        session.adapters[prefix] = wrapper(adapter, host_list, outbound)
    for prefix in ("https://", "http://"):
        if prefix not in session.adapters:
            session.mount(
                prefix,
                RunIdAdapter(
                    hosts=host_list, header_name=outbound.header, send_user=outbound.send_user
                ),
            )
    return session
