"""Shared fixtures: every test starts outside any run, with no observer and no log stamping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agent_run_id._context as context_module
import agent_run_id.logging as run_logging


@pytest.fixture(autouse=True)
def _no_current_run() -> Iterator[None]:
    """Start each test outside any run and restore whatever context it leaves behind."""
    token = context_module._current.set(None)
    observers = context_module._observers.items
    context_module._observers.items = ()
    try:
        yield
    finally:
        context_module._current.reset(token)
        context_module._observers.items = observers
        context_module._reported.clear()
        run_logging.uninstall()
