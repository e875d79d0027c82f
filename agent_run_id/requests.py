"""Send the current run with every request a ``requests`` session makes.

Example::

    session = instrument(requests.Session(), hosts=("tools.example.com",))
    session.get("https://tools.example.com/search")  # X-Run-Id: <current run>

Security: the run id (and its parent and root) goes to every host the session talks to unless
``hosts=`` names the ones that may get it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

try:
    import requests
    from requests.adapters import BaseAdapter, HTTPAdapter
    from requests.structures import CaseInsensitiveDict
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("requests", "requests", "requests") from exc

from ._context import _current
from ._hosts import HostAllowList, allow_list
from ._outbound import Added, apply

__all__ = ["RunIdAdapter", "instrument"]

SessionT = TypeVar("SessionT", bound=requests.Session)


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


def _prepare(request: requests.PreparedRequest, policy: HostAllowList | None) -> None:
    headers = request.headers
    before = headers.added if isinstance(headers, _RunHeaders) else ()
    if not before and _current.get() is None:
        return
    url = request.url
    host = urlsplit(url).hostname if isinstance(url, str) else None
    allowed = policy is None or (host is not None and policy.allows(host))
    added = apply(headers, allowed, before)
    if added or before:
        if not isinstance(headers, _RunHeaders):
            headers = request.headers = _RunHeaders(headers)
        headers.added = added


class RunIdAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that adds the run current when each request is sent.

    Adds ``X-Run-Id`` (and ``X-Parent-Run-Id``, ``X-Root-Run-Id`` for a child run) inside a run;
    outside any run, and when the request already has ``X-Run-Id`` (the caller's), nothing is
    added. Takes every ``HTTPAdapter`` argument (``max_retries``, pool sizes). Mount it on both
    ``http://`` and ``https://``: a redirect leaves through the adapter of its new URL, and only
    this library's adapters take its headers off for a host outside ``hosts``.

    Args:
        hosts: host names and ``*.suffix`` patterns that may get the run; None (the default)
            sends it to every host.

    Example::

        session.mount("https://", RunIdAdapter(max_retries=3, hosts=("*.example.com",)))
        session.mount("http://", RunIdAdapter(max_retries=3, hosts=("*.example.com",)))

    Security: without ``hosts=``, every host the session reaches learns the run id and lineage.
    """

    # What HTTPAdapter pickles; the policy goes along. requests declares it as a plain list.
    __attrs__ = [*HTTPAdapter.__attrs__, "_policy"]  # noqa: RUF012

    def __init__(self, *args: Any, hosts: Iterable[str] | None = None, **kwargs: Any) -> None:
        self._policy = allow_list(hosts)
        super().__init__(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        """Add the run current now to ``request`` and send it."""
        _prepare(request, self._policy)
        return super().send(request, *args, **kwargs)


class _WrappedAdapter(BaseAdapter):
    """One of the user's adapters, kept as it is (retries, pools, TLS), adding the run."""

    def __init__(self, adapter: BaseAdapter, policy: HostAllowList | None) -> None:
        super().__init__()
        self.adapter = adapter
        self._policy = policy

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        _prepare(request, self._policy)
        return self.adapter.send(request, *args, **kwargs)

    def close(self) -> None:
        self.adapter.close()

    def __getattr__(self, name: str) -> Any:
        # Reads of the wrapped adapter's settings (``max_retries``, ``poolmanager``) reach it.
        adapter = self.__dict__.get("adapter")
        if adapter is None:
            raise AttributeError(name)
        return getattr(adapter, name)

    def __repr__(self) -> str:
        return f"<agent_run_id {self.adapter!r} hosts={self._policy!r}>"


def instrument(session: SessionT, *, hosts: Iterable[str] | None = None) -> SessionT:
    """Make ``session`` send the current run with every request; return the session.

    Each adapter mounted now keeps its settings and gains the run; ``http://`` and ``https://``
    get a :class:`RunIdAdapter` if nothing is mounted there. Calling it again with the same
    ``hosts`` does nothing; with other hosts it raises ValueError. Adapters mounted afterwards
    are not covered: mount :class:`RunIdAdapter` for those.

    Example::

        session = instrument(requests.Session(), hosts=("tools.example.com",))

    Security: without ``hosts=``, every host the session reaches learns the run id and lineage.
    """
    if not isinstance(session, requests.Session):
        raise TypeError(
            f"session must be a requests.Session, got {type(session).__qualname__}: "
            "pass the session your code sends with"
        )
    policy = allow_list(hosts)
    for prefix, adapter in list(session.adapters.items()):
        if isinstance(adapter, (RunIdAdapter, _WrappedAdapter)):
            if adapter._policy != policy:
                raise ValueError(
                    f"the adapter for {prefix!r} already sends the run with "
                    f"hosts={adapter._policy!r}, not hosts={policy!r}: instrument a session once"
                )
            continue
        session.adapters[prefix] = _WrappedAdapter(adapter, policy)
    for prefix in ("https://", "http://"):
        if prefix not in session.adapters:
            session.mount(prefix, RunIdAdapter(hosts=policy))
    return session
