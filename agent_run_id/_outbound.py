"""The one rule every outbound wrapper applies to a request's headers just before it is sent.

- No run current: nothing is added.
- A request that already carries any of ``X-Run-Id``, ``X-Parent-Run-Id`` and
  ``X-Root-Run-Id`` belongs to the caller: nothing is added, so no header the caller set is ever
  overwritten and the caller's lineage is never mixed with the run's.
- Otherwise ``X-Run-Id`` is added, with ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` when the run
  has a parent, if the host is allowed.
- What was added is remembered by the caller of :func:`apply` (in the request's extensions, a
  header subclass or the trace context), because clients copy a request's headers into the
  redirected request: on the next hop, the headers added before are taken off first, so a
  redirect to a host outside the allow-list loses them while the caller's headers stay.
- A wrapper that sees the redirect response come back takes its headers off the request right
  then (:func:`take_off`), before the client builds the next hop from it: the next hop may leave
  through a transport or adapter that is not this library's, which would send them on as they
  are. A wrapper that does handle the next hop adds them again if that host is allowed.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from ._context import _RUN, _current
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, run_headers

__all__ = ["Added", "apply", "take_off"]

#: The headers a wrapper added to a request, as ``(name, value)`` pairs.
Added = tuple[tuple[str, str], ...]

_NOTHING: Added = ()


def apply(headers: MutableMapping[str, str], allowed: bool, before: Added = _NOTHING) -> Added:
    """Take off the headers added ``before``, add the current run's if ``allowed``; return them.

    ``headers`` is the client's case-insensitive header mapping, changed in place.
    """
    take_off(headers, before)
    if not allowed:
        return _NOTHING
    frame = _current.get()
    if frame is None:
        return _NOTHING
    # One name the caller set makes the request's lineage theirs: any run header added would mix.
    if HEADER in headers or PARENT_HEADER in headers or ROOT_HEADER in headers:
        return _NOTHING
    pairs = run_headers(frame[_RUN])
    for name, value in pairs:
        headers[name] = value
    return pairs


def take_off(headers: MutableMapping[str, str], added: Added) -> None:
    """Remove the ``added`` pairs from ``headers``, each only while it still has the added value.

    A value that differs was set by the caller after the library added its own, and stays.
    """
    for name, value in added:
        if headers.get(name) == value:
            del headers[name]
