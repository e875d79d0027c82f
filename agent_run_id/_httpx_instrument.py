"""``instrument()`` of ``agent_run_id.httpx`` and ``agent_run_id.httpx2``: a request event hook.

It takes the module it works for (``httpx`` or ``httpx2``) as an argument and never imports
either.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any, TypeVar

from ._httpx_stamp import Stamp, new_stamp

__all__ = ["instrument_client"]

ClientT = TypeVar("ClientT")


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
    module: ModuleType,
    client: ClientT,
    hosts: Iterable[str] | None,
    header_name: object,
    send_user: object = False,
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
    stamp = new_stamp(module, f"agent_run_id.{name}.instrument", hosts, header_name, send_user)
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
