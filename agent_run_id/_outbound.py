"""The one rule every outbound wrapper applies to a request's headers just before it is sent.

- No run current: nothing is added.
- A request that already carries ``X-Run-Id`` belongs to the caller: nothing is added, and no
  header the caller set is ever overwritten.
- Otherwise ``X-Run-Id`` is added, with ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` when the run
  has a parent, if the host is allowed.
- What was added is remembered by the caller of :func:`apply` (in the request's extensions, a
  header subclass or the trace context), because clients copy a request's headers into the
  redirected request: on the next hop, the headers added before are taken off first, so a
  redirect to a host outside the allow-list loses them while the caller's headers stay.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from ._context import _current
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER

__all__ = ["Added", "apply"]

#: The headers a wrapper added to a request, as ``(name, value)`` pairs.
Added = tuple[tuple[str, str], ...]

_NOTHING: Added = ()


def apply(headers: MutableMapping[str, str], allowed: bool, before: Added = _NOTHING) -> Added:
    """Take off the headers added ``before``, add the current run's if ``allowed``; return them.

    ``headers`` is the client's case-insensitive header mapping, changed in place.
    """
    for name, value in before:
        if headers.get(name) == value:
            del headers[name]
    if not allowed:
        return _NOTHING
    frame = _current.get()
    if frame is None or HEADER in headers:
        return _NOTHING
    run_id = frame.run_id
    headers[HEADER] = run_id.value
    parent = run_id.parent
    if parent is None:
        return ((HEADER, run_id.value),)
    added = [(HEADER, run_id.value)]
    for name, value in ((PARENT_HEADER, parent.value), (ROOT_HEADER, run_id.root.value)):
        if name not in headers:
            headers[name] = value
            added.append((name, value))
    return tuple(added)
