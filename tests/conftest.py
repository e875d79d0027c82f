"""Shared fixtures: every test starts in a fresh library, outside any run, as a user's would."""

from __future__ import annotations

import pytest

from agent_run_id.testing import isolated_runs


@pytest.fixture(autouse=True)
def _isolated(isolated_runs: None) -> None:
    """Run each test with agent_run_id.testing's fixture: no install leaks from test to test."""


__all__ = ["isolated_runs"]
