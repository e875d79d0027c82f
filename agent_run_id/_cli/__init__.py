"""The ``agent-run-id`` command; its modules are private, its entry point is :func:`main`."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
