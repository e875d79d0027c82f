"""A sync-only middleware: below ours in an async stack, Django runs ours in sync mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def sync_only(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def middleware(request: Any) -> Any:
        return get_response(request)

    return middleware
