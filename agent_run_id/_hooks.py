"""Hooks: the callables integrations register (run observers, incoming fallbacks, log fields)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

__all__ = ["Hooks"]

H = TypeVar("H")


class Hooks(Generic[H]):
    """Callables added and removed by integrations, read on hot paths without a lock.

    ``items`` is a tuple replaced as a whole under the lock, so a reader takes one attribute and
    iterates a snapshot that no registration can change under it. Adding a hook twice adds it
    once.
    """

    __slots__ = ("_lock", "items")

    def __init__(self) -> None:
        self.items: tuple[H, ...] = ()
        self._lock = threading.Lock()

    def add(self, hook: H) -> None:
        """Register ``hook``, after those already there; a no-op when it is there."""
        with self._lock:
            if hook not in self.items:
                self.items = (*self.items, hook)

    def remove(self, hook: H) -> None:
        """Unregister ``hook``; a no-op when it is not there."""
        with self._lock:
            self.items = tuple(item for item in self.items if item != hook)
